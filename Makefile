# runlane: `make run` serves the demo graph on SQLite; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 2024

.PHONY: run test test-fast test-compat test-compat-ref compat-report bench bench-agent bench-cluster \
	soak lint style typecheck imports clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/runlane serve --config examples/demo/langgraph.json --port $(PORT)

# -rs lists every skipped test with its reason (e.g. no PostgreSQL/Redis here).
# The model-based store tests (tests/fast/test_store_model.py) search 600 sequences per
# backend here, 150 in the fast tier (docs/testing.md).
RUNLANE_MODEL_EXAMPLES ?= 600

test: $(STAMP)
	RUNLANE_MODEL_EXAMPLES=$(RUNLANE_MODEL_EXAMPLES) $(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

# The fast tier (tests/fast): contract, store and dispatcher in-process, no server;
# under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/fast $(PYTEST_ARGS)

# The compatibility suite (tests/compat, docs/compatibility.md): every langgraph_sdk
# client method against runlane, or against the reference server (`langgraph dev`,
# installed into benchmarks/.venv-ref on first use, as for `make bench`). Tests recorded
# as failing in tests/compat/status.json run as strict xfails, so both stay green until
# a behaviour changes.
COMPAT_RESULTS := tests/compat/results

test-compat: $(STAMP)
	$(BIN)/python -m pytest -q -rs tests/compat $(PYTEST_ARGS)

test-compat-ref: $(STAMP)
	RUNLANE_COMPAT_REFERENCE=1 $(BIN)/python -m pytest -q tests/compat $(PYTEST_ARGS)

# Re-run both with plain pass/fail and regenerate docs/compatibility.md and status.json.
compat-report: $(STAMP)
	-RUNLANE_COMPAT_RAW=1 $(BIN)/python -m pytest -q tests/compat \
		--junitxml=$(COMPAT_RESULTS)/runlane.xml $(PYTEST_ARGS)
	-RUNLANE_COMPAT_RAW=1 RUNLANE_COMPAT_REFERENCE=1 $(BIN)/python -m pytest -q tests/compat \
		--junitxml=$(COMPAT_RESULTS)/reference.xml $(PYTEST_ARGS)
	$(BIN)/python tests/compat/report.py $(COMPAT_RESULTS)/runlane.xml $(COMPAT_RESULTS)/reference.xml

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The agent workload: K concurrent streaming chat runs per server, both servers, a sweep
# of K (BENCH_ARGS="--variant fast", "--variant waiting", "--ks 100,500", "--baseline").
bench-agent: $(STAMP)
	$(BIN)/python benchmarks/agent_load.py $(BENCH_ARGS)

# Scale-out figures: 3 workers on PostgreSQL + Redis next to 1 process on SQLite.
bench-cluster: $(STAMP)
	$(BIN)/python benchmarks/cluster.py $(BENCH_ARGS)

# The soak (docs/scale-out.md#the-soak): 3 workers on a private PostgreSQL + Redis under
# `runlane check` scenarios for SOAK_SECONDS while workers are killed and SIGSTOPped and
# PostgreSQL and Redis restart; then the whole history is checked. Not part of `make test`
# (tests/test_soak.py runs a 30 s smoke of it under the `outage` marker).
SOAK_SECONDS ?= 600
soak: $(STAMP)
	$(BIN)/python tests/soak.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# The gates that keep the code and its architecture as intended (configured, with every
# exception and its reason, in pyproject.toml): all three run, and lint fails if any does.
lint: $(STAMP)
	@status=0; \
	$(MAKE) --no-print-directory style || status=1; \
	$(MAKE) --no-print-directory typecheck || status=1; \
	$(MAKE) --no-print-directory imports || status=1; \
	exit $$status

# ruff: the rule selection and the complexity ceiling.
style: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

# mypy on src/runlane.
typecheck: $(STAMP)
	$(BIN)/mypy

# import-linter: the layers, and who may import whom.
imports: $(STAMP)
	$(BIN)/lint-imports --no-logo

clean:
	rm -rf $(VENV) examples/demo/.runlane .pytest_cache
