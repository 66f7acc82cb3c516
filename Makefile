# oneauth: `make help` lists the targets. Every target creates the virtualenv it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Provisioning and migrations run as the operator role: ONEAUTH_OPERATOR_DATABASE_URL,
# else ONEAUTH_DATABASE_URL, else the embedded cluster under .data/ (made if missing).
WITH_DB = ONEAUTH_OPERATOR_DATABASE_URL="$${ONEAUTH_OPERATOR_DATABASE_URL:-$${ONEAUTH_DATABASE_URL:-$$($(BIN)/oneauth dev db-url --operator)}}"

.PHONY: help install run test lint format schemas migrate provision-app platform-init operator platform-worker stop-db bench bench-mfa bench-orgs bench-audit bench-console soak clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(STAMP) ## create .venv and install oneauth with its test and dev tools

run: $(STAMP) ## start the service on 127.0.0.1:8000 with the platform job runner (embedded Postgres unless ONEAUTH_DATABASE_URL is set)
	$(BIN)/oneauth dev run

test: $(STAMP) ## run the test suite on a real Postgres (TEST_DATABASE_URL, Docker, or local binaries)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(STAMP) ## regenerate schemas/*.json from the request and response models
	$(BIN)/python -m oneauth.http.jsonschemas schemas

migrate: $(STAMP) ## migrate the control schema and every app schema
	$(WITH_DB) $(BIN)/oneauth migrate

provision-app: $(STAMP) ## provision an app: make provision-app APP=shop [NAME="Shop"]
	@test -n "$(APP)" || { echo "usage: make provision-app APP=<app_id> [NAME=\"Display name\"]" >&2; exit 2; }
	$(WITH_DB) $(BIN)/oneauth migrate --quiet
	$(WITH_DB) $(BIN)/oneauth apps provision "$(APP)" --name "$(or $(NAME),$(APP))"

platform-init: $(STAMP) ## migrate, and make sure the control-plane app `platform` and the console's client exist (idempotent)
	$(WITH_DB) $(BIN)/oneauth migrate --quiet

operator: $(STAMP) ## a console operator who administers every app: make operator EMAIL=you@example.com (asks for the password)
	@test -n "$(EMAIL)" || { echo "usage: make operator EMAIL=<address>" >&2; exit 2; }
	$(WITH_DB) $(BIN)/oneauth migrate --quiet
	$(WITH_DB) $(BIN)/oneauth platform operators create --email "$(EMAIL)" --password-file -
	$(WITH_DB) $(BIN)/oneauth platform operators grant --email "$(EMAIL)" --all --role admin

platform-worker: $(STAMP) ## run the platform API's job runner (provision, suspend, ... queued by /admin/v1/apps) as the operator role
	$(WITH_DB) $(BIN)/oneauth platform worker

stop-db: $(STAMP) ## stop the embedded Postgres under .data/
	$(BIN)/oneauth dev stop-db

bench: $(STAMP) ## benchmarks against a throwaway Postgres: make bench [QUICK=1] (bench/results.*, then bench-mfa, bench-orgs, bench-audit, bench-console)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 2; }
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m ops.bench --out bench $(if $(QUICK),--quick)
	$(MAKE) --no-print-directory bench-mfa bench-orgs bench-audit bench-console QUICK=$(QUICK)

bench-mfa: $(STAMP) ## password sign-in beside password+TOTP sign-in (writes bench/mfa_login.json)
	$(BIN)/python -m ops.bench.mfa_login --out bench/mfa_login.json $(if $(QUICK),--users 600 --duration 4 --reps 1)

bench-orgs: $(STAMP) ## refresh with an org switch beside a plain refresh; token size at 50 roles (writes bench/org_refresh.json)
	$(BIN)/python -m ops.bench.org_refresh --out bench/org_refresh.json $(if $(QUICK),--duration 4 --reps 1 --connections 8)

bench-audit: $(STAMP) ## refresh with the audit chain's sealer on beside off (writes bench/audit_chain.json)
	$(BIN)/python -m ops.bench.audit_chain --out bench/audit_chain.json $(if $(QUICK),--duration 4 --reps 1 --connections 8)

bench-console: $(STAMP) ## the admin console's app picker (first page, search) at 10,000 apps, p95 < 300 ms (writes bench/console.json)
	$(BIN)/python -m ops.bench.console --out bench/console.json $(if $(QUICK),--apps 1000 --requests 60)

soak: $(STAMP) ## mixed load for 10 minutes (not in CI): 0 errors, RSS slope of the service and Postgres backends (writes bench/soak.json): make soak [DURATION=60]
	@command -v wrk >/dev/null || { echo "make soak needs wrk: apt-get install wrk" >&2; exit 2; }
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m ops.bench.soak --out bench/soak.json --duration $(or $(DURATION),600)

clean: ## remove the virtualenv and caches (keeps .data/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
