# Everything the project needs is installed by `make install`; `make run` and `make test` call it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
PY := $(VENV)/bin/python
# checkov pins its own dependencies, so it lives in a tool environment of its own, not in uv.lock.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(TOOLS)/checkov/bin/checkov
PYTEST_FLAGS ?=

.PHONY: help install run test test-fast test-slow test-tenant-isolation test-openbao-integration test-billing-accuracy security-scan tofu-validate invoice-pdf bench wrk backup restore-check readiness lint format promtool chromium axe-core clean

help: ## List every target with what it does
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --all-extras --locked
	@touch $@

$(CHECKOV): | $(UV)
	$(UV) venv --quiet --python python3 $(TOOLS)/checkov
	$(UV) pip install --quiet --python $(TOOLS)/checkov/bin/python "checkov==$(CHECKOV_VERSION)"

install: $(VENV)/.installed $(CHECKOV) promtool chromium axe-core ## Install Python (uv-locked) dependencies, checkov, promtool, chromium and axe-core

promtool: ## Install promtool (Debian's prometheus package) where missing
	@command -v promtool >/dev/null || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# The browser tests (tests/browser.py) drive Debian's chromium through Playwright: Playwright's own browser
# download is never used.
chromium: ## Install Chromium (Debian's chromium package) for the browser tests, where missing
	@{ command -v chromium >/dev/null && [ -x /usr/bin/chromium ]; } || { \
	  echo "installing chromium (Debian package)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# axe-core (accessibility checks in the browser tests) comes from its npm package, pinned here.
AXE_CORE_VERSION := 4.10.3
# sha256 of the npm tarball axe-core-$(AXE_CORE_VERSION).tgz (npm pack also checks the registry's own integrity).
AXE_CORE_SHA256 := 0f2b4d7dcdf7d1219df8d1959ad68e565f51d14c3f0d88bb71cd59abeb956292
AXE_CORE_DIR := $(TOOLS)/axe-core
AXE_CORE_JS := $(AXE_CORE_DIR)/$(AXE_CORE_VERSION)/axe.min.js

axe-core: $(AXE_CORE_JS) ## Fetch axe-core's axe.min.js (npm package, pinned version) into .tools/axe-core, where missing
	@ln -sfn $(AXE_CORE_VERSION)/axe.min.js $(AXE_CORE_DIR)/axe.min.js

$(AXE_CORE_JS):
	@command -v npm >/dev/null || { \
	  echo "installing npm (Debian package)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	@mkdir -p $(AXE_CORE_DIR)/$(AXE_CORE_VERSION)
	cd $(AXE_CORE_DIR)/$(AXE_CORE_VERSION) && npm pack --silent axe-core@$(AXE_CORE_VERSION) >/dev/null \
	  && echo "$(AXE_CORE_SHA256)  axe-core-$(AXE_CORE_VERSION).tgz" | sha256sum --check --quiet \
	  && tar -xzmf axe-core-$(AXE_CORE_VERSION).tgz --strip-components=1 package/axe.min.js \
	  && rm axe-core-$(AXE_CORE_VERSION).tgz

run: install ## Start the whole stack on embedded services: API, worker and beat (Ctrl-C stops all)
	$(VENV)/bin/controlplane run

test: install ## Lint, type-check and check the import contracts, then run every test, slow suites included
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_FLAGS)

test-fast: install ## Run the tests without the slow suites (property-based isolation, schemathesis)
	$(PY) -m pytest -m "not slow" $(PYTEST_FLAGS)

test-slow: install ## Run only the slow suites
	$(PY) -m pytest -m slow $(PYTEST_FLAGS)

test-tenant-isolation: install ## Row-level security: the catalogue, the 10,000-operation property test, billing, plugin and reseller isolation
	$(PY) -m pytest tests/integration/test_rls_catalogue.py tests/integration/test_isolation_property.py \
	  tests/integration/test_user_visibility.py tests/integration/test_erasure_isolation.py \
	  tests/api/billing/test_isolation.py tests/integration/plugins_registry/test_plugin_rls.py \
	  tests/integration/test_partner_rls.py tests/integration/test_tenant_vault.py \
	  "tests/api/plugins/test_licenses.py::test_another_tenant_cannot_reach_a_license_or_install" $(PYTEST_FLAGS)

test-openbao-integration: install ## OpenBao through hvac: AppRole, license signing, rotation and rewrap, PII data keys, tenant namespaces, DB credentials
	$(PY) -m pytest tests/integration/test_openbao_approle.py tests/integration/plugins_registry/test_license_signing.py \
	  tests/integration/test_secret_rotation.py tests/e2e/test_secrets_cli.py tests/integration/test_tenant_vault.py \
	  tests/integration/test_pii_rewrap.py tests/api/test_tenant_data_keys.py tests/integration/test_db_credential_rotation.py \
	  tests/api/test_tenant_secrets.py tests/api/billing/test_webhook_secret_rollover.py $(PYTEST_FLAGS)

test-billing-accuracy: install ## Money maths (properties and worked examples), invoices, the ledger, the kill test
	$(PY) -m pytest tests/unit/billing tests/api/billing tests/integration/test_ledger.py \
	  tests/workers/test_billing_cycle.py $(PYTEST_FLAGS)

security-scan: install ## Static security scan (bandit, offline); fails on any medium or high finding
	$(VENV)/bin/bandit -q -c pyproject.toml -ll -r controlplane tenants billing workers plugins_registry

tofu-validate: install ## OpenTofu: parse every file (python-hcl2), checkov offline; tofu fmt/validate when tofu is installed
	$(PY) -m deploy.opentofu.validate --checkov $(CHECKOV)

invoice-pdf: install ## Render sample invoices (or INVOICE=<id> from the dev stack) to PDF and PNG under .devstack/invoice-pdf
	$(PY) -m bench.invoice_pdf $(if $(INVOICE),--invoice $(INVOICE))

bench: install wrk ## Benchmarks on a throwaway stack: usage ingestion, a 10,000-subscription run, the entitlement check, license signing, the revenue report, CRUD latency
	$(PY) -m bench.run

wrk: ## Install wrk (Debian package), the load generator of the CRUD benchmark, where missing
	@command -v wrk >/dev/null || { \
	  echo "installing wrk (Debian package)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null; }

backup: install ## Dump the database (pg_dump -Fc, as the owner) to CONTROLPLANE_BACKUP_DIR (default .devstack/backups) with sha256 and manifest
	$(VENV)/bin/controlplane backup create

restore-check: install ## Restore the newest backup into a scratch database: checksum, row counts, ledger, RLS; records the drill
	$(VENV)/bin/controlplane backup restore-check

readiness: install ## Named readiness checks (services, migrations, RLS, workers, billing, backups, SLOs); exit 0 only if every required one passes
	$(VENV)/bin/controlplane readiness $(READINESS_FLAGS)

lint: install ## Ruff lint, format check, mypy and the import contracts (the floors; pure modules stay pure)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: ## Stop the dev stack and remove the environment (keeps .devstack data)
	-$(VENV)/bin/controlplane devstack down
	rm -rf $(VENV) $(TOOLS)
