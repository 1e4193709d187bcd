# Two commands for a newcomer: `make demo` and `make test`. Both set up first.
# Two environments, each installed from its pinned constraints file (`make lock` rewrites them):
#   $(VENV)          Python 3.10 with Lava (lava-nc 0.10.0 is final and runs on 3.10 only): setup, demo, bench
#   $(VENV_CURRENT)  the newest CPython >= 3.12 found, without Lava: `make test` runs the suite there too
SHELL := /bin/bash
VENV ?= .venv
VENV_CURRENT ?= .venv-current
PY := $(VENV)/bin/python
PY_CURRENT := $(VENV_CURRENT)/bin/python
STAMP := $(VENV)/.emsdeploy-installed
STAMP_CURRENT := $(VENV_CURRENT)/.emsdeploy-installed
LOCK_LAVA := constraints/py310-lava.txt
LOCK_CURRENT := constraints/current.txt
PIP_FLAGS := --disable-pip-version-check -qq  # errors only; this machine's pip config warns about every index location

.PHONY: setup setup-current test demo bench lint lock mutation clean

setup: $(STAMP)

# Idempotent: re-installs only when pyproject.toml or the pins changed (or the venv is missing/broken).
$(STAMP): pyproject.toml $(LOCK_LAVA)
	@py="$$(scripts/find-python310)" || exit 1; \
	if ! [ -x "$(PY)" ] || ! "$(PY)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
		echo "make setup: creating $(VENV) with $$py"; rm -rf "$(VENV)"; "$$py" -m venv "$(VENV)" || exit 1; \
	fi
	@echo "make setup: installing emsdeploy[lava] and the pins of $(LOCK_LAVA) into $(VENV) (first time: ~2 min, ~6 GB)"
	"$(PY)" -m pip install $(PIP_FLAGS) -c $(LOCK_LAVA) -e '.[test,lava]'
	@touch "$@"

# The second environment; `make test` calls it only where scripts/find-python-current finds a Python.
setup-current: $(STAMP_CURRENT)

$(STAMP_CURRENT): pyproject.toml $(LOCK_CURRENT)
	@py="$$(scripts/find-python-current)" || exit 1; \
	want="$$("$$py" -c 'import sys; print(sys.version_info[:2])')"; \
	if ! [ -x "$(PY_CURRENT)" ] || [ "$$("$(PY_CURRENT)" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" != "$$want" ]; then \
		echo "make setup-current: creating $(VENV_CURRENT) with $$py"; rm -rf "$(VENV_CURRENT)"; "$$py" -m venv "$(VENV_CURRENT)" || exit 1; \
	fi
	@echo "make setup-current: installing emsdeploy and the pins of $(LOCK_CURRENT) into $(VENV_CURRENT) (first time: ~3 min, ~6 GB)"
	"$(PY_CURRENT)" -m pip install $(PIP_FLAGS) -c $(LOCK_CURRENT) -e '.[test]'
	@touch "$@"

# The suite in both environments at once (scripts/test-both says how and why).
test: setup
	@VENV="$(VENV)" VENV_CURRENT="$(VENV_CURRENT)" MAKE="$(MAKE)" bash scripts/test-both

demo: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

bench: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/bench.sh

# ruff, then mypy over the installed layout (scripts/typecheck; settings in pyproject [tool.mypy]).
lint: setup
	"$(VENV)/bin/ruff" check .
	scripts/typecheck "$(PY)"

# Not part of `make test` (it runs for tens of minutes): every mutant of scripts/mutants.toml is put
# into a temporary copy of the tree, one at a time, and must make its tests fail. docs/testing.md.
mutation: setup
	"$(PY)" scripts/mutation.py

# Rewrite both pin sets after a change to pyproject.toml's dependencies (UPGRADE=1: newest releases).
lock:
	UPGRADE="$(UPGRADE)" scripts/lock lava
	UPGRADE="$(UPGRADE)" scripts/lock current

clean:
	rm -rf "$(VENV)" "$(VENV_CURRENT)" demo-out .pytest_cache
