"""`make run` installs only what the example app needs; `make test` brings the dev tools;
`make test-matrix` runs the suite in every cell that pyproject.toml's supported versions call
for, each pinned by a constraints/ file that agrees with pyproject.

Read with `make -n` (print the commands, run nothing) against a venv path that does not exist,
as on a fresh clone.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from itertools import chain
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# The plans are read as a fresh `make` would print them: CI runs this file from inside a
# `make matrix-<cell> MATRIX_SUITE=fast`, whose variables reach children through the
# environment (MAKEFLAGS carries command-line ones) and would change the plan under test.
_INHERITED = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MATRIX_SUITE", "MATRIX", "VENV"}
FRESH_ENV = {name: value for name, value in os.environ.items() if name not in _INHERITED}

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _plan(target: str, tmp_path: Path) -> str:
    result = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'fresh-venv'}"],
        cwd=ROOT, env=FRESH_ENV, capture_output=True, text=True, timeout=30, check=True,
    )
    return result.stdout


def test_make_run_installs_only_the_server_extra(tmp_path: Path) -> None:
    plan = _plan("run", tmp_path)
    installs = [line for line in plan.splitlines() if "pip install" in line]
    assert len(installs) == 1, plan
    assert "-e '.[server]'" in installs[0]
    assert "[dev]" not in plan and "upgrade pip" not in plan
    assert "examples/app.py" in plan


def test_make_test_installs_the_dev_tools(tmp_path: Path) -> None:
    plan = _plan("test", tmp_path)
    installs = [line for line in plan.splitlines() if "pip install" in line]
    assert len(installs) == 1 and "-e '.[dev]'" in installs[0], plan
    assert "ruff check" in plan and "mypy --strict" in plan and "pytest" in plan


def test_the_example_app_needs_nothing_beyond_the_server_extra() -> None:
    # What examples/app.py imports must come with `pip install joey[server]`.
    source = (ROOT / "examples" / "app.py").read_text(encoding="utf-8")
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__")
    }
    stdlib = {"asyncio", "os", "pathlib", "sys", "collections", "contextlib", "typing"}
    assert imported - stdlib <= {"joey", "msgspec"}, imported


# The version matrix (`make test-matrix`, constraints/): its cells and pins follow pyproject.toml.

def _generator() -> ModuleType:
    """constraints/generate.py: its reading of pyproject (which cells, which lower bounds)."""
    spec = importlib.util.spec_from_file_location("constraints_generate",
                                                  ROOT / "constraints" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _declared(pyproject: Path) -> dict[str, SpecifierSet]:
    """Every package pyproject names (the dev extra's closure: what a cell installs)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    listed = [*project["dependencies"], *chain(*project["optional-dependencies"].values())]
    declared: dict[str, SpecifierSet] = {}
    for requirement in map(Requirement, listed):
        name = canonicalize_name(requirement.name)
        if name != "joey":
            declared[name] = declared.get(name, SpecifierSet()) & requirement.specifier
    return declared


def matrix_problems(pyproject: Path, constraints: Path) -> list[str]:
    """What in constraints/ disagrees with ``pyproject``: a missing or stray cell, a lower
    bound the lowest cell does not pin, a pin outside a declared range, a package not pinned."""
    generator = _generator()
    cells = generator.cells(pyproject)
    problems = [f"no constraints/{cell}.txt" for cell in cells
                if not (constraints / f"{cell}.txt").exists()]
    problems += [f"constraints/{path.name}: no such cell" for path in
                 constraints.glob("*-py*.txt") if path.stem not in cells]
    declared = _declared(pyproject)
    for cell, (_python, kind) in cells.items():
        path = constraints / f"{cell}.txt"
        if not path.exists():
            continue
        pins = _pins(path)
        for name, specifier in declared.items():
            if name not in pins:
                problems.append(f"{cell}: {name} is not pinned")
            elif pins[name] not in specifier:
                problems.append(f"{cell}: {name}=={pins[name]} is outside {specifier}")
        if kind == "lowest":
            for name, bound in generator.floors(pyproject).items():
                if name in pins and pins[name] != Version(bound):
                    problems.append(f"{cell}: {name}=={pins[name]}, the lower bound is {bound}")
    return problems


def test_the_constraints_follow_pyproject() -> None:
    assert matrix_problems(ROOT / "pyproject.toml", ROOT / "constraints") == []


def test_a_lower_bound_raised_without_regenerating_fails(tmp_path: Path) -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pins = _pins(next((ROOT / "constraints").glob("lowest-*.txt")))
    raised = f'"redis>={pins["redis"].major + 1}.0"'
    assert '"redis>=' in text
    (tmp_path / "pyproject.toml").write_text(
        re.sub(r'"redis>=[^"]*"', raised, text), encoding="utf-8")
    problems = matrix_problems(tmp_path / "pyproject.toml", ROOT / "constraints")
    assert any(p.startswith("lowest-py") and "redis==" in p and "lower bound" in p
               for p in problems), problems


def test_a_new_python_or_dependency_without_regenerating_fails(tmp_path: Path) -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    text = text.replace('"Programming Language :: Python :: 3.13",',
                        '"Programming Language :: Python :: 3.13",\n'
                        '    "Programming Language :: Python :: 3.14",')
    text = text.replace('dependencies = ["msgspec>=0.18"',
                        'dependencies = ["msgspec>=0.18", "orjson>=3.9"')
    (tmp_path / "pyproject.toml").write_text(text, encoding="utf-8")
    problems = matrix_problems(tmp_path / "pyproject.toml", ROOT / "constraints")
    assert "no constraints/newest-py314.txt" in problems
    assert "lowest-py311: orjson is not pinned" in problems, problems
    assert "newest-py313: orjson is not pinned" in problems


def test_requires_python_is_the_oldest_supported_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    oldest = _generator().pythons(ROOT / "pyproject.toml")[0]
    assert project["requires-python"] == f">={oldest}"
    assert f'target-version = "py{oldest.replace(".", "")}"' in (
        ROOT / "pyproject.toml").read_text(encoding="utf-8")  # ruff and mypy read the oldest


def test_make_test_matrix_runs_every_cell_in_its_own_pinned_venv(tmp_path: Path) -> None:
    cells = _generator().cells(ROOT / "pyproject.toml")
    plan = subprocess.run(
        ["make", "-n", "test-matrix", f"MATRIX={tmp_path / 'm'}"],
        cwd=ROOT, env=FRESH_ENV, capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    for cell, (python, _kind) in cells.items():
        venv = tmp_path / "m" / cell
        assert re.search(rf"uv venv .*--python \S*python{re.escape(python)} {venv}$", plan, re.M)
        assert f"uv pip sync --quiet --python {venv}/bin/python constraints/{cell}.txt" in plan
        assert f"{venv}/bin/python -m pytest -q -p no:cacheprovider \n" in plan + "\n", plan


def test_the_fast_subset_names_real_tests(tmp_path: Path) -> None:
    plan = subprocess.run(
        ["make", "-n", "matrix-newest-py313", f"MATRIX={tmp_path / 'm'}", "MATRIX_SUITE=fast"],
        cwd=ROOT, env=FRESH_ENV, capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    (command,) = [line for line in plan.splitlines() if "-m pytest" in line]
    paths = command.split("-p no:cacheprovider", 1)[1].split()
    assert len(paths) > 5 and all((ROOT / path).exists() for path in paths), paths


def test_ci_runs_every_cell_after_the_other_checks() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ran = re.findall(r"^matrix_cell (\S+)", ci, re.M)
    assert sorted(ran) == sorted(_generator().cells(ROOT / "pyproject.toml"))
    assert ci.index("make test\n") < ci.index("make test-compiled") < ci.index("matrix_cell ")


def test_ci_runs_the_redis_suite_on_a_cluster_too(tmp_path: Path) -> None:
    """`make test-on-cluster` runs real test paths with JOEY_TEST_REDIS=cluster, and CI runs
    it after the single-Redis run of `make test`."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("make test\n") < ci.index("make test-on-cluster")
    plan = subprocess.run(["make", "-n", "test-on-cluster", f"VENV={tmp_path / 'v'}"],
                          cwd=ROOT, env=FRESH_ENV, capture_output=True, text=True, timeout=30,
                          check=True).stdout
    (command,) = [line for line in plan.splitlines() if "-m pytest" in line]
    assert command.startswith("JOEY_TEST_REDIS=cluster ")
    paths = command.split("-m pytest -q", 1)[1].split()
    assert len(paths) >= 7 and all((ROOT / path).exists() for path in paths), paths


def test_the_supported_versions_table_states_pyprojects_ranges() -> None:
    # docs/deployment.md#supported-versions: a package, its extra, its range as declared.
    page = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = page.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    (table,) = [block for block in section.split("\n\n") if block.startswith("| package")]
    rows = [line.split("|")[1:4] for line in table.splitlines()[2:]]
    stated = {canonicalize_name(name.split()[0]): SpecifierSet(spec.replace(" ", ""))
              for name, _extra, spec in rows}
    declared = _declared(ROOT / "pyproject.toml")
    assert stated == {name: declared[name] for name in _generator().floors(ROOT / "pyproject.toml")}
    *others, newest = _generator().pythons(ROOT / "pyproject.toml")
    assert f"Joey supports CPython {', '.join(others)} and {newest}," in page
