# Joey: `make run` serves the example app, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck pytest bench bench-smoke clean

# The venv is (re)installed when pyproject.toml changes; the stamp records the last install.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	HOST=$(HOST) PORT=$(PORT) $(PY) examples/app.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict src examples

pytest: $(VENV)/.installed
	$(PY) -m pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
