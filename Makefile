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
# checkov scans the template in `make lint`; it pins its own boto3 and more, so it lives apart too.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(abspath $(CHECKOV_VENV))/bin/checkov
CHECKOV_VERSION := 3.3.30

export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PATH := $(BIN):$(PATH)

.PHONY: help install run soak bench lint build test test-browser test-container vendor-charts clean lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed ## create .venv with everything to develop and test

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

$(CHECKOV_VENV)/.installed: .ci/constraints-checkov.txt | $(VENV)/.installed
	$(BIN)/python -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --constraint .ci/constraints-checkov.txt checkov==$(CHECKOV_VERSION)
	@touch $@

run: $(VENV)/.installed ## the whole pipeline on this machine for 2 minutes (more: make run ARGS="--duration 10m")
	$(BIN)/tickwatch local --duration 2m $(ARGS)

soak: $(VENV)/.installed ## the local stack at 2,000 ticks/s for 10 minutes, measured and checked (make soak ARGS="--rate 500 --duration 2m")
	$(BIN)/python -m tickwatch.local.soak $(ARGS)

bench: $(VENV)/.installed ## measure the functions and model their cost; writes docs/performance.md and .json
	$(BIN)/python -m tickwatch.bench $(ARGS)

lint: install ## ruff, cfn-lint, sam validate --lint and checkov (zero failed checks; accepted ones are skipped in the template with their reason)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint
	$(CHECKOV) --file template.yaml --framework cloudformation --quiet --compact --skip-download

