# botmox-ops: every command a teammate, ops or CI needs. `make help` lists them.
#
# `make test` bootstraps when something is missing, then runs lint, types and every test.
# Bootstrap is idempotent: stamps and package queries make a second run install nothing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
# The pinned uv lives in a venv of the project's own: Debian 12's Python is "externally managed"
# (PEP 668) and refuses `pip install` outside a venv. `make UV=uv ...` uses another uv.
TOOLS_VENV := .tools
UV ?= $(TOOLS_VENV)/bin/uv
PYTHON := $(UV) run --frozen --all-packages python
# Every program the project runs and its provider: .ci/programs.tsv (docs/environment.md).
# Bootstrap installs its apt rows (the first of "a|b"); .ci/run installs its ci rows.
PROGRAMS_TABLE := .ci/programs.tsv
APT_PACKAGES := $(shell awk -F'\t' '$$2 == "apt" { split($$3, p, "|"); print p[1] }' $(PROGRAMS_TABLE) | sort -u)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export SUPABASE_TELEMETRY_DISABLED := 1
export UV_LINK_MODE ?= copy

VENV_STAMP := .venv/.botmox-synced
NODE_STAMP := node_modules/.botmox-installed
PY_PROJECTS := pyproject.toml uv.lock services/api/pyproject.toml services/agent/pyproject.toml services/protocol/pyproject.toml harness/pyproject.toml

.PHONY: help
help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z0-9_-]+:.*?## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: bootstrap
bootstrap: apt-packages uv $(VENV_STAMP) $(NODE_STAMP) ## Install what the machine needs (apt, uv, Python and npm deps); idempotent

