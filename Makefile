# runlane: `make run` serves the demo graph on SQLite; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 2024

.PHONY: run test test-fast bench bench-cluster lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/runlane serve --config examples/demo/langgraph.json --port $(PORT)

# -rs lists every skipped test with its reason (e.g. no PostgreSQL/Redis here).
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not race" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# Scale-out figures: 3 workers on PostgreSQL + Redis next to 1 process on SQLite.
bench-cluster: $(STAMP)
	$(BIN)/python benchmarks/cluster.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) examples/demo/.runlane .pytest_cache
