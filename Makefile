# Custodia: two commands.
#   make run   — install, migrate, load the demo, start the web server and a worker on the embedded defaults
#   make test  — install everything the tests need, lint and type-check, run the suite on SQLite and PostgreSQL
# Everything installs itself: Debian packages (when missing), the virtual environment, Node tools.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DATA_DIR ?= $(CURDIR)/var
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_PASSWORD ?= custodia-demo
APT_PACKAGES := postgresql redis-server chromium xmlsec1 libmagic1 qemu-utils sleuthkit mtools dosfstools \
	e2fsprogs ntfs-3g xz-utils apfsprogs docker-compose poppler-utils \
	cryptsetup-bin qpdf fdisk openssl antiword catdoc

export CUSTODIA_DATA_DIR := $(DATA_DIR)

.PHONY: run test lint format system-packages venv node-tools worker screenshots clean bench-smoke bench-plaso-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Only what is missing is installed, so a machine that has everything needs neither root nor network.
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		sudo_cmd=""; [ "$$(id -u)" = 0 ] || sudo_cmd="sudo"; \
		$$sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo_cmd apt-get install -y -qq --no-install-recommends $$missing; \
	fi

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-tools: node_modules/.installed

$(DATA_DIR)/keys/master.key:
	mkdir -p $(DATA_DIR)/keys && chmod 700 $(DATA_DIR)/keys
	umask 077 && $(PYTHON) -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())" > $@

$(DATA_DIR)/keys/audit-signing.key:
	mkdir -p $(DATA_DIR)/keys && chmod 700 $(DATA_DIR)/keys
	umask 077 && $(PYTHON) -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())" > $@

# The privacy model's system-wide key (audit.privacy, docs/privacy.md): its own key, never in the database.
$(DATA_DIR)/keys/privacy.key:
	mkdir -p $(DATA_DIR)/keys && chmod 700 $(DATA_DIR)/keys
	umask 077 && $(PYTHON) -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())" > $@

# The SAML service provider's signing key and certificate (cases/saml): one pair for every organisation,
# in files, never in the database. The certificate is what each organisation's IdP is given (SP metadata).
$(DATA_DIR)/keys/saml-sp.key:
	mkdir -p $(DATA_DIR)/keys && chmod 700 $(DATA_DIR)/keys
	umask 077 && openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 -subj "/CN=Custodia SAML service provider" \
		-keyout $@ -out $(DATA_DIR)/keys/saml-sp.crt 2>/dev/null

# bandit over the code base (issue #17). Skipped here are the checks ruff's flake8-bandit rules ("S" in
# pyproject.toml) already hold line by line, where each accepted finding carries `# noqa: Sxxx - why`:
# B608 = S608 (SQL text built from our own table and column names; values are always parameters),
# B105 = S105 (names of secret kinds, not secrets), B305 = S305 (ECB only where a disk format demands it),
# B314/B405 = S314/S405 (evidence XML read by expat, which resolves no external entity and caps entity
# expansion). Any other finding is explained on its line: `# nosec Bxxx # why`.
BANDIT_ARGS := -q -r alerts audit cases custodia evidence hashsets search -x '*/migrations/*' -s B608,B105,B305,B314,B405

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit $(BANDIT_ARGS)

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: system-packages venv node-tools lint
	$(PY) tests/run_all.py -q
	$(MAKE) --no-print-directory bench-smoke

