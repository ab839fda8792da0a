# The README's two commands: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STORE ?= model_store

.PHONY: run test lint bench lock docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	LOGREG_DATA_ROOTS="$${LOGREG_DATA_ROOTS:-$(CURDIR)/examples}" \
		$(BIN)/logreg serve --host $(HOST) --port $(PORT) --store $(STORE) --demo

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/engine.py --datasets sparse-small sparse-wide --repeats 3
	$(BIN)/python benchmarks/serve.py --rounds 5
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/mixed.py
	$(BIN)/python benchmarks/abuse.py
	$(BIN)/python -m pip install --quiet 'dask-ml>=2024.4'  # the Dask benchmark's reference only
	$(BIN)/python benchmarks/scale.py --part all

# The guide: docs/ built by MkDocs into the package (service/static/guide), served at /guide; --strict fails on
# a broken link or anchor.
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The exact versions the image installs: requirements.lock (runtime) and requirements-dask.lock (with the dask
# extra), resolved from pyproject.toml's lower bounds by pip-tools (in a venv of its own).
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet 'pip-tools>=7.4'
	$(VENV)-lock/bin/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml
	$(VENV)-lock/bin/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		--extra dask --output-file requirements-dask.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
