# fieldcrm developer tasks. Each target first runs scripts/bootstrap.sh (uv, then .venv from
# uv.lock). Targets that need a database get one from backend/db/provision.py through
# scripts/with_db.sh, which exports its URL to the commands that follow:
#   demo, migrate, seed: FIELDCRM_DATABASE_URL (database fieldcrm), plus FIELDCRM_SECRET_KEY
#                        (env, else var/secret_key) and FIELDCRM_ENV (default development)
#   test:                FIELDCRM_TEST_DATABASE_URL (database fieldcrm_test)
#   bench:               FIELDCRM_DATABASE_URL (database fieldcrm_bench), as for demo
# Set FIELDCRM_DATABASE_URL yourself to use another server: its server is used, with the
# database names above.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# How to run uv: "uv" when on PATH, else the copy bootstrap.sh installs with pip.
UV ?= $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
export UV

WITH_DB := scripts/with_db.sh
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
SIMULATE_ARGS ?= --speedup 3

.PHONY: help bootstrap demo test lint bench migrate seed simulate

help:
	@echo "make demo     set everything up, migrate, load demo data, serve on http://$(HOST):$(PORT)"
	@echo "              with the worker and local FCM/SMTP/SMS stand-ins (scripts/demo_stack.py)"
	@echo "make test     ruff, ruff format --check, mypy, pytest (PYTEST_ARGS=... to pass options)"
	@echo "make lint     ruff, ruff format --check, mypy"
	@echo "make bench    quick benchmarks: customers, pipeline, ingest, day route (own databases), routing, pages"
	@echo "make migrate  apply migrations to database fieldcrm"
	@echo "make seed     load demo data into database fieldcrm"
	@echo "make simulate drive the demo team through today's visits on the running demo server"
	@echo "              (SIMULATE_ARGS='--speedup 30 --once --fake-checkin igor' to pass options)"

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	@$(WITH_DB) --app-env fieldcrm FIELDCRM_DATABASE_URL -- \
		"$(UV) run fieldcrm migrate" \
		"$(UV) run fieldcrm seed-demo" \
		"$(UV) run python scripts/demo_stack.py --host $(HOST) --port $(PORT) --show-demo-logins"

test: bootstrap
	@$(WITH_DB) fieldcrm_test FIELDCRM_TEST_DATABASE_URL -- \
		"$(UV) run ruff check ." \
		"$(UV) run ruff format --check ." \
		"$(UV) run mypy" \
		"$(UV) run pytest $(PYTEST_ARGS)"

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

bench: bootstrap
	@$(WITH_DB) --app-env fieldcrm_bench FIELDCRM_DATABASE_URL -- \
		"$(UV) run python performance/bench_customers.py --quick" \
		"$(UV) run python performance/bench_pipeline.py --quick" \
		"$(UV) run python performance/bench_ingest.py --quick" \
		"$(UV) run --group bench python performance/bench_routing.py --quick" \
		"$(UV) run python performance/bench_route.py --quick" \
		"$(UV) run python performance/bench_pages.py --quick" \
		"$(UV) run python performance/bench_reports.py --quick" \
		"$(UV) run python performance/bench_notifications.py --quick"

migrate: bootstrap
	@$(WITH_DB) --app-env fieldcrm FIELDCRM_DATABASE_URL -- "$(UV) run fieldcrm migrate"

seed: bootstrap
	@$(WITH_DB) --app-env fieldcrm FIELDCRM_DATABASE_URL -- "$(UV) run fieldcrm seed-demo"

# Needs no database of its own: it speaks HTTP to `make demo` (same HOST and PORT).
simulate: bootstrap
	$(UV) run python scripts/simulate_gps.py --base-url http://$(HOST):$(PORT) $(SIMULATE_ARGS)
