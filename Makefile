# BreakingWind: `make run` starts the daemon, `make test` runs the suite. Both install first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test-tools run test lint bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	./scripts/install.sh
	touch $(STAMP)

run: install
	$(PY) -m breakingwind serve

# The speech tests synthesise audio with espeak-ng and the dashboard tests drive Debian's
# chromium; install them when we can (root + apt), else those tests skip with the reason.
test-tools:
	@command -v espeak-ng >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null) \
		|| echo "espeak-ng not installed: speech tests will be skipped"; }
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: dashboard tests will be skipped"; }

test: install test-tools
	$(PY) -m ruff check breakingwind tests
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check breakingwind tests
	$(PY) -m ruff format --check breakingwind tests

bench: install
	$(PY) -m breakingwind bench

clean-venv:
	rm -rf $(VENV)
