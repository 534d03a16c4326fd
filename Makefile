# Two commands from a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/evbill demo

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Static checks `make test` runs first: mypy strict on dsl/ and runtime/ (pyproject.toml) and the
# layer contract of ../shared/DESIGN.md (.importlinter).
lint: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

check: $(STAMP)
	$(BIN)/evbill check rulesets/*/*.evb
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/rating.py

clean:
	rm -rf $(VENV) out var .pytest_cache
