# Two commands for a newcomer: `make demo` and `make test`. Both set up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.emsdeploy-installed
PIP_FLAGS := --disable-pip-version-check -qq  # errors only; this machine's pip config warns about every index location

.PHONY: setup test demo bench lint mutation clean

setup: $(STAMP)

# Idempotent: re-installs only when pyproject.toml changed (or the venv is missing/broken).
$(STAMP): pyproject.toml
	@py="$$(scripts/find-python310)" || exit 1; \
	if ! [ -x "$(PY)" ] || ! "$(PY)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
		echo "make setup: creating $(VENV) with $$py"; rm -rf "$(VENV)"; "$$py" -m venv "$(VENV)" || exit 1; \
	fi
	@echo "make setup: installing emsdeploy and pinned dependencies into $(VENV) (first time: ~2 min, ~6 GB)"
	"$(PY)" -m pip install $(PIP_FLAGS) -e '.[test]'
	@touch "$@"

test: setup
	"$(PY)" -m pytest

demo: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

bench: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/bench.sh

lint: setup
	"$(VENV)/bin/ruff" check .

# Not part of `make test` (it runs for tens of minutes): every mutant of scripts/mutants.toml is put
# into a temporary copy of the tree, one at a time, and must make its tests fail. docs/testing.md.
mutation: setup
	"$(PY)" scripts/mutation.py

clean:
	rm -rf "$(VENV)" demo-out .pytest_cache
