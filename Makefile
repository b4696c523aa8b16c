# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0

.PHONY: install run test lint typecheck pytest sam-validate sam-local-test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt layers/common/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e layers/common -r requirements-dev.txt
	touch $@

# SAM CLI pins its own boto3, pydantic and click: it lives in a virtualenv of its own.
$(SAM_VENV)/.installed:
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli
	touch $@

## Serve the gateway on HOST:PORT (default 127.0.0.1:3000) like `sam local start-api`.
## Settings come from the environment and from .env in the repository root.
run: install
	set -a; [ ! -f .env ] || . ./.env; set +a; exec $(PY) -m localapi

test: lint typecheck sam-validate pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

typecheck: install
	$(VENV)/bin/mypy

sam-validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint --template template.yaml --region us-east-1

pytest: install
	$(PY) -m pytest

## Measure what the gateway costs and write docs/benchmarks.md (a few minutes; not part of
## `make test`). BENCH_ARGS passes options, e.g. BENCH_ARGS="--only local-api --dry-run".
bench: install $(VENV)/.bench-installed
	$(PY) -m benchmarks $(BENCH_ARGS)

$(VENV)/.bench-installed: benchmarks/requirements.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt
	touch $@

## sam build and sam local start-api for real, in Docker (root: installs and starts the engine).
sam-local-test: install $(SAM_VENV)/.installed
	SAM=$(SAM) PY=$(PY) deploy/samlocal/run.sh

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .ruff_cache .mypy_cache
