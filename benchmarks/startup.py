"""Startup: how long a framework's import takes and how much memory it adds, in fresh interpreters.

The import is timed inside the child (interpreter start-up excluded), best of several runs; memory
is the growth of peak RSS across the import, plus the peak of Python allocations (tracemalloc, in
a separate run because tracing slows the import down). Each framework is imported by its
column's interpreter (compiled Joey by its own venv's).
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

_TIMED = """
import json, resource, time
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": t1 - t0, "rss_kib": rss1 - rss0}}))
"""

_TRACED = """
import json, tracemalloc
tracemalloc.start()
{statement}
print(json.dumps({{"peak": tracemalloc.get_traced_memory()[1]}}))
"""

_IMPORTTIME = "import {module}"


def _child(code: str, python: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=120, check=True,
        env=_env(),
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _env() -> dict[str, str]:
    # Imports are timed with byte-code caches, as after any `pip install`. The peers get
    # theirs from pip; Joey is an editable install, and a PYTHONDONTWRITEBYTECODE=1 in the
    # environment would make it recompile every source file on every run.
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_sources() -> None:
    """Write Joey's byte-code caches (what `pip install` does for a regular install)."""
    source = Path(__file__).resolve().parents[1] / "src" / "joey"
    compileall.compile_dir(str(source), quiet=1)


def measure_import(statement: str, runs: int, python: str = sys.executable) -> dict[str, Any]:
    """Best import time (ms), median RSS growth and tracemalloc peak (MiB) of ``statement``,
    run by ``python``."""
    compile_sources()
    try:
        timed = [_child(_TIMED.format(statement=statement), python) for _ in range(runs)]
        traced = _child(_TRACED.format(statement=statement), python)
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        return {"status": "error", "detail": f"{type(exc).__name__}: {stderr.strip()[-200:]}"}
    rss = sorted(t["rss_kib"] for t in timed)
    return {
        "status": "ok",
        "import_ms": min(t["seconds"] for t in timed) * 1e3,
        "rss_mib": rss[len(rss) // 2] / 1024,
        "alloc_mib": traced["peak"] / 2**20,
    }


def slowest_imports(module: str, top: int = 8) -> list[tuple[str, float]]:
    """The modules that ``import module`` spends most time in (cumulative ms, ``-X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _IMPORTTIME.format(module=module)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    rows: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((name.strip(), int(cumulative) / 1e3))
    rows.sort(key=lambda row: row[1], reverse=True)
    return [row for row in rows if row[0] != module][:top]
