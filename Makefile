# The two commands a new hotline needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck bench migrate clean hotline i18n

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip >&2
	@$(BIN)/pip install -q -c constraints.txt -e '.[dev]' >&2
	@touch $(STAMP)

install: $(STAMP)

## Run the whole system in one process (embedded mode: SQLite, in-process broker).
run: install
	$(BIN)/hotline run

## Set up and run the whole test suite (lint, types, tests). The console's browser
## tests need Debian's chromium: installed here when missing and run as root (as CI
## is); elsewhere they are skipped (but fail when CI=true).
test: install
	@test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	$(BIN)/ruff check .
	$(BIN)/mypy pipeline
	$(BIN)/lint-imports --no-cache
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .venv/docs-site
	@test -f tests/web/console/node/node_modules/axe-core/axe.min.js || \
		npm install --prefix tests/web/console/node --no-audit --no-fund axe-core@4.14.1
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy pipeline

## The command line: make hotline ARGS="status" (the same as .venv/bin/hotline status).
hotline: install
	@$(BIN)/hotline $(ARGS)

migrate: install
	$(BIN)/hotline migrate

## Benchmark: prints one JSON object of figures (BENCH_N reports, default 100000);
## progress and install output go to stderr, so `make bench > figures.json` works.
bench: install
	@$(BIN)/python -m bench

## Extract people-facing text into pipeline/locale/messages.pot (babel.cfg) and merge
## it into every catalog (sr_Latn, en). Translate the new entries in the .po files; no
## compile step: the catalogs are compiled in memory at first use.
i18n: install
	$(BIN)/pybabel extract -F babel.cfg --project=hotline --copyright-holder="hotline contributors" \
		--msgid-bugs-address="" --sort-by-file -o pipeline/locale/messages.pot .
	$(BIN)/pybabel update -i pipeline/locale/messages.pot -d pipeline/locale -D messages \
		--no-fuzzy-matching --ignore-obsolete

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
