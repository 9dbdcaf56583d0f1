# The two commands the README promises: `make run` and `make test`.
# Each creates .venv and installs what it needs on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest browser-deps nginx-deps mailbox-deps bench clean messages screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mailbeacon migrate
	$(BIN)/mailbeacon demo-user
	$(BIN)/mailbeacon serve --host 127.0.0.1 --port 8000

# Debian's Chromium for the browser tests; never a downloaded browser.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's nginx for the reverse-proxy tests, which start it themselves as a
# child process. The package's own service is not started: a policy-rc.d
# saying "no" is put in place for the install when there is none already.
nginx-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  POLICY=/usr/sbin/policy-rc.d; MADE=; \
	  if [ ! -e $$POLICY ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$POLICY >/dev/null && $$SUDO chmod +x $$POLICY && MADE=1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx >/dev/null; \
	  STATUS=$$?; if [ -n "$$MADE" ]; then $$SUDO rm -f $$POLICY; fi; exit $$STATUS; }

# Debian's Dovecot (a real IMAP server the mailbox tests start as a child process
# with a throwaway config) and swaks (a real SMTP client). As for nginx, a
# policy-rc.d saying "no" keeps the package from starting a system Dovecot.
mailbox-deps:
	@{ [ -x /usr/sbin/dovecot ] && command -v swaks >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  POLICY=/usr/sbin/policy-rc.d; MADE=; \
	  if [ ! -e $$POLICY ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$POLICY >/dev/null && $$SUDO chmod +x $$POLICY && MADE=1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dovecot-imapd swaks >/dev/null; \
	  STATUS=$$?; if [ -n "$$MADE" ]; then $$SUDO rm -f $$POLICY; fi; exit $$STATUS; }

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser-deps nginx-deps mailbox-deps
	$(BIN)/pytest

test: lint typecheck pytest

# Re-take the README's screenshots (docs/screenshots/) from the browser tests.
screenshots: $(STAMP) browser-deps
	MAILBEACON_SCREENSHOTS=1 $(BIN)/pytest tests/browser -q

bench: $(STAMP)
	$(BIN)/python bench/collector.py

# Extract user-visible strings and merge them into every language's catalogue.
LOCALE := src/mailbeacon/web/locale
LANGS := de sv pl it et
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output -w 100 \
	  --project MailBeacon -o $(LOCALE)/messages.pot src/mailbeacon
	for lang in $(LANGS); do \
	  if [ -f $(LOCALE)/$$lang/LC_MESSAGES/messages.po ]; then \
	    $(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -w 100 -i $(LOCALE)/messages.pot \
	      -d $(LOCALE) -l $$lang; \
	  else $(BIN)/pybabel init -i $(LOCALE)/messages.pot -d $(LOCALE) -l $$lang; fi; \
	done

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
