# Joey: `make run` serves the example app, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck pytest clean

# The venv is (re)installed when pyproject.toml changes; the stamp records the last install.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	HOST=$(HOST) PORT=$(PORT) $(PY) examples/app.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples benchmarks

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict src examples

pytest: $(VENV)/.installed
	$(PY) -m pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

BENCH_VENV := benchmarks/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

# Peers pinned in benchmarks/requirements.txt + editable Joey; reinstalled only when those change.
$(BENCH_STAMP): benchmarks/requirements.txt pyproject.toml
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -r benchmarks/requirements.txt
	$(BENCH_VENV)/bin/pip install -q -e .
	touch $@

.PHONY: bench bench-smoke
bench: $(BENCH_STAMP)
	command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
	$(BENCH_VENV)/bin/python benchmarks/run.py

bench-smoke: $(VENV)/.installed
	$(PY) benchmarks/run.py --smoke