.PHONY: apt-packages
apt-packages: ## Install the Debian packages of .ci/programs.tsv (provider apt) when missing
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "bootstrap: installing apt packages:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: uv
uv: apt-packages ## Install the pinned uv into the tools venv (.tools) when it is missing or another version
	@if [ "$$($(UV) --version 2>/dev/null | cut -d" " -f2)" != "$(UV_VERSION)" ]; then \
	  echo "bootstrap: installing uv $(UV_VERSION) into $(TOOLS_VENV)/"; \
	  [ -x $(TOOLS_VENV)/bin/pip ] || python3 -m venv $(TOOLS_VENV); \
	  $(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; \
	fi

$(VENV_STAMP): $(PY_PROJECTS) | uv
	@echo "bootstrap: syncing the Python environment (.venv)"
	$(UV) sync --frozen --all-packages --all-groups
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "bootstrap: installing npm dependencies (Supabase CLI)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: lint
lint: bootstrap ## ruff lint and format check
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

.PHONY: format
format: bootstrap ## Apply ruff's fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

.PHONY: typecheck
typecheck: bootstrap ## mypy --strict on services/, harness/, loadtests/, the agent's tests, deploy/ and inventories/
	$(UV) run --frozen mypy services/api/src services/agent/src services/agent/tests services/protocol/src harness/src loadtests deploy inventories

.PHONY: pytest
pytest: bootstrap ## Every pytest test: unit, integration (real PostgreSQL and RTDB emulator) and slow
	$(UV) run --frozen pytest

.PHONY: pgtap
pgtap: bootstrap ## Start a throwaway PostgreSQL, apply migrations, run lint, advisors and pgTAP (pg_prove)
	$(PYTHON) -m harness pgtap

.PHONY: acceptance-docker
acceptance-docker: bootstrap ## The acceptance suite once more on the docker runtime (supabase mode); builds images when needed
	BOTMOX_ACCEPTANCE_RUNTIME=docker BOTMOX_ACCEPTANCE_BACKENDS=supabase $(UV) run --frozen pytest harness/tests/acceptance

.PHONY: deploy-test
deploy-test: bootstrap ## Deploy a VPS and an agent host over SSH to Docker test hosts, check them with testinfra, re-run, roll out and back
	$(UV) run --frozen pytest -m deploy_hosts -s deploy/tests

.PHONY: test
test: lint typecheck pytest pgtap acceptance-docker deploy-test load-smoke ## Lint, types and every test, the deploys on test hosts, then a 30 s smoke load per mode (bootstraps first when needed)

BACKEND ?= rtdb
RUNTIME ?= auto
.PHONY: local
local: bootstrap ## The whole stack on this machine (BACKEND=rtdb|supabase, RUNTIME=auto|docker|native, API_WORKERS=1); prints URLs and a token; Ctrl-C stops it
	$(PYTHON) -m harness up --backend $(BACKEND) --runtime $(RUNTIME) --api-workers $(or $(API_WORKERS),1)

.PHONY: local-env
local-env: uv ## Shell exports of the running stack's variables for admin tools, the cutover (docs/runbooks/storage-policy-cutover.md)
	@$(PYTHON) -m harness stack-env

.PHONY: local-down
local-down: uv ## Stop a stack started with `python -m harness up --detach`
	$(PYTHON) -m harness down

SUPABASE_CLI := node_modules/.bin/supabase

.PHONY: supabase-start supabase-stop supabase-status bootstrap-env
supabase-start: $(NODE_STAMP) ## Start the real Supabase CLI stack (needs Docker + Supabase's images); applies supabase/migrations
	$(SUPABASE_CLI) start
supabase-stop: $(NODE_STAMP) ## Stop the Supabase CLI stack (data volume kept)
	$(SUPABASE_CLI) stop
supabase-status: $(NODE_STAMP) ## URLs and keys of the running Supabase CLI stack (prints secrets)
	$(SUPABASE_CLI) status
bootstrap-env: $(VENV_STAMP) $(NODE_STAMP) ## Write services/api/.env from `supabase status -o json` (FORCE=1: replace a non-local target)
	$(PYTHON) -m harness env $(if $(FORCE),--force)

CUTOVER := $(UV) run --frozen python -m botmox_api.cutover
.PHONY: cutover-plan cutover-backfill cutover-verify
cutover-plan: $(VENV_STAMP) ## storage_policy per tenant: what exists in RTDB and Supabase (API variables, admin SUPABASE_DB_URL; CUTOVER_ARGS="--summary --json ...")
	$(CUTOVER) plan $(CUTOVER_ARGS)
cutover-backfill: $(VENV_STAMP) ## Copy storage_policy FROM=rtdb TO=supabase (or back), resumable, idempotent (CUTOVER_ARGS="--dry-run --tenant T ...")
	@[ -n "$(FROM)" ] && [ -n "$(TO)" ] || { echo "make cutover-backfill needs FROM=rtdb|supabase TO=supabase|rtdb" >&2; exit 2; }
	$(CUTOVER) backfill --from $(FROM) --to $(TO) $(CUTOVER_ARGS)
cutover-verify: $(VENV_STAMP) ## Compare storage_policy in RTDB and Supabase field by field; exit 0 only when they match (CUTOVER_ARGS)
	$(CUTOVER) verify $(CUTOVER_ARGS)

.PHONY: bench
bench: bootstrap ## The API against the floor in one run (~4 min): pinned cores, wrk, 1,000 tenants, median of 3; last line: ratios (BENCH_ARGS=--quick; docs/performance.md)
	$(PYTHON) -m loadtests.bench $(BENCH_ARGS)

.PHONY: cutover-scale
cutover-scale: bootstrap ## The cutover tool on 10,000 seeded tenants (throwaway PostgreSQL and emulator): plan, backfill, again, a catch-up, verify, each timed (TENANTS=N; docs/performance.md)
	$(PYTHON) -m loadtests.cutover_scale --tenants $(or $(TENANTS),10000)

.PHONY: agents-scale
agents-scale: bootstrap ## 1,000 simulated agents on one API worker (private native stack): commands/s, round-trip p50/p99, API memory per agent, reconnects after a restart (AGENTS=N PROCESSES=N SECONDS=N; loadtests/README.md)
	$(PYTHON) -m loadtests.agents_scale --agents $(or $(AGENTS),1000) --processes $(or $(PROCESSES),4) --command-seconds $(or $(SECONDS),20)

.PHONY: bench-parts
bench-parts: bootstrap ## Figures of the parts: PostgreSQL fixture start, emulator ops/s, API requests/s per mode (docs/benchmarks.md)
	$(PYTHON) -m harness bench
	$(PYTHON) harness/benchmarks/rtdb_ops.py
	$(PYTHON) services/api/benchmarks/storage_policy_rps.py

.PHONY: load
load: bootstrap ## locust load run per mode against the harness stack, up (native) when it is not (BACKEND=rtdb|supabase|both USERS DURATION SCENARIO=storage_policy|settings|frontend THRESHOLDS=file API_WORKERS)
	$(PYTHON) -m loadtests.run --backend $(if $(filter command line environment,$(origin BACKEND)),$(BACKEND),both) --users $(or $(USERS),8) --duration $(or $(DURATION),30s) \
	  --scenario $(or $(SCENARIO),storage_policy) $(if $(THRESHOLDS),--thresholds $(THRESHOLDS)) $(if $(API_WORKERS),--api-workers $(API_WORKERS))

.PHONY: load-smoke
load-smoke: bootstrap ## CI's smoke load: storage_policy, 8 users, 30 s per mode, against loadtests/thresholds-ci.toml (last step of `make test`)
	$(PYTHON) -m loadtests.run --backend both --users 8 --duration 30s --scenario storage_policy \
	  --thresholds loadtests/thresholds-ci.toml --reports build/loadtests/smoke

.PHONY: bootstrap-check
bootstrap-check: $(VENV_STAMP) ## .ci/run in a fresh Debian 12 container on a clone of HEAD (~24 min; COMMIT=rev, SHARED=dir); not part of `make test`
	$(PYTHON) -m harness bootstrap-check $(if $(SHARED),--shared $(SHARED)) $(if $(COMMIT),--commit $(COMMIT))

.PHONY: clean
clean: ## Remove caches and the Python environment (not node_modules)
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis
