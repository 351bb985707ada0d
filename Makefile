# Two commands on a fresh clone:  `make demo` (a real forecast) and `make test`.
# Each creates .venv with Python >= 3.12 and installs what a user gets: the package and its dev
# tools at the NEWEST versions pip resolves (`.[dev]`). `make test` also tests the declared
# MINIMUM versions (.venv-min, pinned by tools/min_constraints.py) on a fast subset. The bench
# extra (prophet, statsforecast, dynamax) pins older libraries; it lives in .venv-bench and
# serves the benchmarks (and `make test-bench`) only.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 python3 python; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MIN_VENV := .venv-min
MIN_STAMP := $(MIN_VENV)/.installed
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
# The subset run at the minimum versions (< 2 min): validation, saved files, CLI reading/writing,
# forecasts on every index kind.
MIN_TESTS := tests/robustness tests/test_package.py
# pytest-xdist workers (CI's 2 cores: 2 processes; `make test-fast PYTEST_WORKERS=0` runs in one).
# `--dist loadscope` sends a whole module to one worker, so a module-scoped fixture (a fitted
# model shared by the tests of a file) is computed once, not once per worker.
PYTEST_WORKERS ?= auto

.PHONY: venv demo test test-fast test-slow test-min test-bench test-x64 lint notebooks notebooks-open docs docs-serve bench-scan clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Python >= 3.12 not found (pyenv: the repo's .python-version selects 3.12)"; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,dask]"
	touch $(STAMP)

$(MIN_STAMP): pyproject.toml tools/min_constraints.py
	@if [ -z "$(PYTHON)" ]; then echo "Python >= 3.12 not found"; exit 1; fi
	$(PYTHON) -m venv $(MIN_VENV)
	$(PYTHON) tools/min_constraints.py dev > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install -q -c $(MIN_VENV)/constraints.txt -e ".[dev]"
	touch $(MIN_STAMP)

$(BENCH_STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Python >= 3.12 not found"; exit 1; fi
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -e ".[dev,bench]"
	touch $(BENCH_STAMP)

venv: $(STAMP)

$(VENV)/.installed-docs: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $@

$(VENV)/.installed-notebooks: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[notebooks]"
	touch $@

demo: $(STAMP)
	$(BIN)/bayes-ssm forecast --dataset ili --horizon 26 --out out/forecast.csv --plot out/forecast.png

lint: $(STAMP)
	$(BIN)/ruff check bayes_ssm tests benchmarks
	$(BIN)/ruff format --check bayes_ssm tests benchmarks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n $(PYTEST_WORKERS) --dist loadscope --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -n $(PYTEST_WORKERS) --dist loadscope --durations=15

notebooks: $(STAMP)
	BAYES_SSM_SMOKE=1 $(BIN)/python notebooks/run_notebooks.py --jobs 2

# The declared minimum versions, on a fast subset.
test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -m pytest -q -m "not slow" -n $(PYTEST_WORKERS) --dist loadscope $(MIN_TESTS)

# The documentation site, strict: a broken link or a missing API reference fails the build.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The executed notebooks in JupyterLab.
notebooks-open: $(VENV)/.installed-notebooks
	$(BIN)/jupyter lab notebooks/

# The README's test command, and exactly what CI runs.
test: lint test-fast test-slow notebooks docs test-min

# Tests of the bench-only baselines (prophet); not part of CI's `make test`.
test-bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m pytest -q -m bench

bench-scan: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/scan.py

clean:
	rm -rf $(VENV) $(MIN_VENV) $(BENCH_VENV) .pytest_cache .ruff_cache out site
