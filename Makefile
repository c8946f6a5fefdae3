# Every documented way to work on tickwatch is a target here. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.13; tests run on the same version, and `sam build` needs a
# python3.13 on PATH (it finds the one in .venv/bin).
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))
VENV := .venv
BIN := $(abspath $(VENV))/bin
# SAM pins its own boto3 and click, so it gets a virtualenv of its own.
SAM_VENV := $(VENV)/sam
SAM := $(abspath $(SAM_VENV))/bin/sam
SAM_VERSION := 1.170.0

export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PATH := $(BIN):$(PATH)

.PHONY: help install run soak bench lint build test test-container clean lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed $(SAM_VENV)/.installed ## create .venv with everything to develop and test

$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	@test -n "$(PYTHON)" && $(PYTHON) -c "" 2>/dev/null || { echo "Python 3.13 (the Lambda runtime's version) is needed: install it (e.g. pyenv install 3.13) or run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint .ci/constraints.txt --editable '.[dev]'
	@touch $@

$(SAM_VENV)/.installed: .ci/constraints-sam.txt | $(VENV)/.installed
	$(BIN)/python -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --constraint .ci/constraints-sam.txt aws-sam-cli==$(SAM_VERSION)
	@touch $@

run: $(VENV)/.installed ## the whole pipeline on this machine for 2 minutes (more: make run ARGS="--duration 10m")
	$(BIN)/tickwatch local --duration 2m $(ARGS)

soak: $(VENV)/.installed ## the local stack at 2,000 ticks/s for 10 minutes, measured and checked (make soak ARGS="--rate 500 --duration 2m")
	$(BIN)/python -m tickwatch.local.soak $(ARGS)

bench: $(VENV)/.installed ## measure the functions and model their cost; writes docs/performance.md and .json
	$(BIN)/python -m tickwatch.bench $(ARGS)

lint: install ## ruff, cfn-lint and sam validate --lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint

build: install ## sam build into a temporary directory (proves the template and layer package)
	@build_dir=$$(mktemp -d) && trap 'rm -rf "$$build_dir"' EXIT && \
	  $(SAM) build --build-dir "$$build_dir/build" --cache-dir "$(abspath .aws-sam/cache)" && \
	  test -f "$$build_dir/build/CommonLayer/python/tickwatch_core/tick.schema.json" && \
	  test -d "$$build_dir/build/CommonLayer/python/aws_lambda_powertools" && \
	  test -f "$$build_dir/build/ProcessorFunction/app.py" && \
	  test -f "$$build_dir/build/AlertsFunction/app.py" && \
	  test -f "$$build_dir/build/QueryFunction/app.py" && \
	  test -f "$$build_dir/build/LiveFunction/app.py" && \
	  test -f "$$build_dir/build/BroadcastFunction/app.py" && \
	  test -d "$$build_dir/build/CommonLayer/python/pydantic" && \
	  echo "sam build: functions and CommonLayer built"

test: lint build ## lint, build, every test, then test-container (no AWS account; only package registries are reached)
	$(BIN)/pytest
	$(MAKE) test-container

test-container: install ## sam local invoke of every sample event and sam local start-api of every route, in Docker against the local stack (installs Docker if missing)
	TICKWATCH_CONTAINER_TESTS=1 $(BIN)/pytest tests/container

clean: ## remove the environment and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .tickwatch

lock: ## re-pin every transitive dependency after changing a version in pyproject.toml
	@lock_dir=$$(mktemp -d) && trap 'rm -rf "$$lock_dir"' EXIT && \
	  $(PYTHON) -m venv "$$lock_dir/dev" && "$$lock_dir/dev/bin/python" -m pip install --quiet '.[dev]' && \
	  { echo "# Pins for the development environment (make install). Regenerate: make lock"; \
	    "$$lock_dir/dev/bin/python" -m pip freeze --exclude-editable | grep -v '^tickwatch'; } > .ci/constraints.txt && \
	  $(PYTHON) -m venv "$$lock_dir/sam" && "$$lock_dir/sam/bin/python" -m pip install --quiet aws-sam-cli==$(SAM_VERSION) && \
	  { echo "# Pins for the SAM CLI virtualenv (make install). Regenerate: make lock"; \
	    "$$lock_dir/sam/bin/python" -m pip freeze; } > .ci/constraints-sam.txt
