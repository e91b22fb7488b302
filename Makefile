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
	$(VENV)/bin/ruff check src tests examples benchmarks constraints docs_build

typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy --strict src examples constraints/generate.py docs_build

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
# Then no Sphinx role or `Example::` is left showing in the API reference (the griffe extension
# docs_build/griffe_roles.py renders them; a form it does not know would show literally).
# `make docs-serve`: the site on http://$(HOST):$(DOCS_PORT), rebuilt when a page or docstring
# changes (loopback by default; 8001, beside `make run`'s 8000).
DOCS_PORT ?= 8001
LITERAL_ROLES := :(class|func|meth|mod|attr|data|exc|obj|const):`|::</p>

docs: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
	@! grep -rlE '$(LITERAL_ROLES)' site/reference || { echo "make docs: the pages above show" \
		"Sphinx roles literally (docs_build/griffe_roles.py)" >&2; exit 1; }

.PHONY: docs-serve
docs-serve: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr $(HOST):$(DOCS_PORT)

test: lint typecheck docs pytest

# The public API (every name exported from joey and its public modules, with signatures) is
# pinned in tests/public_api.txt, which tests/test_public_api.py compares with the code. After
# a deliberate change to the API, rewrite it and review the diff: `make api-snapshot`.
.PHONY: api-snapshot
api-snapshot: $(DEV_STAMP)
	PYTHONPATH=src $(PY) -m tests.public_api --write

# Every Redis-backed component (tasks, channels, rate limits, sessions, cache) against a real
# Redis Cluster (3 primaries, 3 replicas) and a Sentinel setup, started by the tests on
# loopback (tests/redis_cluster.py), and what survives a failover; see
# docs/redis-in-production.md.
.PHONY: test-redis-cluster
test-redis-cluster: $(DEV_STAMP) test-on-cluster
	$(PY) -m pytest -q tests/test_redis_topologies.py tests/test_redis_failover.py \
		tests/test_redis_scripts.py

# The Redis part of the suite again, unchanged, against a real Redis Cluster instead of one
# redis-server (JOEY_TEST_REDIS=cluster: tests/redis_server.py). `make test` runs the same
# tests on one redis-server; CI runs both. Tests about one server of their own (stopped,
# frozen, restarted; its connection count) keep their redis-server.
REDIS_SUITE := tests/tasks tests/channels tests/security/test_ratelimit_redis.py \
	tests/middleware/test_sessions.py tests/test_caching_redis.py \
	tests/integration/test_caching_workers.py tests/observability/test_tracing_redis.py
.PHONY: test-on-cluster
test-on-cluster: $(DEV_STAMP)
	JOEY_TEST_REDIS=cluster $(PY) -m pytest -q $(REDIS_SUITE)

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

# The release artifacts (issue 26; docs/versioning.md): `make dist` builds into dist/ the source
# distribution, the pure wheel (built from the sdist) and a compiled wheel for each supported
# Python (the newest-* cells of the matrix below: 3.11, 3.12, 3.13), each built from the sdist
# by that Python (pyenv's 3.X.*, else python3.X on PATH), then `twine check --strict`s them all.
# `make dist-check` then installs each artifact, with its dependencies from the index, into a
# clean venv of its Python and serves a smoke app from it (tests/test_dist.py with
# JOEY_DIST=dist); `make test` runs that test on an sdist and a pure wheel it builds itself.
# --no-cache-dir: pip would otherwise cache the compiled wheel under the sdist's path, and hand
# it to the next `pip install dist/joey-<version>.tar.gz` (found by make dist-check).
DIST_PYTHONS = $(foreach cell,$(filter newest-%,$(MATRIX_CELLS)),$(call cell_python,$(cell)))

define dist_compiled
	@test -n "$(call find_python,$(1))" || { echo "make dist: the compiled wheel for" \
		"Python $(1) needs python$(1): pyenv install it, or put it on PATH" >&2; exit 1; }
	JOEY_COMPILE=1 $(call find_python,$(1)) -m pip wheel --quiet --disable-pip-version-check \
		--no-cache-dir --no-deps -w dist dist/joey-*.tar.gz

endef

.PHONY: dist dist-check
dist: $(DEV_STAMP)
	rm -f dist/joey-*
	$(PY) -m build --outdir dist .
	$(foreach python,$(DIST_PYTHONS),$(call dist_compiled,$(python)))
	$(VENV)/bin/twine check --strict dist/joey-*

dist-check: dist
	JOEY_DIST=dist $(PY) -m pytest -q -p no:cacheprovider tests/test_dist.py

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
                tests/test_responses.py tests/test_websockets.py tests/test_makefile.py \
                tests/test_params_returns.py
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
