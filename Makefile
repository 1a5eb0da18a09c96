# `make test` and `make demo` do every set-up step on a fresh machine: virtualenv, install, the Kafka
# jars (cached in ~/.cache/ordersync and ~/.m2), and the local stack unless ORDERSYNC_KAFKA_BOOTSTRAP and
# ORDERSYNC_DATABASE_URL point at existing services.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTEST_ARGS ?=
# The component folders: each holds its portion of the `ordersync` namespace (pyproject.toml). Python
# finds them through the editable install; import-linter reads them from the path.
PORTIONS := processors:producers:runtime:schemas:segmentation:sinks:web

.PHONY: install lint typecheck stack-up stack-down unit test demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

stack-up: install
	$(BIN)/ordersync stack up

stack-down: install
	$(BIN)/ordersync stack down

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=$(PORTIONS) $(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# The fast lane: every test that needs no Kafka or PostgreSQL (pure functions, files, simulators).
unit: install
	PYTHONPATH=$(PORTIONS) $(BIN)/lint-imports
	$(BIN)/pytest -m "not broker" -q $(PYTEST_ARGS)

test: lint typecheck stack-up
	eval "$$($(BIN)/ordersync stack env)" && $(BIN)/pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/ordersync demo

bench: stack-up
	for b in connector_backfill processor replay live sink segments web pipeline forward; do $(BIN)/python bench/$$b.py || exit 1; done

clean: stack-down
	rm -rf .stack $(VENV)
