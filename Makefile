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

# Where pip gets torch's CPU wheel. The lock pins torch==2.13.0+cpu, which the public index
# does not serve (it refuses local version labels such as +cpu):
#   TORCH_FIND_LINKS  folder(s) or page URL(s) holding the wheel, for pip's --find-links. Default:
#                     the find-links pip is already configured with (PIP_FIND_LINKS or pip.conf),
#                     if any. Set it empty (TORCH_FIND_LINKS=) to use TORCH_INDEX_URL instead.
#   TORCH_INDEX_URL   PyTorch's CPU wheel index, added as --extra-index-url when TORCH_FIND_LINKS
#                     is empty. With both empty, pip's own configuration alone must find torch.
# e.g. `make demo TORCH_FIND_LINKS=~/wheels`, or `make demo TORCH_INDEX_URL=https://mirror/whl/cpu`.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
ifeq ($(origin TORCH_FIND_LINKS),undefined)
# Asked of pip once, and only when a recipe needs it.
TORCH_FIND_LINKS = $(eval TORCH_FIND_LINKS := $$(shell $(PYTHON) requirements/preflight.py --configured-find-links 2>/dev/null))$(TORCH_FIND_LINKS)
endif
TORCH_SOURCE = $(if $(strip $(TORCH_FIND_LINKS)),$(foreach d,$(TORCH_FIND_LINKS),--find-links $(d)),$(if $(strip $(TORCH_INDEX_URL)),--extra-index-url $(TORCH_INDEX_URL)))

.PHONY: demo test test-all test-slow lock bench notebook clean-runs venv help

help:
	@echo "make demo       set up .venv and run the demo audit (pipelines/configs/demo.yaml)"
	@echo "make test       set up .venv and run the tests (not the 'slow' ones)"
	@echo "make test-slow  the slow tests: real MiniLM/SmolLM2 and a full demo audit"
	@echo "make notebook   start the classic notebook server for the What-If Tool"
	@echo "make bench      run the benchmarks (benchmarks/)"
	@echo "make lock       regenerate requirements/lock.txt with uv (and requirements/platforms.json)"
	@echo "torch's CPU wheel comes from TORCH_FIND_LINKS (default: pip's configured find-links)"
	@echo "  or else TORCH_INDEX_URL (default: https://download.pytorch.org/whl/cpu); see README"

venv: $(STAMP)

# The venv is rebuilt when the lock, the carriers list or pyproject.toml change.
$(STAMP): requirements/lock.txt requirements/carriers.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (TFDV 1.16.1 has no wheels for " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11"'
	@# Every pin must be findable before the long install starts (one line and a stop if not):
	@# torch's CPU wheel first (seconds), the rest once pip is upgraded (faster at it).
	@$(BIN)/python requirements/preflight.py --local-versions-only requirements/lock.txt -- $(TORCH_SOURCE) >/dev/null
	@$(BIN)/python -m pip install -q --retries 0 --timeout 15 --upgrade "pip>=23.2" >/dev/null 2>&1 \
	  || echo "note: could not upgrade pip in $(VENV); going on with $$($(BIN)/python -m pip --version | cut -d' ' -f1-2)"
	@$(BIN)/python requirements/preflight.py requirements/lock.txt requirements/carriers.txt -- $(TORCH_SOURCE)
	set -o pipefail; $(BIN)/python -m pip install -q --no-deps $(TORCH_SOURCE) -r requirements/lock.txt 2>&1 | grep -v -e "is ignored: it is neither" -e "Running pip as the 'root'"; test $${PIPESTATUS[0]} -eq 0
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

# Regenerate the fully pinned lock (uv resolves in seconds; pip's resolver backtracks for minutes)
# for the supported platform (README: Supported platforms), then record which files the index
# holds for each pin (requirements/platforms.json, checked offline by tests/test_install.py).
# uv reads no pip configuration: torch comes from TORCH_FIND_LINKS or TORCH_INDEX_URL.
lock:
	$(PYTHON) -m pip install -q uv $(PIP_QUIET)
	$(PYTHON) -m uv pip compile requirements/requirements.in --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 $(TORCH_SOURCE) --index-strategy unsafe-best-match \
	  --no-emit-find-links --no-emit-index-url -o requirements/lock.txt
	$(PYTHON) requirements/platforms.py -- $(TORCH_SOURCE)

clean-runs:
	rm -rf reports/runs reports/cache
