# chatload: `make run` and `make test` do everything from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCENARIO ?= scenarios/ci-smoke.toml

.PHONY: setup run test lint layering wheel install-check bench clean browser iptables prometheus wrk

setup: $(STAMP) browser iptables prometheus

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's chromium for the browser test (no browser download); skipped where apt is not usable.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the browser test will be skipped"; \
	  else echo "chromium not found and apt-get not usable: the browser test will be skipped"; fi; \
	fi

# Debian's iptables for the network-fault tests (partitions between namespaces); skipped where apt is
# not usable (those tests then skip with a one-line reason).
iptables:
	@if ! command -v iptables >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's iptables for the network-fault tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null) \
	      || echo "iptables could not be installed: the partition tests will be skipped"; \
	  else echo "iptables not found and apt-get not usable: the partition tests will be skipped"; fi; \
	fi

# Debian's prometheus for the metrics end-to-end test (a real server scrapes --metrics-port); skipped
# where apt is not usable (that test then skips with a one-line reason).
prometheus:
	@if ! command -v prometheus >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's prometheus for the metrics test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	      || echo "prometheus could not be installed: the metrics end-to-end test will be skipped"; \
	  else echo "prometheus not found and apt-get not usable: the metrics end-to-end test will be skipped"; fi; \
	fi

run: setup
	$(VENV)/bin/chatload run $(SCENARIO)

test: setup lint layering
	$(PY) -m pytest -q -n 2 --dist load

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The wheel, as pip and pipx install it.
wheel: setup
	rm -rf dist build/lib
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist . 2>&1 | grep -v '^WARNING: Location' || true
	@ls dist/chatload-*.whl

# The import-linter contracts (pyproject.toml), read from the installed layout: the wheel unpacked,
# since the repository maps harness/, emulator/ and analysis/ to chatload.* (docs/internals.md).
layering: wheel
	rm -rf build/layering && mkdir -p build/layering
	cd build/layering && ../../$(PY) -m zipfile -e ../../dist/chatload-*.whl . \
	  && PYTHONPATH=. ../../$(VENV)/bin/lint-imports --no-cache ../../pyproject.toml

# The wheel installed with pip into a fresh virtualenv outside the checkout, used from another folder.
install-check: wheel
	bash .ci/install-check dist/chatload-*.whl

# Debian's wrk drives the emulator benchmark.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk not found: install Debian's wrk for the emulator benchmark"; fi; }

bench: setup wrk
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
