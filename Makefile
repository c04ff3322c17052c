# The two commands a newcomer needs:
#   make demo   run the example service once on embedded defaults (no external servers)
#   make test   set up everything the tests need (venv, promtool/Prometheus) and run them
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench setup

setup:
	@scripts/setup.sh "$(PYTHON)" "$(VENV)"

demo: setup
	@$(BIN)/python examples/demo.py

test: setup
	@scripts/install-prometheus.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy platform_obs

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