# Every benchmark in its smallest mode (seconds each, nothing timed is asserted): a benchmark that no longer
# runs fails here, not on the day someone wants its figures. Helper modules (no main) are skipped.
BENCH_HELPERS := bench/machine.py
bench-smoke: venv
	@set -e; for bench in $(filter-out $(BENCH_HELPERS),$(sort $(wildcard bench/*.py))); do \
		echo "bench-smoke: $$bench --smoke"; \
		started=$$(date +%s); \
		$(PY) $$bench --smoke > /dev/null || { echo "bench-smoke: $$bench --smoke FAILED"; exit 1; }; \
		echo "bench-smoke: $$bench ok in $$(( $$(date +%s) - started )) s"; \
	done

# plaso (log2timeline + psort), the peer bench/extract_pipeline.py compares with: a virtual environment of
# its own, never a project dependency and never part of make test.
PLASO_VERSION := 20260720
PLASO_VENV := bench/.plaso-venv
$(PLASO_VENV)/.installed:
	test -x $(PLASO_VENV)/bin/python || $(PYTHON) -m venv $(PLASO_VENV)
	$(PLASO_VENV)/bin/pip install --quiet --upgrade pip
	$(PLASO_VENV)/bin/pip install --quiet plaso==$(PLASO_VERSION)
	touch $@

bench-plaso-venv: $(PLASO_VENV)/.installed

# The keys live outside the evidence folder; every command of the run (migrations and the demo write
# audit rows, whose checkpoints are signed) reads them from the files made above.
run: export CUSTODIA_MASTER_KEY_FILE := $(DATA_DIR)/keys/master.key
run: export CUSTODIA_AUDIT_SIGNING_KEY_FILE := $(DATA_DIR)/keys/audit-signing.key
run: export CUSTODIA_SAML_SP_KEY_PATH := $(DATA_DIR)/keys/saml-sp.key
run: export CUSTODIA_PRIVACY_KEY_FILE := $(DATA_DIR)/keys/privacy.key
run: export CUSTODIA_SAML_SP_CERT_PATH := $(DATA_DIR)/keys/saml-sp.crt
# Running needs the Debian packages too (libmagic for every extraction, e2fsprogs and fdisk for the generated
# demo disk, The Sleuth Kit): a fresh machine gets them here, as `make test` does. The pages need no npm assets.
run: system-packages venv $(DATA_DIR)/keys/master.key $(DATA_DIR)/keys/audit-signing.key $(DATA_DIR)/keys/saml-sp.key $(DATA_DIR)/keys/privacy.key
	$(PY) manage.py migrate --noinput
	DEMO_PASSWORD=$(DEMO_PASSWORD) $(PY) manage.py seed_demo
	$(PY) manage.py seed_demo_evidence
	@echo
	@echo "  Custodia is starting at http://$(HOST):$(PORT)/"
	@echo "  Log in as custodian, investigator, detective, prosecutor or orgadmin; password: $(DEMO_PASSWORD)"
	@echo "  (outsider belongs to another organisation and sees none of the demo case). Ctrl-C stops both."
	@echo
	$(VENV)/bin/celery -A custodia worker -B --pool=solo -Q celery,capture --loglevel=WARNING & worker=$$!; \
	trap "kill $$worker 2>/dev/null; wait $$worker 2>/dev/null" EXIT INT TERM; \
	$(PY) manage.py runserver $(HOST):$(PORT)

# The README's pictures: the browser tests that walk the demo case (seeded by each), at 1280 x 800, in light
# mode (docs/dark.png in dark mode). Each test writes its PNGs when CUSTODIA_SCREENSHOT_DIR is set.
SCREENSHOT_TESTS := tests/browser/test_case_pages.py tests/browser/test_evidence_pages.py \
	tests/browser/test_search_pages.py tests/browser/test_hashset_pages.py \
	tests/browser/test_triage_pages.py tests/browser/test_triage_search_pages.py
screenshots: venv
	rm -rf var/screenshots
	CUSTODIA_SCREENSHOT_DIR=$(CURDIR)/var/screenshots $(PY) -m pytest -q -p no:cacheprovider -m browser $(SCREENSHOT_TESTS)
	cp var/screenshots/case-detail.png docs/screenshot.png
	cp var/screenshots/evidence-detail.png docs/evidence.png
	cp var/screenshots/search.png docs/search.png
	cp var/screenshots/trace.png docs/trace.png
	cp var/screenshots/search-timeline.png docs/timeline.png
	cp var/screenshots/hashsets.png docs/hashsets.png
	cp var/screenshots/case-attention.png docs/attention.png
	cp var/screenshots/folder-tree.png docs/tree.png
	cp var/screenshots/gallery.png docs/gallery.png
	cp var/screenshots/events.png docs/events.png
	cp var/screenshots/facets.png docs/facets.png
	cp var/screenshots/organisation-admin.png docs/org-admin.png
	cp var/screenshots/search-dark.png docs/dark.png

clean:
	rm -rf $(VENV) node_modules var
