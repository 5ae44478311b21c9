# One target per job; `make test` is exactly what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := $(VENV)/.stamps
# The checks cover bench/ too, so the test environment has the peers the benchmarks import.
CHECK_EXTRAS := test,bench
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint typecheck unit unit-sqlalchemy-2.0 bench conformance system-deps clean
# The hooks support SQLAlchemy 2.0 and 2.1: the main environment has the newest, this one the 2.0 series.
SA20 := .venv-sqlalchemy-2.0

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

$(SA20)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SA20)
	$(SA20)/bin/python -m pip install --quiet --upgrade pip
	$(SA20)/bin/python -m pip install --quiet -e '.[test]' 'sqlalchemy[asyncio]>=2.0,<2.1'
	touch $@

unit-sqlalchemy-2.0: system-deps $(SA20)/.installed
	$(SA20)/bin/pytest -p no:cacheprovider tests/sqlalchemy

test: lint typecheck unit unit-sqlalchemy-2.0

bench: $(STAMPS)/bench
	scripts/install-system-deps.sh --bench
	$(BIN)/python bench/bench_compression.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_cache.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_telemetry.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_sqlalchemy.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_outbound.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_load.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_multiprocess_writes.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_profile.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_import.py --output bench/RESULTS.md
	$(BIN)/python bench/bench_conformance.py --output bench/RESULTS.md

# The public HTTP cache conformance suite against slipstream's cache (needs Node.js 20 and npm); also part of bench.
conformance: $(STAMPS)/bench
	scripts/install-system-deps.sh --bench
	$(BIN)/python bench/bench_conformance.py --output bench/RESULTS.md

clean:
	rm -rf $(VENV) $(SA20) .coverage .mypy_cache .ruff_cache .pytest_cache .hypothesis
