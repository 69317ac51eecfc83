# Garrison developer entry points. `make run` serves the bundled examples; `make test`
# runs everything CI runs. Both create ./.venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
ARGS ?=

.PHONY: run install install-dev test lint typecheck format bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamp files make reinstalls happen only when the dependency list changes.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Serve the bundled example agents on http://127.0.0.1:8000 (state in ./.garrison/).
## Change the port with `make run ARGS="--port 9000"` or GARRISON_PORT=9000.
run: install
	$(BIN)/garrison serve $(ARGS)

## Lint, type-check and run the whole test suite (unit, contract, e2e).
test: install-dev lint typecheck
	$(BIN)/pytest

lint: install-dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: install-dev
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

## Load benchmark against a real server plus the in-process baseline (prints numbers).
bench: install-dev
	$(BIN)/python bench/run.py $(ARGS)

## Re-pin every dependency (commit constraints.txt afterwards).
lock: | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	$(PIP) freeze --exclude-editable | grep -v '^garrison' > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .garrison .pytest_cache .mypy_cache .ruff_cache
