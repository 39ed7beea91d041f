# The two commands a new hotline needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# axe-core for the browser tests' accessibility checks (test-only, from npm).
AXE    := $(VENV)/axe/node_modules/axe-core/axe.min.js
# pytest-xdist processes for `make test`: each has its own PostgreSQL database and
# Redis namespace. Two halve the suite's time on a 2-core machine (26 -> 14 minutes);
# more would also multiply the database connections the tests hold.
TEST_PROCESSES ?= 2

.PHONY: install run cli test lint typecheck bench migrate clean i18n

# Each step says what it does (on stderr, so `make bench > figures.json` stays clean).
# setuptools prints an information-only note on every editable install of a project
# laid out like this one ("Editable installation..."): filtered, nothing to act on.
$(STAMP): pyproject.toml constraints.txt
	@echo "==> [1/3] Creating the virtual environment $(VENV)" >&2
	@$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] Upgrading pip" >&2
	@$(BIN)/pip install -q --upgrade pip >&2
	@echo "==> [3/3] Installing hotline and its pinned dependencies (constraints.txt);" \
		"a minute or two the first time" >&2
	@PYTHONWARNINGS="ignore:Editable installation" \
		$(BIN)/pip install --progress-bar on -c constraints.txt -e '.[dev]' >&2
	@touch $(STAMP)
	@echo "==> Installed. The command line: $(BIN)/hotline --help (or make cli ARGS=--help)" >&2

install: $(STAMP)

## Run the whole system in one process (embedded mode: SQLite, in-process broker).
run: install
	@echo "==> Starting hotline (make run): other commands in another terminal with" \
		"$(BIN)/hotline ... or make cli ARGS='status'" >&2
	@# Byte-compiled once, as a wheel's install would (an editable install does not;
	@# with PYTHONDONTWRITEBYTECODE every command would compile its modules again).
	@$(BIN)/python -m compileall -q pipeline workers schemas >/dev/null
	$(BIN)/hotline run

## Any other hotline command: make cli ARGS="status --json"
cli: install
	@$(BIN)/hotline $(ARGS)

## Set up and run the whole test suite (lint, types, tests). The console's browser
## tests need Debian's chromium, the mailbox's IMAP tests Debian's dovecot-imapd:
## installed here when missing and run as root (as CI is); elsewhere they are skipped
## (but fail when CI=true). axe-core comes from npm into .venv/axe (test-only).
test: install
	@test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || \
		(echo "==> Installing Debian's chromium for the console's browser tests" >&2 && \
		 apt-get update && apt-get install -y chromium chromium-driver)
	@test -x /usr/sbin/dovecot || [ "$$(id -u)" != 0 ] || \
		(echo "==> Installing Debian's dovecot-imapd for the mailbox's IMAP tests" >&2 && \
		 apt-get update && apt-get install -y --no-install-recommends dovecot-imapd)
	@test -f $(AXE) || (echo "==> Installing axe-core (npm) for the accessibility checks" >&2 && \
		npm install --prefix $(VENV)/axe --no-save --no-audit --no-fund axe-core@4.14.1 >&2) \
		|| echo "axe-core not installed: the accessibility checks skip (they fail when CI=true)" >&2
	@echo "==> [1/5] Lint (ruff)" >&2
	$(BIN)/ruff check .
	@echo "==> [2/5] Types (mypy)" >&2
	$(BIN)/mypy pipeline
	@echo "==> [3/5] Import contracts (import-linter)" >&2
	$(BIN)/lint-imports --no-cache
	@echo "==> [4/5] Documentation (mkdocs --strict)" >&2
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .venv/docs-site
	@echo "==> [5/5] Tests (pytest, $(TEST_PROCESSES) processes)" >&2
	$(BIN)/pytest -n $(TEST_PROCESSES)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy pipeline

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
