"""`make run` installs only what the example app needs; `make test` brings the dev tools.

Read with `make -n` (print the commands, run nothing) against a venv path that does not exist,
as on a fresh clone.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _plan(target: str, tmp_path: Path) -> str:
    result = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'fresh-venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
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
