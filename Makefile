# Joey: `make run` serves the example app, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck pytest clean docs

PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

# Two installs into one venv, each redone when pyproject.toml changes (the stamps record them):
# `make run` needs only Joey and a server (the `server` extra: what examples/app.py imports);
# `make test` adds the development tools (`dev`: every extra, pytest, mypy, ruff...).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[server]'
	touch $@

# `dev` includes `server`, so it satisfies `make run` too.
$(DEV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	HOST=$(HOST) PORT=$(PORT) $(PY) examples/app.py

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks constraints

typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy --strict src examples constraints/generate.py

# The whole suite under coverage (the servers and workers it starts included); under 95%
# branch coverage of src/joey fails (threshold in pyproject.toml).
pytest: $(DEV_STAMP)
	$(PY) -m coverage erase
	$(PY) -m coverage run -m pytest -q
	$(PY) -m coverage combine -q
	$(PY) -m coverage report

# The documentation site (mkdocs.yml): docs/ and an API reference from the docstrings, into
# site/. Strict: a broken link, anchor or reference fails. Never --quiet: it hides the
# warnings strict mode counts, and the build passes.
docs: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

test: lint typecheck docs pytest

# Every Redis-backed component (tasks, channels, rate limits, sessions, cache) against a real
# Redis Cluster (3 primaries, 3 replicas) and a Sentinel setup, started by the tests on
# loopback (tests/redis_cluster.py), and what survives a failover; see
# docs/redis-in-production.md.
.PHONY: test-redis-cluster
test-redis-cluster: $(DEV_STAMP)
	$(PY) -m pytest -q tests/test_redis_topologies.py tests/test_redis_failover.py \
		tests/test_redis_scripts.py

clean:
	rm -rf $(VENV) $(MATRIX) .pytest_cache .mypy_cache .ruff_cache

# `make fuzz` (issue 25): the fuzzers for FUZZ_MINUTES (30 by default): the parser targets under
# atheris, coverage-guided, then the request property tests with JOEY_FUZZ=long, again and again.
# What they find stays in .fuzz/ (gitignored) between runs; see docs/testing.md.
FUZZ_MINUTES ?= 30

.PHONY: fuzz
fuzz: $(DEV_STAMP)
	$(PIP) 'atheris>=2.3' || echo "make fuzz: no atheris here; the parser targets get random bytes"
	$(PY) -m tests.fuzz.run --minutes $(FUZZ_MINUTES)

BENCH_VENV := benchmarks/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

# Peers pinned in benchmarks/requirements.txt + editable Joey; reinstalled only when those change.
$(BENCH_STAMP): benchmarks/requirements.txt benchmarks/requirements-nodeps.txt pyproject.toml
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -r benchmarks/requirements.txt
	$(BENCH_VENV)/bin/pip install -q --no-deps -r benchmarks/requirements-nodeps.txt
	$(BENCH_VENV)/bin/pip install -q -e .
	touch $@

# Compiled Joey's column (issue 19) runs under its own interpreter: the wheel `make compiled`
# builds, reinstalled on every `make bench` (the wheel is rebuilt each time; a few seconds),
# plus what its scenarios need (requirements-compiled.txt, installed once, redone when it changes).
BENCH_COMPILED_VENV  := benchmarks/.venv-compiled
BENCH_COMPILED_STAMP := $(BENCH_COMPILED_VENV)/.installed

$(BENCH_COMPILED_STAMP): benchmarks/requirements-compiled.txt
	test -x $(BENCH_COMPILED_VENV)/bin/python || python3 -m venv $(BENCH_COMPILED_VENV)
	$(BENCH_COMPILED_VENV)/bin/pip install -q -r benchmarks/requirements-compiled.txt
	touch $@

.PHONY: bench bench-smoke bench-compiled
bench-compiled: compiled $(BENCH_COMPILED_STAMP)
	$(BENCH_COMPILED_VENV)/bin/pip install -q --force-reinstall --no-deps dist/joey-*-cp*.whl

bench: $(BENCH_STAMP) bench-compiled
	command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
	$(BENCH_VENV)/bin/python benchmarks/run.py

bench-smoke: $(DEV_STAMP)
	$(PY) benchmarks/run.py --smoke

# The optional compiled build (hatch_build.py): `make compiled` builds a wheel whose request-path
# modules are compiled by mypyc into dist/ (about 45 s); `make test-compiled` installs it into
# its own venv, with the dev tools, and runs the whole suite against it (no coverage: compiled
# code is invisible to it). Pure Python, `make test`, stays the reference.
COMPILED_VENV  := .venv-compiled
COMPILED_STAMP := $(COMPILED_VENV)/.installed-dev

.PHONY: compiled test-compiled
compiled:
	rm -f dist/joey-*-cp*.whl
	JOEY_COMPILE=1 $(PYTHON) -m pip wheel --quiet --disable-pip-version-check --no-deps -w dist .

# The dev tools once (redone when pyproject.toml changes); the compiled wheel on every run.
$(COMPILED_STAMP): pyproject.toml
	test -x $(COMPILED_VENV)/bin/python || $(PYTHON) -m venv $(COMPILED_VENV)
	$(COMPILED_VENV)/bin/python -m pip install --quiet --disable-pip-version-check '.[dev]'
	touch $@

test-compiled: compiled $(COMPILED_STAMP)
	$(COMPILED_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--force-reinstall --no-deps dist/joey-*-cp*.whl
	JOEY_EXPECT_COMPILED=1 $(COMPILED_VENV)/bin/python -m pytest -q -p no:cacheprovider

# The version matrix (docs/deployment.md#supported-versions): the suite on each supported
# Python with every dependency at its newest release, and on the oldest Python with every
# supported dependency at the lower bound pyproject.toml declares. Each cell is pinned in
# constraints/<cell>.txt (`make constraints` regenerates them from pyproject.toml with uv,
# constraints/generate.py) and installed, exactly, into its own venv .venv-matrix/<cell>.
# `make test-matrix` runs the whole suite in every cell; `make matrix-<cell>` one cell;
# MATRIX_SUITE=fast runs only the version-sensitive tests (MATRIX_FAST) instead.
MATRIX       := .venv-matrix
UV_VERSION   := 0.13.9
UV           := $(MATRIX)/uv/bin/uv
MATRIX_CELLS := $(sort $(basename $(notdir $(wildcard constraints/*-py3*.txt))))
PYENV_ROOT   ?= $(HOME)/.pyenv
# A cell's interpreter: pyenv's 3.X.*, else python3.X on PATH. uv never downloads one.
cell_python   = 3.$(patsubst py3%,%,$(lastword $(subst -, ,$(1))))
find_python   = $(firstword $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1)) \
                            $(shell command -v python$(1) 2>/dev/null))
cell_interpreter = $(call find_python,$(call cell_python,$*))
# What a dependency's release or a Python version changes under us: Redis (channels, tasks,
# sessions, rate limits), the servers, their signals and the CLI that starts them, asyncio
# (the same), msgspec, pydantic and typing introspection (parameters, OpenAPI), Jinja2, PyJWT,
# forms, compression, the test client (httpx) and the third-party middleware.
MATRIX_FAST  := tests/channels tests/tasks tests/integration tests/security tests/openapi \
                tests/middleware tests/test_server.py tests/test_cli.py tests/test_forms.py \
                tests/test_templating.py tests/test_testing.py tests/test_params.py \
                tests/test_responses.py tests/test_websockets.py tests/test_makefile.py
MATRIX_SUITE ?= full
MATRIX_TESTS  = $(if $(filter fast,$(MATRIX_SUITE)),$(MATRIX_FAST),)

$(UV):
	test -x $(MATRIX)/uv/bin/python || $(PYTHON) -m venv $(MATRIX)/uv
	$(MATRIX)/uv/bin/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

.PHONY: constraints test-matrix
constraints: $(UV)
	$(PYTHON) constraints/generate.py --uv $(UV)

# uv pip sync: the venv holds exactly the pinned set (a package left from an earlier pin goes).
$(MATRIX)/%/.installed: constraints/%.txt pyproject.toml | $(UV)
	@test -n "$(cell_interpreter)" || { echo "make: the $* cell needs" \
		"python$(call cell_python,$*): pyenv install it, or put it on PATH" >&2; exit 1; }
	test -x $(MATRIX)/$*/bin/python || $(UV) venv --quiet --no-python-downloads --python $(cell_interpreter) $(MATRIX)/$*
	$(UV) pip sync --quiet --python $(MATRIX)/$*/bin/python constraints/$*.txt
	$(UV) pip install --quiet --python $(MATRIX)/$*/bin/python --no-deps -e .
	touch $@

MATRIX_TARGETS := $(addprefix matrix-,$(MATRIX_CELLS))
.PHONY: $(MATRIX_TARGETS)
$(MATRIX_TARGETS): matrix-%: $(MATRIX)/%/.installed
	$(MATRIX)/$*/bin/python -m pytest -q -p no:cacheprovider $(MATRIX_TESTS)

test-matrix: $(MATRIX_TARGETS)
