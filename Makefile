# changelake — every target installs what it needs; only Python 3.11 and make are assumed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION ?= 0.13.9
# Use a uv already on PATH, else bootstrap one from PyPI into .tools/ (no curl|sh, no root).
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTHON ?= python3
export UV_PYTHON ?= 3.11
export UV_PYTHON_DOWNLOADS ?= never
export PYTHONUNBUFFERED := 1

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: uv.lock pyproject.toml $(wildcard */pyproject.toml */*/pyproject.toml) | $(UV)
	# --all-extras: the consumer's `kcl` extra is the real amazon-kclpy, whose build downloads
	# the KCL jars from Maven Central (KCL_MVN_REPO_SEARCH_URL points it at a mirror).
	# --compile-bytecode: every dependency's .pyc is written once here. Without it, and with
	# PYTHONDONTWRITEBYTECODE=1 (set on our machines), every process compiled moto, pandas,
	# botocore, sqlglot… at import, holding the GIL: the demo's "writing" phase stalled on it
	# (docs/adr/0037, profile in docs/benchmarks.md).
	$(UV) sync --all-packages --all-extras --inexact --frozen --compile-bytecode
	@touch $@

.PHONY: install
install: .venv/.synced ## Install uv (if missing) and sync the workspace
	@true

.PHONY: demo
demo: install ## Run the end-to-end demo on the embedded local stack (no Docker, no AWS)
	$(UV) run --no-sync changelake demo

.PHONY: test
test: install ## Lint, type-check and run the whole test suite
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy libs/*/src services/*/src cli/src benchmarks/src
	$(UV) run --no-sync python scripts/run_pytest.py
	$(MAKE) deploy-test

.PHONY: deploy-test
deploy-test: | $(UV) ## CDK app (deploy/, its own lock): lock up to date, template tests, cfn-lint, checkov
	@# `sync --frozen` trusts the lock: fail first if it is stale against deploy/pyproject.toml or
	@# the path dependencies libs/lake and libs/changelake (re-lock: cd deploy && uv lock).
	cd deploy && $(UV) lock --check && $(UV) sync --frozen && $(UV) run --frozen pytest -q

.PHONY: unit
unit: install ## Only the fast unit tests
	$(UV) run --no-sync pytest -m unit -q

.PHONY: lint
lint: install ## ruff lint + format check + mypy
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy libs/*/src services/*/src cli/src benchmarks/src

.PHONY: fmt
fmt: install ## Format and auto-fix
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .

.PHONY: up
up: install ## Start the local stack (emulator + all services) on 127.0.0.1:4566
	$(UV) run --no-sync changelake local up --port 4566

.PHONY: bench
bench: install ## Run every benchmark at full size and print the tables
	$(UV) run --no-sync changelake bench all

FUZZ_INPUTS ?= 100000
.PHONY: fuzz
fuzz: install ## Fuzz codec, decoder, transform, catalog events: hypothesis + atheris, FUZZ_INPUTS inputs
	PYTHONPATH=tests $(UV) run --no-sync python -m changelake_fuzz --inputs $(FUZZ_INPUTS)

# ---- containers (ADR 0012, 0020): Docker with BuildKit when a daemon answers, else podman ----
# BASE=local builds on the stand-ins of `make base-images` (no registry needed); CA_BUNDLE=<file>
# lets the build steps that download trust that CA bundle (a build secret, never in a layer).
BASE ?= official
CA_BUNDLE ?=

.PHONY: base-images
base-images: ## Stand-in Python/Lambda base images from Debian packages (no registry needed)
	scripts/containers.sh base-images

.PHONY: images
images: ## Build every service image [BASE=official|local] [CA_BUNDLE=/path/to/ca.crt]
	BASE=$(BASE) CA_BUNDLE=$(CA_BUNDLE) scripts/containers.sh images

# The default services (podman-compose 1.0.3 would start the `lambda` profile's too).
COMPOSE_SERVICES ?= emulator producer consumer catalog

.PHONY: compose-up
compose-up: ## Start the compose stack in the background (after `make images`)
	scripts/containers.sh compose up -d $(COMPOSE_SERVICES)

.PHONY: compose-down
compose-down: ## Stop the compose stack and remove its containers and volumes
	scripts/containers.sh compose down -v

.PHONY: compose-test
compose-test: install ## docker compose / podman-compose up, query until rows, compare, tear down
	$(UV) run --no-sync python scripts/run_pytest.py containers/tests -p no:cacheprovider -s

.PHONY: lock
lock: | $(UV) ## Re-resolve uv.lock after a dependency change
	$(UV) lock

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
