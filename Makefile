# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
CONFIG ?= etc/provsync.toml
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

run:
	@VENV=$(VENV) scripts/bootstrap.sh
	$(BIN)/provsync --config $(CONFIG) run

test:
	@VENV=$(VENV) scripts/bootstrap.sh --dev
	$(BIN)/ruff check agent tests bench
	$(BIN)/ruff format --check agent tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint:
	@VENV=$(VENV) scripts/bootstrap.sh --dev
	$(BIN)/ruff check agent tests bench
	$(BIN)/ruff format --check agent tests bench
	$(BIN)/mypy

bench:
	@VENV=$(VENV) scripts/bootstrap.sh --dev
	$(BIN)/python bench/api.py
	$(BIN)/python bench/alarms.py
	$(BIN)/python bench/snmp.py
	$(BIN)/python bench/syslog.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/sharing.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
