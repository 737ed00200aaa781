# Everyday verbs. `make demo` and `make test` are the whole quickstart.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Tests and the stack run against the real services on 127.0.0.1; override as needed.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cash_office
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

# `make stack` runs web + worker + beat + Flower on this machine, without Docker, under
# supervisord (scripts/supervisord.conf), which restarts whichever process exits.
# Two roles (README.md, "Database roles"): the owner owns the database and its tables and
# migrates; the application's role owns nothing and runs the four processes. Both, and the
# database, are created from these URLs' names by scripts/stack_database.py as the local
# superuser (STACK_SUPERUSER). 127.0.0.1 is trusted here, so the URLs need no password.
STACK_OWNER_DATABASE_URL ?= postgres://cash_office_owner@127.0.0.1:5432/cash_office_stack
STACK_DATABASE_URL ?= postgres://cash_office_app@127.0.0.1:5432/cash_office_stack
STACK_SUPERUSER ?= postgres
STACK_REDIS_URL ?= redis://127.0.0.1:6379/1
# The admin (gunicorn) and Flower listen on 127.0.0.1 at these ports; supervisord.conf and
# the Procfile read them from the environment as WEB_PORT and FLOWER_PORT.
STACK_WEB_PORT ?= 8000
STACK_FLOWER_PORT ?= 5555
export STACK_OWNER_DATABASE_URL STACK_DATABASE_URL STACK_SUPERUSER
export FLOWER_BASIC_AUTH

# `make bench` runs every operation beside its floor on a data set of its own database,
# BENCH_SCALE times the national network's sizes (1.0: 1,000,000 payments and entries;
# 0.01 takes a couple of minutes), and writes bench/results.json (bench/README.md).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cash_office_bench
BENCH_SCALE ?= 1.0
# The audit bench replaces the trail and the cash tables of a database of its own.
BENCH_AUDIT_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cash_office_bench_audit
export BENCH_SCALE BENCH_DATABASE_URL BENCH_AUDIT_DATABASE_URL

.PHONY: install demo test bench lint format messages services chromium stack stack-database clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The demo's mail is written as files under var/sent-mail/ (no EMAIL_URL set).
DEMO_ENV := APP_LOG_LEVEL=WARNING
demo: $(STAMP)
	$(BIN)/python manage.py migrate --no-input -v0
	$(DEMO_ENV) $(BIN)/python manage.py sync_schedules
	$(DEMO_ENV) $(BIN)/python manage.py seed_demo
	@echo; echo "=== The four operations, run once on the demo data (a later make demo leaves them be) ==="
	$(DEMO_ENV) $(BIN)/python manage.py demo_operations
	@echo; echo "=== The outbox, delivered as cron would with no worker ==="
	$(DEMO_ENV) $(BIN)/python manage.py deliver_pending_email --without-workers
	@echo; echo "Mail written to var/sent-mail/. Admin: .venv/bin/python manage.py runserver, then http://127.0.0.1:8000/admin/ as admin / demo"

services:
	./scripts/ensure_services.sh

# The browser tests drive Debian's Chromium (tests/browser/); installed when missing.
chromium:
	./scripts/ensure_chromium.sh

test: $(STAMP) services chromium
	DJANGO_ENV=test DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) services
	$(BIN)/python scripts/ensure_database.py BENCH_DATABASE_URL BENCH_AUDIT_DATABASE_URL
	DATABASE_URL="$$BENCH_DATABASE_URL" $(BIN)/python manage.py migrate --no-input -v0
	DATABASE_URL="$$BENCH_DATABASE_URL" APP_LOG_LEVEL=WARNING EMAIL_URL=dummymail:// \
		$(BIN)/python scripts/bench.py
	DATABASE_URL="$$BENCH_AUDIT_DATABASE_URL" $(BIN)/python manage.py migrate --no-input -v0
	DATABASE_URL="$$BENCH_AUDIT_DATABASE_URL" APP_LOG_LEVEL=WARNING EMAIL_URL=dummymail:// \
		$(BIN)/python scripts/bench_audit.py

stack: $(STAMP) services
	@test -n "$$FLOWER_BASIC_AUTH" || { \
		echo "Flower refuses to start without credentials: make stack FLOWER_BASIC_AUTH=user:password"; \
		exit 2; }
	$(MAKE) --no-print-directory stack-database
	mkdir -p var/log var/run
	DATABASE_URL="$$STACK_DATABASE_URL" REDIS_URL=$(STACK_REDIS_URL) WEB_PORT=$(STACK_WEB_PORT) FLOWER_PORT=$(STACK_FLOWER_PORT) $(BIN)/supervisord -c scripts/supervisord.conf

# The stack's database, as the owner: the roles and the database (idempotent), migrate, the
# application's grants (again after every migrate), the schedules and the static files.
stack-database: $(STAMP) services
	$(BIN)/python scripts/stack_database.py
	DATABASE_URL="$$STACK_OWNER_DATABASE_URL" REDIS_URL=$(STACK_REDIS_URL) $(BIN)/python manage.py migrate --no-input
	DATABASE_URL="$$STACK_OWNER_DATABASE_URL" REDIS_URL=$(STACK_REDIS_URL) $(BIN)/python manage.py setup_database_roles --app-role "$$($(BIN)/python scripts/stack_database.py --app-role)"
	DATABASE_URL="$$STACK_OWNER_DATABASE_URL" REDIS_URL=$(STACK_REDIS_URL) $(BIN)/python manage.py sync_schedules
	DATABASE_URL="$$STACK_OWNER_DATABASE_URL" REDIS_URL=$(STACK_REDIS_URL) $(BIN)/python manage.py collectstatic --no-input -v0

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Extract every app's strings, keep the translations of strings that moved between apps,
# then compile. Needs Debian's gettext.
messages: $(STAMP)
	$(BIN)/python scripts/messages.py
	./scripts/po_fill.sh
	for po in */locale/fr/LC_MESSAGES/django.po; do msgfmt --check -o $${po%.po}.mo $$po; done

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
