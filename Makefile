# Two commands set up and run everything on a fresh machine:
#   make demo   - the main job: a LangChain conversation stored in an embedded Redis
#   make test   - lint and the suite twice, all at once: newest dependencies (.venv) and the
#                 lowest pyproject.toml allows (.venv-lowest, pinned by constraints/lowest.txt)
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && { echo $$p; break; }; done)
# The lowest dependency set runs on the oldest Python the package supports (pyenv's too),
# or on $(PYTHON) where there is none.
LOWEST_PYTHON ?= $(shell for p in python3.10 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10 $(PYTHON); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1 && { echo $$p; exit 0; }; done; echo $(PYTHON))
EXTRAS := cli,embedded,agents,test,bench
# The newest set also installs the benchmark's peer checkpointers (their floors are above ours).
NEWEST_EXTRAS := $(EXTRAS),bench-peers
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# langchainjs's @langchain/redis, for tests/test_langchainjs.py (pinned in its package-lock.json)
JS := tests/js
JS_STAMP := $(JS)/node_modules/.installed
LOWEST_VENV ?= .venv-lowest
LOWEST_BIN := $(LOWEST_VENV)/bin
LOWEST_STAMP := $(LOWEST_VENV)/.installed
CONSTRAINTS := constraints/lowest.txt
# Servers each set must find (label prefixes, see tests/conftest.py): the newest set runs
# Redis 7.x, 6.2 and Valkey 9; the lowest set the newest Redis only (the same tests
# on other servers would check redis-server, not our dependencies).
NEWEST_SERVERS ?= redis7,redis6.2,valkey9
LOWEST_SERVERS ?= redis7
# The suites cache bytecode (__pycache__, ignored by git) even where the environment says
# not to (PYTHONDONTWRITEBYTECODE): each of the many Pythons the suite starts (the installed
# command, uWSGI, a nested pytest) would compile the package and the test modules again.
SUITE_ENV := PYTHONDONTWRITEBYTECODE=

.PHONY: setup setup-lowest demo test test-newest test-lowest lint bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.10 is needed" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(NEWEST_EXTRAS)]'
	@touch $(STAMP)

$(LOWEST_STAMP): pyproject.toml $(CONSTRAINTS)
	$(LOWEST_PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_BIN)/python -m pip install -q --upgrade pip
	$(LOWEST_BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	@touch $(LOWEST_STAMP)

setup: $(STAMP)

# Without npm the rest of the suite still runs; tests/test_langchainjs.py then fails and says why.
$(JS_STAMP): $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(JS) --loglevel=error --no-audit --no-fund >/dev/null && touch $(JS_STAMP); \
	else echo "npm not found: tests/test_langchainjs.py will fail (it needs Node >= 20 and npm)" >&2; fi

setup-lowest: $(LOWEST_STAMP)

demo: setup
	$(BIN)/redis-chat-history demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# Everything at once: the two installs and npm ci, then lint and both sets, each starting
# as soon as what it needs is installed (the lowest set, the longer one, does not wait for
# the newest install or for lint). Each one's output is printed when it ends; any failure
# fails `make test`.
test:
	@$(MAKE) --no-print-directory -j3 --output-sync=target lint test-newest test-lowest

test-newest: setup $(JS_STAMP)
	@echo "== newest dependencies ($$($(BIN)/python -V)), servers $(NEWEST_SERVERS)"
	$(SUITE_ENV) RCH_TEST_SERVERS=$(NEWEST_SERVERS) $(BIN)/pytest -q -p no:cacheprovider

test-lowest: setup-lowest $(JS_STAMP)
	@echo "== lowest dependencies ($$($(LOWEST_BIN)/python -V), $(CONSTRAINTS)), servers $(LOWEST_SERVERS)"
	$(SUITE_ENV) RCH_DEPENDENCIES=lowest RCH_TEST_SERVERS=$(LOWEST_SERVERS) $(LOWEST_BIN)/pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(LOWEST_VENV) .pytest_cache .mypy_cache .ruff_cache $(JS)/node_modules
