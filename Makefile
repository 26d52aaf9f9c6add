# Two commands do all the set-up on a fresh clone:
#   make demo   -- creates .venv from the lock (if missing or stale) and runs the demo audit
#   make test   -- the same set-up, then the test suite (what CI runs through .ci/run)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_QUIET := 2>&1 | grep -v -e "is ignored: it is neither" -e "Running pip as the 'root' user" || true
PYTEST_ARGS ?=

.PHONY: demo test test-all test-slow lock bench notebook clean-runs venv help

help:
	@echo "make demo       set up .venv and run the demo audit (pipelines/configs/demo.yaml)"
	@echo "make test       set up .venv and run the tests (not the 'slow' ones)"
	@echo "make test-slow  the slow tests: real MiniLM/SmolLM2 and a full demo audit"
	@echo "make notebook   start the classic notebook server for the What-If Tool"
	@echo "make bench      run the benchmarks (benchmarks/)"
	@echo "make lock       regenerate requirements/lock.txt with uv"

venv: $(STAMP)

# The venv is rebuilt when the lock, the carriers list or pyproject.toml change.
$(STAMP): requirements/lock.txt requirements/carriers.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (TFDV 1.16.1 has no wheels for " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11"'
	$(BIN)/python -m pip install -q --upgrade "pip>=23.2" $(PIP_QUIET)
	set -o pipefail; $(BIN)/python -m pip install -q --no-deps --find-links /opt/wheels -r requirements/lock.txt 2>&1 | grep -v -e "is ignored: it is neither" -e "Running pip as the 'root'"; test $${PIPESTATUS[0]} -eq 0
	set -o pipefail; $(BIN)/python -m pip install -q --no-deps -r requirements/carriers.txt 2>&1 | grep -v -e "is ignored: it is neither" -e "Running pip as the 'root'"; test $${PIPESTATUS[0]} -eq 0
	set -o pipefail; $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v -e "is ignored: it is neither" -e "Running pip as the 'root'"; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m pip check $(PIP_QUIET)
	@touch $(STAMP)

# Exit codes 1 (a gate failed) and 3 (insufficient evidence) are audit results, not
# failures of the demo; 2 is an error.
demo: $(STAMP)
	$(BIN)/fairness-audit run pipelines/configs/demo.yaml; rc=$$?; \
	  if [ $$rc -eq 2 ] || [ $$rc -gt 3 ]; then exit $$rc; fi

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit $$?; done

# Classic Notebook 6.5 on 127.0.0.1 with what the What-If Tool needs: the widget and WIT
# nbextensions enabled, and the pure-Python protobuf in the kernel (witwidget's old *_pb2.py).
notebook: $(STAMP)
	$(BIN)/python -m pipelines.explore.notebook_server $(NOTEBOOK_ARGS)

# Regenerate the fully pinned lock (uv resolves in seconds; pip's resolver backtracks for minutes).
lock:
	$(PYTHON) -m pip install -q uv $(PIP_QUIET)
	$(PYTHON) -m uv pip compile requirements/requirements.in --python-version 3.11 \
	  --find-links /opt/wheels --no-emit-find-links -o requirements/lock.txt

clean-runs:
	rm -rf reports/runs reports/cache
