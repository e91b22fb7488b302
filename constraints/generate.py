"""Pin every cell of `make test-matrix` from pyproject.toml: `make constraints` runs this.

A cell is a Python version and a choice of dependency versions, pinned in
``constraints/<cell>.txt`` (every package the suite installs, ``==`` each):

* ``lowest-py<oldest>``: every supported dependency at the lower bound pyproject.toml
  declares for it, on the oldest supported Python; what those do not fix (the test tools,
  the dependencies' own dependencies) resolved to the newest compatible release;
* ``newest-py<X>`` for each supported Python: everything at its newest release.

The supported Pythons are pyproject's ``Programming Language :: Python :: 3.X`` classifiers.
The supported dependencies (:func:`floors`) are ``dependencies``, every extra but the tool
extras (:data:`TOOL_EXTRAS`), and the third-party packages the docs promise Joey works with
(:data:`PARTNERS`, in the ``dev`` extra). The resolver is uv (``uv pip compile``), for a
Linux x86-64 machine: pip has no way to resolve for another Python or to pin what it resolved.

Run from the repository root: ``python constraints/generate.py --uv PATH [CELL ...]``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints"

# Extras that hold tools, not something a Joey user installs to use a feature.
TOOL_EXTRAS = frozenset({"dev", "docs", "examples", "all"})
# Packages of the `dev` extra that Joey's documentation says work with it (docs/middleware.md):
# their lower bounds are a promise too, tested in the lowest cell.
PARTNERS = frozenset({"asgi-correlation-id", "opentelemetry-instrumentation-asgi",
                      "opentelemetry-sdk"})
PLATFORM = "x86_64-unknown-linux-gnu"
LOWER_BOUNDS = "pyproject-lower-bounds.txt"  # what the lowest cell's `# via` notes call them
HEADER = """\
# The {cell} cell of `make test-matrix`: Python {python},
# {what}.
# Generated from pyproject.toml by constraints/generate.py: regenerate with `make constraints`,
# never edit by hand.
"""

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*)(;.*)?$")


def canonical(name: str) -> str:
    """PEP 503's normal form of a name: ``Jinja2`` → ``jinja2``, ``PyJWT`` → ``pyjwt``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load(pyproject: Path) -> dict[str, Any]:
    """The ``[project]`` table."""
    with pyproject.open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def pythons(pyproject: Path) -> list[str]:
    """The supported Python versions, oldest first: ``["3.11", "3.12", "3.13"]``."""
    found = [c.rsplit(" :: ", 1)[1] for c in load(pyproject).get("classifiers", [])
             if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    return sorted(found, key=lambda version: int(version.split(".")[1]))


def floors(pyproject: Path) -> dict[str, str]:
    """Each supported dependency and its declared lower bound (``>=``), by canonical name.

    A supported dependency without a lower bound is an error: the lowest cell could not pin it.
    """
    project = load(pyproject)
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    requirements: list[str] = list(project.get("dependencies", []))
    for extra, listed in extras.items():
        if extra not in TOOL_EXTRAS:
            requirements += listed
    requirements += [r for r in extras.get("dev", []) if canonical(_parse(r)[0]) in PARTNERS]
    found: dict[str, str] = {}
    for requirement in requirements:
        name, specifier = _parse(requirement)
        if canonical(name) == "joey":
            continue
        bound = re.search(r">=\s*([^,\s]+)", specifier)
        if bound is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} declares no lower bound (>=)")
        found[canonical(name)] = bound.group(1)
    return found


def _parse(requirement: str) -> tuple[str, str]:
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise SystemExit(f"pyproject.toml: cannot read the requirement {requirement!r}")
    return match.group(1), match.group(3).strip()


def cells(pyproject: Path) -> dict[str, tuple[str, str]]:
    """Each cell's name → (its Python version, ``"lowest"`` or ``"newest"``)."""
    supported = pythons(pyproject)
    if not supported:
        raise SystemExit("pyproject.toml: no `Programming Language :: Python :: 3.X` classifier")
    found = {f"lowest-py{supported[0].replace('.', '')}": (supported[0], "lowest")}
    for python in supported:
        found[f"newest-py{python.replace('.', '')}"] = (python, "newest")
    return found


def compile_cell(uv: str, pyproject: Path, cell: str, python: str, kind: str) -> str:
    """The pinned requirements of one cell, as uv writes them, under our header."""
    # Relative names, in a scratch folder: uv quotes them in its `# via` notes, where a path
    # of this machine would change the file from one checkout to the next. The metadata is
    # static but for the version, which hatchling reads from joey/__init__.py: a copy of
    # both is all uv reads.
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(pyproject, Path(scratch) / "pyproject.toml")
        version_file = Path(scratch) / "src" / "joey" / "__init__.py"
        version_file.parent.mkdir(parents=True)
        shutil.copyfile(pyproject.parent / "src" / "joey" / "__init__.py", version_file)
        command = [
            uv, "pip", "compile", "pyproject.toml", "--extra", "dev", "--quiet", "--no-header",
            "--python-version", python, "--python-platform", PLATFORM, "--output-file", "out.txt",
        ]
        if kind == "lowest":
            pins = Path(scratch) / LOWER_BOUNDS
            pins.write_text("".join(f"{name}=={version}\n"
                                    for name, version in sorted(floors(pyproject).items())))
            command += ["--constraint", LOWER_BOUNDS]
        subprocess.run(command, check=True, cwd=scratch)
        body = (Path(scratch) / "out.txt").read_text(encoding="utf-8")
    what = ("every supported dependency at its declared lower bound" if kind == "lowest"
            else "every dependency at its newest release")
    return HEADER.format(cell=cell, what=what, python=python) + body


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", required=True, help="the uv executable")
    parser.add_argument("cell", nargs="*", help="the cells to regenerate (default: every one)")
    args = parser.parse_args(argv)
    found = shutil.which(args.uv)
    if found is None:
        parser.error(f"no uv at {args.uv!r} (`make constraints` installs it)")
    uv = str(Path(found).resolve())  # uv runs in a scratch folder: a relative path breaks
    pyproject = ROOT / "pyproject.toml"
    every = cells(pyproject)
    unknown = set(args.cell) - set(every)
    if unknown:
        parser.error(f"unknown cell(s) {sorted(unknown)}; the cells are {sorted(every)}")
    wanted = args.cell or list(every)
    for stale in CONSTRAINTS.glob("*-py*.txt"):
        if stale.stem not in every:  # a Python no longer supported: its cell goes
            stale.unlink()
            print(f"removed {stale.relative_to(ROOT)}")
    for cell in wanted:
        python, kind = every[cell]
        target = CONSTRAINTS / f"{cell}.txt"
        target.write_text(compile_cell(uv, pyproject, cell, python, kind), encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
