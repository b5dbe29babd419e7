# Credit ledger: see README.md. Every target installs what it needs by itself.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Pinned, hashed dependencies (CONTRIBUTING.md, Dependencies): the runtime set for the image,
# the runtime, development and gateway (LiteLLM, openai) set for .venv. `make lock` rewrites
# both from pyproject.toml.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release within the bounds.
LOCK_ARGS ?=
COMPILE := $(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 --quiet $(LOCK_ARGS)

.PHONY: install lock up down test unit lint run stop bench schemas status clean soak cluster-up cluster-down chromium npm version chart

install: $(STAMP)

$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 not found" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r $(DEV_LOCK)
	@# setuptools explains what an editable install is on every install; only that is muted.
	PYTHONWARNINGS=ignore::UserWarning:setuptools.command.editable_wheel \
		$(BIN)/pip install -q --no-deps -e .
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; \
		echo "error: $(DEV_LOCK) does not match pyproject.toml: run make lock" >&2; exit 1; }
	@touch $(STAMP)

# Needs only uv (a dev dependency; installed here when .venv does not have it yet).
lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q uv; }
	$(COMPILE) -o $(LOCK)
	$(COMPILE) --extra dev --extra gateway -o $(DEV_LOCK)

up:
	@if infra/docker.sh available; then infra/docker.sh up; else infra/kafka.sh start && infra/postgres.sh start; fi

down:
	@if infra/docker.sh available; then infra/docker.sh down; else infra/run.sh stop; infra/kafka.sh stop; infra/postgres.sh stop; fi

# Three brokers on 127.0.0.1:19092-19094 (replication factor 3, min ISR 2), beside `make up`'s.
cluster-up:
	@infra/cluster.sh start

cluster-down:
	@infra/cluster.sh stop

status:
	@infra/kafka.sh status; infra/postgres.sh status; infra/run.sh status

test: install up chromium chart npm
	$(BIN)/ruff check services schemas tests benchmarks
	$(BIN)/ruff format --check services schemas tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# The Helm chart: helm v4 (a Go module, built once into .local/go/bin) lints it and renders
# it; kubernetes-validate checks the result against the Kubernetes schemas its package
# carries (nothing is fetched at test time).
HELM_VERSION := v4.3.2
HELM := .local/go/bin/helm
$(HELM):
	GOBIN=$(CURDIR)/.local/go/bin go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

chart: install $(HELM)
	$(HELM) lint --strict infra/helm/credit-ledger
	@mkdir -p .local
	$(HELM) template ledger infra/helm/credit-ledger > .local/chart.yaml
	$(HELM) template ledger infra/helm/credit-ledger --set secrets.kafkaCa=ledger-kafka-ca \
		--set migrate.enabled=false --set config.extraEnv.LEDGER_WEBHOOK_ALLOW_PRIVATE=0 > .local/chart-variant.yaml
	$(BIN)/kubernetes-validate --strict --quiet .local/chart.yaml .local/chart-variant.yaml

# The browser tests (tests/browser) drive Debian's Chromium: installed when missing.
chromium:
	@tests/browser/install-chromium.sh

# The TypeScript kit's tests (tests/e2e/test_typescript_kit.py runs them): its locked
# dependencies, installed when missing.
npm:
	@test -d clients/typescript/node_modules || (cd clients/typescript && npm ci --no-audit --no-fund)

unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check services schemas tests benchmarks
	$(BIN)/ruff format --check services schemas tests benchmarks
	$(BIN)/mypy

schemas: install
	$(BIN)/python -m schemas.export

# The one version (pyproject.toml), as `ledger --version`, /healthz and the image label give it.
version:
	@sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml

run: install up
	@infra/run.sh start

stop:
	@infra/run.sh stop

# The crash matrix with more seeds, more load and more kills than `make test` runs, and the
# long broker-fault scenarios on the three-broker cluster (started by the tests if not up).
soak: install up
	for seed in 101 202 303 404 505 606; do \
		FAULT_SEED=$$seed FAULT_EVENTS=60000 FAULT_RATE=2000 FAULT_EXTRA_KILLS=4 \
		$(BIN)/pytest tests/e2e/test_fault_crash_matrix.py -s $(PYTEST_ARGS) || exit 1; \
	done
	LEDGER_SOAK=1 $(BIN)/pytest -m soak tests/e2e/test_cluster_faults.py -s $(PYTEST_ARGS)

bench: install up
	$(BIN)/ledger bench --output bench-results/bench.json

clean: down cluster-down
	rm -rf .local $(VENV)
