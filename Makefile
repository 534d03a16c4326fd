# Two commands from a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system native bytecode demo test lint check bench clean

# Debian packages the product needs: HarfBuzz subsetting (WeasyPrint falls back to fontTools at
# half speed without it), the fonts the document templates use, poppler-utils (pdftotext/pdftoppm: the
# tests read rendered PDFs back) and Chromium, which drives the console's browser tests headless
# (Playwright for Python with executable_path=/usr/bin/chromium: Playwright's own browser download
# cannot work offline).
SYSTEM_PACKAGES := libharfbuzz-subset0 fonts-dejavu-core fontconfig poppler-utils chromium

system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "missing system packages:$$missing"; \
		echo "run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	fi

$(STAMP): pyproject.toml | system
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP) native bytecode

# `evbill ocpi price`'s fast path (dsl/ocpi_fast.py) compiled by mypyc (gcc and the Python headers);
# without them, or after an edit of the source, the plain module runs (the same output, slower)
native: $(STAMP)
	$(BIN)/python -m dsl.native

# the project's own modules compiled ahead, as an installed wheel has them: an editable install
# compiles nothing, and where PYTHONDONTWRITEBYTECODE is set (CI's machine sets it) every `evbill`
# process would compile them from source again (~30 % of a command's start-up); only changed files
# are compiled again
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 api dsl runtime store workflows benchmarks

demo: $(STAMP) bytecode
	$(BIN)/evbill demo

test: $(STAMP) lint native bytecode
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Static checks `make test` runs first: ruff (the rules chosen in pyproject.toml), mypy strict on dsl/
# and runtime/ (pyproject.toml) and the layer contract of ../shared/DESIGN.md (.importlinter).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

check: $(STAMP)
	$(BIN)/evbill check rulesets/*/*.evb
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/rating.py

clean:
	rm -rf $(VENV) out var .pytest_cache
