# magenta-release — the one task list for people, hooks and CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DAGSTER_DISABLE_TELEMETRY := true
PYTEST_ARGS ?=
# the uv that builds .venv is the one the locks hold (a base dependency: io/environments)
UV_VERSION := 0.13.8

.PHONY: help setup lock demo test test-all test-fast test-compat wheel lint bench dagster ui template clean slides

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	# sync, not install: the environment is exactly the lock (hashes checked), nothing stale
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

lock: ## re-resolve the hashed locks: runtime (every extra), dev tools, the server image's [server]
	$(BIN)/uv pip compile pyproject.toml --extra all --generate-hashes --python-version 3.11 \
	  -c <(echo uv==$(UV_VERSION)) -o requirements.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra all --extra dev -c requirements.lock \
	  --generate-hashes --python-version 3.11 -o requirements-dev.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra server -c requirements.lock --generate-hashes \
	  --python-version 3.11 -o requirements-server.lock -q

setup: $(STAMP) ## create .venv and install the pinned dependencies

demo: $(STAMP) ## run the whole release loop in a throwaway store (./demo)
	$(BIN)/magenta-release demo

test: $(STAMP) ## the default suite: every test but the `slow` end-to-end ones (server mode included)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP) ## everything `make test` runs plus the `slow` end-to-end tests (what CI runs)
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP) ## the default suite without server-mode tests
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow and not server" $(PYTEST_ARGS)

wheel: $(STAMP) ## build dist/magenta_release-VERSION-py3-none-any.whl (what `uv tool install` takes)
	rm -rf dist
	$(BIN)/uv build --wheel --out-dir dist -q

test-compat: $(STAMP) ## the wheel beside a team's pins (tests/compat/): resolve, base install, uv tool, floors
	MAGENTA_RELEASE_COMPAT=1 $(BIN)/python -m pytest -p no:cacheprovider -ra tests/compat $(PYTEST_ARGS)

lint: $(STAMP) ## ruff + mypy --strict + import-linter layers
	$(BIN)/ruff format --check magenta_release dagster_assets examples tests benchmarks
	$(BIN)/ruff check magenta_release dagster_assets examples tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/zizmor --offline --no-progress .github/workflows

bench: $(STAMP) ## run the benchmarks and rewrite docs/performance.md
	$(BIN)/python -m benchmarks.run

dagster: $(STAMP) ## Dagster UI on http://127.0.0.1:3000 for ./mlruns (Ctrl-C or SIGTERM stops it)
	$(BIN)/magenta-release init >/dev/null
	DAGSTER_HOME=$(CURDIR)/dagster_home MAGENTA_RELEASE_HOME=$(CURDIR)/mlruns \
	  MAGENTA_RELEASE_TRACKING_URI= MAGENTA_RELEASE_PIPELINE_USER=dagster \
	  MAGENTA_RELEASE_FEATURES_URI= MAGENTA_RELEASE_CUSTOMERS_URI= \
	  MAGENTA_RELEASE_ANALYTICS_DB=$(CURDIR)/dagster_home/analytics.duckdb \
	  MAGENTA_RELEASE_DAGSTER_DATA=$(CURDIR)/dagster_home/data \
	  PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
	  exec $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -m dagster_assets

ui: $(STAMP) ## MLflow UI on 127.0.0.1:5000 for ./mlruns
	$(BIN)/magenta-release ui

template: $(STAMP) ## rebuild magenta_release/template/mlflow.db after an MLflow upgrade
	$(BIN)/python -c 'from pathlib import Path; from magenta_release.io.store import build_template_db, template_db; build_template_db(template_db())'

slides: ## render docs/presentation.md (Marp) to out/presentation.html; no browser needed
	mkdir -p out
	npx --yes @marp-team/marp-cli@4.5.1 docs/presentation.md -o out/presentation.html

clean: ## remove the local store and caches (not .venv)
	rm -rf mlruns .pytest_cache .mypy_cache .ruff_cache
