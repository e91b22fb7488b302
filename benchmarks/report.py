"""Tables and RESULTS.md from the collected figures. Pure formatting: no measuring here."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from apps import DISTRIBUTIONS, JOEY, JOEY_BUILDS, PEERS, RAW

Result = dict[str, Any]
Cell = float | str  # a figure, or "error" / "n/a" / "-"


@dataclass
class Table:
    title: str
    note: str
    frameworks: Sequence[str]
    rows: list[tuple[str, dict[str, Cell]]]
    lower_is_better: bool
    digits: int = 2

    def _fmt(self, cell: Cell | None) -> str:
        if cell is None:
            return "-"
        if isinstance(cell, str):
            return cell
        return f"{cell:,.{self.digits}f}"

    def _best_peer(self, cells: dict[str, Cell]) -> tuple[str, float] | None:
        figures = [(p, c) for p in PEERS if isinstance(c := cells.get(p), float)]
        if not figures:
            return None
        pick = min if self.lower_is_better else max
        return pick(figures, key=lambda pair: pair[1])

    @property
    def subjects(self) -> list[str]:
        """The Joey columns of this table (pure, compiled): each gets its ratio columns."""
        return [fw for fw in JOEY_BUILDS if fw in self.frameworks]

    def ratios(
        self, cells: dict[str, Cell], subject: str = JOEY
    ) -> tuple[float | None, tuple[str, float] | None]:
        """``subject``'s figure (a Joey build) divided by raw's, and by the best peer's (with
        that peer's name)."""
        joey = cells.get(subject)
        if not isinstance(joey, float):
            return None, None
        raw = cells.get(RAW)
        to_raw = joey / raw if isinstance(raw, float) and raw > 0 else None
        best = self._best_peer(cells)
        to_peer = (best[0], joey / best[1]) if best and best[1] > 0 else None
        return to_raw, to_peer

    def markdown(self) -> str:
        head = ["scenario", *self.frameworks]
        for subject in self.subjects:
            head += [f"{subject} ÷ raw", f"{subject} ÷ best peer"]
        lines = [f"### {self.title}", "", self.note, "", _row(head), _row(["---"] * len(head))]
        for label, cells in self.rows:
            row = [label, *(self._fmt(cells.get(fw)) for fw in self.frameworks)]
            for subject in self.subjects:
                to_raw, to_peer = self.ratios(cells, subject)
                row.append(f"{to_raw:.2f}x" if to_raw is not None else "-")
                row.append(f"{to_peer[1]:.2f}x ({to_peer[0]})" if to_peer else "-")
            lines.append(_row(row))
        return "\n".join(lines) + "\n"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def cell(result: Result | None, field: str, scale: float = 1.0) -> Cell:
    if result is None:
        return "-"
    if result.get("status") != "ok":
        return str(result.get("status", "error"))
    value = result.get(field)
    return float(value) * scale if value is not None else "-"


def problems(sections: Mapping[str, Mapping[str, Mapping[str, Result]]]) -> list[str]:
    """One line per error, naming the section, framework and scenario."""
    lines = []
    for section, by_framework in sections.items():
        for framework, by_key in by_framework.items():
            for key, result in by_key.items():
                if result.get("status") == "error":
                    lines.append(f"- {section} / {framework} / {key}: {result.get('detail', '')}")
    return lines


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision(cwd: str | None = None) -> str:
    """The checkout's `git describe --always --dirty`: a `-dirty` suffix means uncommitted code."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=cwd or os.path.dirname(os.path.abspath(__file__)),
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "no commit yet"


class UncommittedCode(RuntimeError):
    """RESULTS.md records only committed code: figures of a dirty tree name no revision."""


def committed_revision(cwd: str | None = None) -> str:
    """The revision to record, or `UncommittedCode` when the tree has uncommitted changes.

    Checked before the run (so 18 minutes are not spent on figures that cannot be recorded)
    and again before writing (an edit or a commit during the run would misname the figures).
    """
    revision = git_revision(cwd)
    if revision.endswith("-dirty") or revision in ("unknown", "no commit yet"):
        raise UncommittedCode(
            f"benchmarks/RESULTS.md records only committed code, and this tree is {revision!r}: "
            "commit (or stash) your changes and run `make bench` again, or pass --output FILE "
            "to write the figures somewhere else"
        )
    return revision


def machine() -> list[str]:
    wrk = "not installed"
    if shutil.which("wrk"):
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
        wrk = (done.stdout or done.stderr).split("Copyright")[0].strip() or "installed"
    packages = ", ".join(
        f"{name} {_version(name)}"
        for name in dict.fromkeys(
            [*DISTRIBUTIONS.values(), "pydantic", "uvicorn", "uvloop", "httptools"]
        )
    )
    return [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical CPUs ({platform.machine()})",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- Joey revision: {git_revision()}",
        f"- Packages: {packages}",
        f"- Load generator: {wrk}",
    ]
