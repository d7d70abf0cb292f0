# sensord developer tasks. Every target installs what it needs on a fresh Debian machine (as root).
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/demo.toml

.PHONY: help venv deps-system run listen test test-python test-ha lint fuzz bench bench-start bench-delivery bench-wire bench-faults bench-instructions bench-idle bench-fleet plugin-index deb deb-test clean

help:
	@echo "make run    run sensord on config/demo.toml, with a local mosquitto on 127.0.0.1:1883"
	@echo "make listen print the decoded readings and status arriving at that broker"
	@echo "make test   the whole test suite, as CI runs it: make test-python, then make deb-test"
	@echo "make test-python  create .venv, install sensord[test] and mosquitto, run the Python suite on both stacks"
	@echo "make test-ha  discovery against a real Home Assistant in .venv-ha (not part of make test; about 5.5 min the first time, 2 min after)"
	@echo "make lint   ruff and mypy"
	@echo "make bench  start-up, delivery, wire, faults, instructions and idle benchmarks (bench/, about 22 minutes)"
	@echo "make bench-faults  disk-full figures: publishes per batch, read rate, readings lost at SIGTERM"
	@echo "make bench-instructions  instructions per reading of the pipeline (callgrind), machine-independent"
	@echo "make bench-idle  wake-ups (context switches) per minute of an idle node and a 10-channel node, both stacks"
	@echo "make fuzz   the decoder against 1,000,000 random and mutated payloads"
	@echo "make deb    build dist/sensord_<version>_all.deb and check it with lintian"
	@echo "make deb-test  install that .deb in clean bookworm, trixie and arm64 roots and test it there"

# python3-venv provides ensurepip on Debian; mosquitto is the broker the integration tests start;
# tests/test_netns.py makes namespaces and veth pairs with iproute2 and counts SYNs with tcpdump.
deps-system:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	@command -v mosquitto >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; }
	@{ PATH=$$PATH:/usr/sbin command -v ip && PATH=$$PATH:/usr/sbin command -v tcpdump; } >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 tcpdump; }

$(BIN)/.installed: pyproject.toml | deps-system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# Starts mosquitto on 127.0.0.1:1883 unless something listens there already, and stops it again
# when sensord exits (Ctrl-C). Without a broker, sensord keeps everything in its offline buffer.
run: venv deps-system
	@mkdir -p .state
	@broker=; \
	if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then \
	  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' > .state/mosquitto.conf; \
	  setsid mosquitto -c .state/mosquitto.conf 2> .state/mosquitto.log & broker=$$!; \
	  echo "make run: started mosquitto on 127.0.0.1:1883 (pid $$broker, log .state/mosquitto.log)"; \
	fi; \
	trap '[ -n "$$broker" ] && kill $$broker 2>/dev/null' EXIT; \
	echo "make run: sensord run -c $(CONFIG)  (Ctrl-C stops; 'make listen' in another shell shows the data)"; \
	$(BIN)/sensord run -c $(CONFIG)

listen: venv
	$(BIN)/sensord listen -c $(CONFIG) --status

# The second run is Debian bookworm's MQTT stack (asyncio-mqtt 0.16 on paho 1.6, pluggy 1.0,
# gpiozero 1.6.2): the .deb must work with what the distribution ships.
test-python: venv deps-system
	$(BIN)/pytest
	.ci/bookworm-env
	.venv-bookworm/bin/pytest

# A real Home Assistant core (.ci/ha-env: 2026.2.3 in .venv-ha, about 900 MB) against a test
# mosquitto; see docs/homeassistant-testing.md. Not in `make test`: the HA tests run only when
# tests/ha is named.
test-ha: venv deps-system
	.ci/ha-env
	$(BIN)/pytest -m ha tests/ha

# The whole suite, as CI runs it (.ci/run): the Python tests on both library stacks, then the
# Debian package built, installed and run in clean roots.
test: test-python deb-test

# The table of which built-in driver registers which sensor types (plugins/_index.py), so that a
# start-up imports only the drivers its config names; run it after adding a driver or a type.
plugin-index: venv
	$(BIN)/python -c 'from sensord.plugins import write_builtin_index; write_builtin_index()'

lint: venv
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/ruff check sensord plugins tests bench
	$(BIN)/mypy

fuzz: venv
	SENSORD_FUZZ_N=1000000 $(BIN)/pytest tests/test_decode_fuzz.py

bench: bench-start bench-delivery bench-wire bench-faults bench-instructions bench-idle

bench-fleet: venv deps-system
	$(BIN)/python bench/fleet.py --nodes 50 --seconds 60
	$(BIN)/python bench/fleet.py --nodes 50 --seconds 60 --bridges 2

bench-start: venv
	$(BIN)/python bench/check_startup.py --instructions

bench-delivery: venv deps-system
	$(BIN)/python bench/delivery.py

# Captures the client's packets on lo with tcpdump: about 11 minutes (5 encodings x 125 s).
# Disk-full figures (issue 10): buffer on a tiny tmpfs (needs root for mount), real mosquitto; about 1 minute.
bench-faults: venv deps-system
	$(BIN)/python bench/faults.py

bench-wire: venv deps-system
	@command -v tcpdump >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump; }
	$(BIN)/python bench/wire.py

# Instructions per reading of the pipeline under valgrind's callgrind: a CPU figure that does not
# depend on the machine or its load (issue 13). About 2 minutes.
bench-instructions: venv
	@command -v valgrind >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	$(BIN)/python bench/instructions.py

# Context switches per minute of an idle node and of the 10-channel node, on both MQTT library
# stacks (issue 13): about 5 minutes.
bench-idle: venv deps-system
	$(BIN)/python bench/idle.py
	.ci/bookworm-env
	.venv-bookworm/bin/python bench/idle.py

# Debian package: dpkg-buildpackage in a clean environment, so /usr/bin/python3 and the
# distribution's packages build it and run its unit tests (never .venv). Output in dist/.
DEB_VERSION = $(shell dpkg-parsechangelog -S Version 2>/dev/null)
PY_VERSION  = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' sensord/__init__.py)
DEB_ENV     = env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$$HOME" LC_ALL=C.UTF-8

deb:
	@command -v dpkg-parsechangelog >/dev/null && dpkg-checkbuilddeps 2>/dev/null && command -v lintian >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev lintian && \
	    DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq ./; }
	@[ "$(DEB_VERSION)" = "$(PY_VERSION)" ] || \
	  { echo "make deb: debian/changelog says $(DEB_VERSION), sensord/__init__.py says $(PY_VERSION)"; exit 1; }
	$(DEB_ENV) dpkg-buildpackage -us -uc -b
	mkdir -p dist && mv ../sensord_$(DEB_VERSION)_all.deb ../sensord_$(DEB_VERSION)_*.changes ../sensord_$(DEB_VERSION)_*.buildinfo dist/
	$(DEB_ENV) lintian --pedantic --fail-on error,warning dist/sensord_$(DEB_VERSION)_all.deb dist/sensord_$(DEB_VERSION)_*.changes
	$(DEB_ENV) debian/rules clean

# debootstrap'ed bookworm/trixie (amd64) and bookworm (arm64, qemu-user) roots from the host's apt
# mirror (SENSORD_DEB_MIRROR overrides), cached in /var/cache/sensord-deb-test (SENSORD_DEB_CACHE);
# about 4 minutes cold, 1.5 warm. See .ci/deb-test.
deb-test: deb
	.ci/deb-test dist/sensord_$(DEB_VERSION)_all.deb

clean:
	rm -rf $(VENV) .venv-bookworm .state build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
