# Two commands on a fresh clone:  `make demo` (a real forecast) and `make test`.
# Each creates .venv with Python >= 3.12 and installs what it needs.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 python3 python; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast test-slow test-x64 lint notebooks notebooks-open docs docs-serve bench-scan clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Python >= 3.12 not found (pyenv: the repo's .python-version selects 3.12)"; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,bench,dask]"
	touch $(STAMP)

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
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

notebooks: $(STAMP)
	BAYES_SSM_SMOKE=1 $(BIN)/python notebooks/run_notebooks.py

# The documentation site, strict: a broken link or a missing API reference fails the build.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The executed notebooks in JupyterLab.
notebooks-open: $(VENV)/.installed-notebooks
	$(BIN)/jupyter lab notebooks/

# The README's test command, and exactly what CI runs.
test: lint test-fast test-slow notebooks docs

bench-scan: $(STAMP)
	$(BIN)/python benchmarks/scan.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out site
