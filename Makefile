# The two commands of the README: `make run` and `make test`.
# lint-imports checks the layer contract of pyproject.toml ([tool.importlinter]); no cache
# directory is left in the checkout (the check takes well under a second).
VENV ?= .venv
CONFIG ?= etc/provsync.toml
BIN := $(VENV)/bin
# Test processes: most tests wait on real peers (agents, snmptrapd, rsyslogd), so four
# workers keep two cores busy (decision 107).
TEST_WORKERS ?= 4

.PHONY: run test lint bench screenshots clean

run:
	@VENV=$(VENV) scripts/bootstrap.sh
	$(BIN)/provsync --config $(CONFIG) run

test:
	@VENV=$(VENV) scripts/bootstrap.sh --dev
	$(BIN)/ruff check agent tests bench
	$(BIN)/ruff format --check agent tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lint:
	@VENV=$(VENV) scripts/bootstrap.sh --dev
	$(BIN)/ruff check agent tests bench
	$(BIN)/ruff format --check agent tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Every bench runs and prints its figures even when an earlier one misses a target;
# the exit status says whether all targets were met.
BENCHES := api alarms snmp syslog sync sharing

bench:
	@VENV=$(VENV) scripts/bootstrap.sh --dev
	@failed=""; for b in $(BENCHES); do \
	  echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || failed="$$failed $$b"; \
	done; if [ -n "$$failed" ]; then echo "targets NOT met in:$$failed"; exit 1; fi

# The pictures of docs/console.md, taken by the console's own browser tests.
screenshots:
	@VENV=$(VENV) scripts/bootstrap.sh --dev
	PROVSYNC_SCREENSHOTS=docs/img/console $(BIN)/pytest -q -n 2 -p no:cacheprovider \
	  tests/test_console.py tests/test_console_viewer.py tests/test_console_elements.py \
	  tests/test_console_sharing.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