build: install ## sam build into a temporary directory (proves the template and layer package)
	@build_dir=$$(mktemp -d) && trap 'rm -rf "$$build_dir"' EXIT && \
	  $(SAM) build --build-dir "$$build_dir/build" --cache-dir "$(abspath .aws-sam/cache)" && \
	  test -f "$$build_dir/build/CommonLayer/python/tickwatch_core/domain/tick.schema.json" && \
	  test -d "$$build_dir/build/CommonLayer/python/aws_lambda_powertools" && \
	  test -f "$$build_dir/build/ProcessorFunction/app.py" && \
	  test -f "$$build_dir/build/AlertsFunction/app.py" && \
	  test -f "$$build_dir/build/DeliveryFunction/app.py" && \
	  test -f "$$build_dir/build/QueryFunction/app.py" && \
	  test -f "$$build_dir/build/IngestFunction/app.py" && \
	  test -f "$$build_dir/build/LiveFunction/app.py" && \
	  test -f "$$build_dir/build/BroadcastFunction/app.py" && \
	  test -f "$$build_dir/build/CompactorFunction/app.py" && \
	  test -f "$$build_dir/build/ProducerFunction/app.py" && \
	  test -d "$$build_dir/build/CompactorFunction/duckdb" && \
	  test -d "$$build_dir/build/CommonLayer/python/pydantic" && \
	  test -f "$$build_dir/build/CommonLayer/python/tickwatch_core/domain/__pycache__/ticks.cpython-313.pyc" && \
	  test -n "$$(find "$$build_dir/build/CommonLayer/python/pydantic" -name '*.cpython-313.pyc' -print -quit)" && \
	  for function in $$build_dir/build/*Function; do \
	    size=$$(du -sb "$$function" "$$build_dir/build/CommonLayer" | awk '{total += $$1} END {print total}'); \
	    test "$$size" -le 262144000 || { echo "$$(basename $$function) with CommonLayer is $$size bytes unzipped: over Lambda's 250 MB" >&2; exit 1; }; \
	    echo "$$(basename $$function) with CommonLayer: $$((size / 1048576)) MB unzipped (Lambda allows 250 MB)"; \
	  done && \
	  echo "sam build: functions and CommonLayer built"

test: lint build ## lint, build, every test, then test-container (no AWS account; only package registries are reached)
	$(BIN)/pytest
	$(MAKE) test-browser
	$(MAKE) test-container

test-browser: install ## the dashboard in Debian's chromium (Playwright) against the local stack (installs chromium if missing)
	TICKWATCH_BROWSER_TESTS=1 $(BIN)/pytest tests/browser

test-container: install ## sam local invoke of every sample event and sam local start-api of every route, in Docker against the local stack (installs Docker if missing)
	TICKWATCH_CONTAINER_TESTS=1 $(BIN)/pytest tests/container

# The dashboard's chart library, committed so the page needs no npm; the tarball must match the
# registry's published integrity before anything is copied.
CHARTS_VERSION := 5.2.1
CHARTS_INTEGRITY := sha512-IVwoK1RLFiLPubaKIjNbtjWLnpPMqiABSrTay6whmNa8L1+19292VtHJ+BWyPUuLCwF0tcQlhEWd1CLB2a1nsQ==
CHARTS_DIR := dashboard/vendor/lightweight-charts

vendor-charts: ## fetch lightweight-charts into dashboard/vendor, checked against its registry integrity
	@pack_dir=$$(mktemp -d) && trap 'rm -rf "$$pack_dir"' EXIT && \
	  tarball=$$(cd "$$pack_dir" && npm pack --silent lightweight-charts@$(CHARTS_VERSION)) && \
	  actual="sha512-$$(openssl dgst -sha512 -binary "$$pack_dir/$$tarball" | base64 -w0)" && \
	  { test "$$actual" = "$(CHARTS_INTEGRITY)" || { echo "$$tarball: integrity $$actual, expected $(CHARTS_INTEGRITY)" >&2; exit 1; }; } && \
	  tar -xzf "$$pack_dir/$$tarball" -C "$$pack_dir" && \
	  mkdir -p $(CHARTS_DIR) && \
	  cp "$$pack_dir/package/dist/lightweight-charts.standalone.production.mjs" "$$pack_dir/package/LICENSE" $(CHARTS_DIR)/ && \
	  printf '%s\n' \
	    "# lightweight-charts $(CHARTS_VERSION)" "" \
	    "TradingView's charting library (Apache-2.0, see LICENSE), vendored by \`make vendor-charts\` so the" \
	    "dashboard needs no npm or CDN at run time." "" \
	    "- source: the npm registry, \`npm pack lightweight-charts@$(CHARTS_VERSION)\`" \
	    "- integrity (checked before copying): \`$(CHARTS_INTEGRITY)\`" \
	    "- files: \`package/dist/lightweight-charts.standalone.production.mjs\` and \`package/LICENSE\`" "" \
	    "The chart's attribution logo is off (it injects a <style> element, which the page's CSP forbids);" \
	    "the page's footer carries TradingView's attribution notice and link instead." \
	    > $(CHARTS_DIR)/README.md && \
	  echo "$(CHARTS_DIR): lightweight-charts $(CHARTS_VERSION), integrity verified"

clean: ## remove the environment and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .tickwatch

lock: ## re-pin every transitive dependency after changing a version in pyproject.toml
	@lock_dir=$$(mktemp -d) && trap 'rm -rf "$$lock_dir"' EXIT && \
	  $(PYTHON) -m venv "$$lock_dir/dev" && "$$lock_dir/dev/bin/python" -m pip install --quiet '.[dev]' && \
	  { echo "# Pins for the development environment (make install). Regenerate: make lock"; \
	    "$$lock_dir/dev/bin/python" -m pip freeze --exclude-editable | grep -v '^tickwatch'; } > .ci/constraints.txt && \
	  $(PYTHON) -m venv "$$lock_dir/sam" && "$$lock_dir/sam/bin/python" -m pip install --quiet aws-sam-cli==$(SAM_VERSION) && \
	  { echo "# Pins for the SAM CLI virtualenv (make install). Regenerate: make lock"; \
	    "$$lock_dir/sam/bin/python" -m pip freeze; } > .ci/constraints-sam.txt && \
	  $(PYTHON) -m venv "$$lock_dir/checkov" && "$$lock_dir/checkov/bin/python" -m pip install --quiet checkov==$(CHECKOV_VERSION) && \
	  { echo "# Pins for the checkov virtualenv (make install). Regenerate: make lock"; \
	    "$$lock_dir/checkov/bin/python" -m pip freeze; } > .ci/constraints-checkov.txt
