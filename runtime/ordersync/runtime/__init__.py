"""What every ordersync process shares at run time: the settings (``settings.py``), the stores file
(``stores.py``) and the liveness heartbeat (``heartbeat.py``). Components import this package and
``schemas``; never each other or the shell (``ordersync``)."""
