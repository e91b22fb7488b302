"""Build hook: with ``JOEY_COMPILE=1``, a wheel whose request-path modules are compiled by mypyc.

Pure Python is the reference and the default: without the variable this hook does nothing and
asks for nothing, so ``pip install -e .`` and ordinary wheels are untouched. With it, a
*standard* (non-editable) wheel build copies ``src/joey`` to a scratch directory, compiles the
modules listed in ``pyproject.toml`` (``compiled-modules`` of this hook) there with mypyc, and
adds the extension modules to the wheel next to their ``.py`` files, which the wheel keeps
(the import system prefers the extension; the source stays readable in tracebacks and docs).
The wheel is then tagged for this interpreter and platform. ``make compiled`` runs it into
``dist/``; ``make test-compiled`` runs the whole suite against it.

The scratch copy keeps build products out of ``src/``: an extension module left there would
silently shadow the pure module of an editable install.

Run as a script (``python hatch_build.py DIR MODULE...``), it does the compiling itself, in
``DIR``, in a fresh interpreter: mypyc writes into the working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COMPILE_VARIABLE = "JOEY_COMPILE"

# What the compiling needs beyond hatchling: mypyc ships with mypy; msgspec for its types (a
# runtime dependency anyway); setuptools drives the C compiler. The version of mypy is pinned
# so that a wheel built tomorrow is compiled by the compiler this one was tested with.
COMPILE_REQUIRES = ["mypy==2.4.1", "msgspec>=0.18", "setuptools>=70"]


def compiling() -> bool:
    return os.environ.get(COMPILE_VARIABLE, "") not in ("", "0")


def _compile(workdir: Path, modules: list[str]) -> None:
    """Compile ``modules`` (paths relative to ``workdir``) in place, as one mypyc group."""
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    os.chdir(workdir)
    # The flags are mypy's: the compiled modules import the rest of Joey, whose optional
    # dependencies (pydantic, redis...) need not be installed where the wheel is built.
    extensions = mypycify(
        [*modules, "--ignore-missing-imports"], opt_level="3", group_name="joey"
    )
    distribution = Distribution({"name": "joey", "ext_modules": extensions})
    build_ext = distribution.get_command_obj("build_ext")
    build_ext.inplace = True
    distribution.run_command("build_ext")


try:
    from hatchling.builders.hooks.plugin.interface import (  # type: ignore[import-not-found]
        BuildHookInterface,
    )
except ImportError:  # run as the compiling script, or imported by a test
    BuildHookInterface = object


class CompiledBuildHook(BuildHookInterface):  # type: ignore[misc]
    """Adds the mypyc-compiled modules to a standard wheel when ``JOEY_COMPILE=1``."""

    def dependencies(self) -> list[str]:
        return list(COMPILE_REQUIRES) if compiling() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not compiling() or self.target_name != "wheel" or version != "standard":
            return
        modules: list[str] = self.config["compiled-modules"]
        self._workdir = Path(tempfile.mkdtemp(prefix="joey-mypyc-"))
        shutil.copytree(
            Path(self.root) / "src" / "joey", self._workdir / "joey",
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c"),
        )
        started = time.monotonic()
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), str(self._workdir), *modules],
            check=True,
        )
        self.app.display_info(
            f"mypyc compiled {len(modules)} modules in {time.monotonic() - started:.0f} s"
        )
        suffixes = (".so", ".pyd")
        for built in sorted(self._workdir.rglob("*")):
            if built.suffix in suffixes and "build" not in built.relative_to(self._workdir).parts:
                relative = built.relative_to(self._workdir).as_posix()
                build_data["force_include"][str(built)] = relative
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        workdir = getattr(self, "_workdir", None)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    _compile(Path(sys.argv[1]), sys.argv[2:])
