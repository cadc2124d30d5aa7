# Every target prepares .venv itself, so each works on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := app:create_app()

.PHONY: run run-scaled test test-sqlite test-postgres bench migrate lint browsers clean translations docs

# requirements.txt installs packages/flask-jobprogress (not editable): a change to it reinstalls it.
JOBPROGRESS := packages/flask-jobprogress
JOBPROGRESS_FILES := $(JOBPROGRESS)/pyproject.toml $(JOBPROGRESS)/README.md $(wildcard $(JOBPROGRESS)/src/flask_jobprogress/*.py $(JOBPROGRESS)/src/flask_jobprogress/static/*)

$(STAMP): requirements.txt requirements-dev.txt $(JOBPROGRESS_FILES)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

migrate: $(STAMP)
	$(BIN)/flask db upgrade

run: migrate
	$(BIN)/gunicorn -c gunicorn.conf.py app:app

# gunicorn and two Celery workers (Procfile), for PROGRESS_STORE=redis JOB_RUNNER=celery and a
# PostgreSQL DATABASE_URL: see docs/scale-out.md.
run-scaled: migrate
	$(BIN)/honcho start

# The docs (a strict build: a broken link or a missing results file fails), then the whole suite on
# SQLite, then again on PostgreSQL (SILLON_TEST_DATABASE=postgresql: a server on 127.0.0.1:5432, user
# postgres, or TEST_DATABASE_URL=postgresql+psycopg://user@host:port). The PostgreSQL pass fails,
# never skips, when the server cannot be reached.
# The package's tests (packages/flask-jobprogress/tests, in testpaths) take their PostgreSQL server from
# JOBPROGRESS_TEST_DATABASE_URL.
POSTGRES_SERVER ?= $(or $(TEST_DATABASE_URL),postgresql+psycopg://postgres@127.0.0.1:5432)
ON_POSTGRES := SILLON_TEST_DATABASE=postgresql JOBPROGRESS_TEST_DATABASE_URL=$(POSTGRES_SERVER)

test: docs
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(ON_POSTGRES) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-sqlite: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: $(STAMP)
	$(ON_POSTGRES) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The documentation site (MkDocs, Material theme) into site/; the settings and performance pages
# get their tables from config.SETTINGS and bench/results/*.json (mkdocs_hooks.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# ruff, then the layers of modules/ (.importlinter; tests/test_layers.py runs the same in the suite).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache site

# Re-extract the page texts, merge them into each catalogue (translations/<lang>/LC_MESSAGES/
# messages.po), and compile the .mo files the app reads (committed; a test checks they are current).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d translations
