# Two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR := cms_media/static/vendor

.PHONY: demo test test-postgres lint install assets bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts

# Front-end packages come from the npm registry (package-lock.json) and are copied, never fetched at run time.
$(VENDOR)/.stamp: node_modules/.package-lock.json
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp -r node_modules/tinymce $(VENDOR)/tinymce
	mkdir -p $(VENDOR)/quill && cp node_modules/quill/dist/quill.js node_modules/quill/dist/quill.snow.css $(VENDOR)/quill/
	touch $@

install: $(VENV)/.installed
assets: $(VENDOR)/.stamp

demo: install assets
	$(BIN)/python -m cms_media.demo

test: install assets
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The same suite on PostgreSQL (127.0.0.1:5432, database `test`), browser tests aside.
POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
test-postgres: install assets
	CMS_MEDIA_TEST_DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest -m "not browser" $(PYTEST_ARGS)

# Issue 5's benchmark: about 4 minutes; `make bench BENCH_ARGS=--quick` is a ~45 s smoke run.
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules $(VENDOR)
