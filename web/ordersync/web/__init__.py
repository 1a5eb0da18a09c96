"""The marketers' web app: server-rendered pages over ordersync's PostgreSQL (read only). It imports
``runtime`` and ``schemas`` like every component, and queries the tables the sink writes."""
