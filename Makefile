# Credit ledger: see README.md. Every target installs what it needs by itself.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install up down test unit lint run stop bench schemas status clean soak chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 not found" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

up:
	@if infra/docker.sh available; then infra/docker.sh up; else infra/kafka.sh start && infra/postgres.sh start; fi

down:
	@if infra/docker.sh available; then infra/docker.sh down; else infra/run.sh stop; infra/kafka.sh stop; infra/postgres.sh stop; fi

status:
	@infra/kafka.sh status; infra/postgres.sh status; infra/run.sh status

test: install up chromium
	$(BIN)/ruff check services schemas tests
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# The browser tests (tests/browser) drive Debian's Chromium: installed when missing.
chromium:
	@tests/browser/install-chromium.sh

unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check services schemas tests
	$(BIN)/ruff format --check services schemas tests
	$(BIN)/mypy

schemas: install
	$(BIN)/python -m schemas.export

run: install up
	@infra/run.sh start

stop:
	@infra/run.sh stop

# The crash matrix with more seeds, more load and more kills than `make test` runs.
soak: install up
	for seed in 101 202 303 404 505 606; do \
		FAULT_SEED=$$seed FAULT_EVENTS=60000 FAULT_RATE=2000 FAULT_EXTRA_KILLS=4 \
		$(BIN)/pytest tests/e2e/test_fault_crash_matrix.py -s $(PYTEST_ARGS) || exit 1; \
	done

bench: install up
	$(BIN)/ledger bench --output bench-results/bench.json

clean: down
	rm -rf .local $(VENV)
