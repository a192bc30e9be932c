# BreakingWind: `make run` starts the daemon, `make test` runs the suite. Both install first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test-tools run test lint bench clean-venv

install: $(STAMP)

# `make install BREAKINGWIND_BACKEND=cpu|cuda|metal|auto` (or a raw CMAKE_ARGS) re-runs the install
# when it differs from what the venv was last installed for (scripts/install.sh records it);
# without one, the venv keeps its backend.
ifneq ($(strip $(BREAKINGWIND_BACKEND)$(CMAKE_ARGS)),)
ifneq ($(shell cat $(VENV)/.backend-request 2>/dev/null),$(strip $(or $(BREAKINGWIND_BACKEND),auto) $(CMAKE_ARGS)))
.PHONY: $(STAMP)
endif
endif

$(STAMP): pyproject.toml scripts/install.sh breakingwind/backend_choice.py
	VENV=$(VENV) ./scripts/install.sh
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
