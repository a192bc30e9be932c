# BreakingWind: `make run` starts the daemon, `make test` runs the suite. Both install first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	./scripts/install.sh
	touch $(STAMP)

run: install
	$(PY) -m breakingwind serve

test: install
	$(PY) -m ruff check breakingwind tests
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check breakingwind tests
	$(PY) -m ruff format --check breakingwind tests

bench: install
	$(PY) -m breakingwind bench

clean-venv:
	rm -rf $(VENV)
