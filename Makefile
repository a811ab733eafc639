# Two commands set up and run everything on a fresh machine:
#   make demo   - the main job: a LangChain conversation stored in an embedded Redis
#   make test   - the test suite (starts its own redis-server processes)
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# langchainjs's @langchain/redis, for tests/test_langchainjs.py (pinned in its package-lock.json)
JS := tests/js
JS_STAMP := $(JS)/node_modules/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.10 is needed" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[cli,test,bench,agents]'
	@touch $(STAMP)

setup: $(STAMP)

# Without npm the rest of the suite still runs; tests/test_langchainjs.py then fails and says why.
$(JS_STAMP): $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(JS) --loglevel=error --no-audit --no-fund >/dev/null && touch $(JS_STAMP); \
	else echo "npm not found: tests/test_langchainjs.py will fail (it needs Node >= 20 and npm)" >&2; fi

demo: setup
	$(BIN)/redis-chat-history demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: setup lint $(JS_STAMP)
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(JS)/node_modules
