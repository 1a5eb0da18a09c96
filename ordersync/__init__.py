"""ordersync: web-shop orders → Kafka → faust processor → PostgreSQL contact database."""

__version__ = "0.1.0"
