# Two commands for a fresh machine:  `make demo` (the main job on the dev stack) and `make test`.
# Both install what they need first: a venv with the pinned Python packages, and Azurite from npm.

# Python 3.13+ (Azure Functions runs Python 3.13 apps through azure-functions-runtime); pyenv reads
# .python-version, so `python3.13` resolves on machines that manage Pythons with pyenv.
PYTHON ?= python3.13
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo up test lint doctor package bench clean

setup: $(STAMP) node_modules/.package-lock.json

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 13))' || { echo 'needs Python 3.13+ (set PYTHON=...)'; exit 1; }
	$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

demo: setup
	$(PY) -m devstack demo

up: setup
	$(PY) -m devstack up

lint: setup doctor
	$(PY) -m ruff check .

# azure-functions-doctor's deployment checks for a Flex Consumption app built remotely; a failed check fails
# the target (its two remaining warnings are explained in the README, "Deploy to Azure").
doctor: setup
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/azure-functions-doctor doctor --path . --profile deploy \
		--hosting-plan flex-consumption --deployment-mode remote-build

# The deployment zip exactly as azd / func upload it (.funcignore honoured): dist/app.zip.
package: setup
	$(PY) infra/package.py --output dist/app.zip

test: setup lint
	$(PY) -m pytest

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .devstack .pytest_cache .ruff_cache dist

# The Batch emulator walked by the Azure CLI (`az batch`), installed on demand into its own venv (about 700 MB,
# so not part of `make test`; the JavaScript SDK walk is).
AZ_CLI_VENV := .devstack/az-cli
.PHONY: az-walk
az-walk: setup $(AZ_CLI_VENV)/bin/az
	$(PY) -m devstack.batch_emulator.walks.az_walk --az $(AZ_CLI_VENV)/bin/az

$(AZ_CLI_VENV)/bin/az:
	$(PYTHON) -m venv $(AZ_CLI_VENV)
	$(AZ_CLI_VENV)/bin/pip install --quiet --disable-pip-version-check azure-cli==2.91.0
