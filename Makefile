# One target per job; `make test` is exactly what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := $(VENV)/.stamps
# The checks cover bench/ too, so the test environment has the peers the benchmarks import.
CHECK_EXTRAS := test,bench
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint typecheck unit bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMPS)/%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	@mkdir -p $(STAMPS) && touch $@

demo: $(STAMPS)/demo
	$(BIN)/python examples/demo_app.py --host $(HOST) --port $(PORT)

system-deps:
	scripts/install-system-deps.sh

lint: $(STAMPS)/$(CHECK_EXTRAS)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMPS)/$(CHECK_EXTRAS)
	$(BIN)/mypy

unit: system-deps $(STAMPS)/$(CHECK_EXTRAS)
	$(BIN)/pytest --cov --cov-report=term

test: lint typecheck unit

bench: $(STAMPS)/bench
	scripts/install-system-deps.sh --bench
	$(BIN)/python bench/bench_compression.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_cache.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_telemetry.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_load.py --output bench/RESULTS.md

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .pytest_cache .hypothesis
