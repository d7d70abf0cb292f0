# sensord developer tasks. Every target installs what it needs on a fresh Debian machine (as root).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/demo.toml

.PHONY: help venv deps-system run test lint bench clean

help:
	@echo "make run    run sensord on config/demo.toml (simulated and system sensors)"
	@echo "make test   create .venv, install sensord[test] and mosquitto, run the whole test suite"
	@echo "make lint   ruff and mypy"
	@echo "make bench  start-up benchmark (sensord check with 100 sensors)"

# python3-venv provides ensurepip on Debian; mosquitto is the broker the integration tests start.
deps-system:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	@command -v mosquitto >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; }

$(BIN)/.installed: pyproject.toml | deps-system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

run: venv
	@echo "sensord: reading $(CONFIG) every 5 s (Ctrl-C stops)"
	@while $(BIN)/sensord read -c $(CONFIG); do echo; sleep 5; done

test: venv deps-system
	$(BIN)/pytest

lint: venv
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/ruff check sensord plugins tests bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/check_startup.py

clean:
	rm -rf $(VENV) .state build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
