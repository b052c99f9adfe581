# Two commands for a fresh machine:  `make demo` (the main job on the dev stack) and `make test`.
# Both install what they need first: a venv with the pinned Python packages, and Azurite from npm.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo up test lint bench clean

setup: $(STAMP) node_modules/.package-lock.json

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

demo: setup
	$(PY) -m devstack demo

up: setup
	$(PY) -m devstack up

lint: setup
	$(PY) -m ruff check .

test: setup lint
	$(PY) -m pytest

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .devstack .pytest_cache .ruff_cache
