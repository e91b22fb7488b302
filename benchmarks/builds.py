"""Joey's two builds side by side (issue 19): which interpreter runs each, and their targets.

The "joey" column is the pure build (the editable install of ``benchmarks/.venv``), the
"joey-compiled" column the wheel ``make compiled`` builds, installed in
``benchmarks/.venv-compiled`` by ``make bench-compiled``. :func:`check` asks each column's
interpreter which build it imports before anything is measured (the workers and servers check
again, in :func:`apps.load`). :func:`targets` marks issue 19's targets met or missed:

- compiled, in-process: ahead of every peer by at least 15% in every scenario (the best peer's
  time is at least 1.15x compiled Joey's), within 2x of raw for plaintext and JSON and 2.5x for
  the path parameter;
- compiled, end to end under each server: at least 0.95x raw's requests/s, ahead of every peer;
- pure: no slower than before, within 3%. "Before" is the committed ``benchmarks/RESULTS.md``
  (its "joey" column in-process), the only earlier figures there are: another run, at another
  load of this shared machine, so the verdict is indicative only.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from apps import JOEY, JOEY_BUILDS, JOEY_COMPILED, PROBE_MODULE, RAW, expects_compiled, interpreter
from report import Table
from scenarios import BY_KEY

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"

AHEAD = 1.15  # the best peer's time ÷ compiled Joey's, in-process
TO_RAW = {"plaintext": 2.0, "json": 2.0, "path_param": 2.5}  # compiled Joey's time ÷ raw's
E2E_TO_RAW = 0.95  # compiled Joey's requests/s ÷ raw's
PURE_SLOWER = 1.03  # this run's pure figures ÷ the committed ones (geometric mean)
INPROCESS_HEADING = "### In-process cost per request"

Mark = Callable[[bool | None, str], None]  # records one target line: met (True), missed, or None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check(frameworks: list[str], smoke: bool) -> tuple[list[str], dict[str, str]]:
    """The frameworks to measure, and where each Joey column's interpreter imports Joey from.

    A column importing the wrong build stops the run (``SystemExit``), and so does a missing
    compiled venv, except in smoke mode, which skips that column and says why.
    """
    kept: list[str] = []
    found: dict[str, str] = {}
    for framework in frameworks:
        if framework not in JOEY_BUILDS:
            kept.append(framework)
            continue
        python = interpreter(framework)
        if not Path(python).exists():
            missing = f"{python} is missing; `make bench-compiled` builds the wheel and its venv"
            if smoke:
                _say(f"smoke: the {framework} column is skipped: {missing}")
                continue
            raise SystemExit(f"the {framework} column cannot run: {missing}")
        done = subprocess.run(
            [python, "-c", f"import {PROBE_MODULE} as m; print(m.__file__)"],
            capture_output=True, text=True, timeout=60, cwd=HERE, check=False,
        )  # fmt: skip
        path = done.stdout.strip()
        if done.returncode != 0 or not path:
            raise SystemExit(
                f"the {framework} column cannot import Joey with {python}:"
                f" {done.stderr.strip()[-300:]}"
            )
        want = expects_compiled(framework)
        if (not path.endswith(".py")) != want:
            raise SystemExit(
                f"the {framework} column must run {'compiled' if want else 'pure'} Joey,"
                f" but {python} imports {PROBE_MODULE} from {path}"
            )
        _say(f"{framework}: {python} imports {PROBE_MODULE} from {path}")
        root = str(HERE.parent) + "/"
        found[framework] = path.removeprefix(root)  # relative to the repository when inside it
        kept.append(framework)
    return kept, found


def previous_inprocess(text: str | None = None) -> tuple[dict[str, float], str]:
    """The pure Joey figures (µs by scenario title) of the committed RESULTS.md's in-process
    table, and a line saying which run they come from; empty when there is none."""
    if text is None:
        done = subprocess.run(
            ["git", "show", "HEAD:benchmarks/RESULTS.md"],
            capture_output=True, text=True, timeout=30, cwd=HERE, check=False,
        )  # fmt: skip
        text = done.stdout if done.returncode == 0 else ""
    lines = text.splitlines()
    origin = next((line for line in lines if line.startswith("Written by")), "")
    revision = next((line for line in lines if line.startswith("- Joey revision:")), "")
    start = next((i for i, line in enumerate(lines) if line.startswith(INPROCESS_HEADING)), None)
    figures: dict[str, float] = {}
    if start is None:
        return figures, ""
    column = None
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if column is None:
            column = cells.index(JOEY) if JOEY in cells else -1
            continue
        if 0 < column < len(cells):
            with contextlib.suppress(ValueError):  # the separator row, "error", "n/a"
                figures[cells[0]] = float(cells[column].replace(",", ""))
    when = origin.split(" on ", 1)[1].split(" in ", 1)[0] if " on " in origin else "?"
    source = f"committed RESULTS.md ({when}{', ' + revision[2:] if revision else ''})"
    return figures, source if figures else ""


def targets(
    inproc: Table | None,
    e2e: dict[str, Table],
    previous: tuple[dict[str, float], str] | None = None,
    e2e_cpu: dict[str, Table] | None = None,
) -> list[str]:
    """Issue 19's targets, each marked met, missed or not measured, with the figures. End to
    end, "at least 0.95x raw" is also read by the server's CPU per request (``e2e_cpu``:
    raw's µs ÷ compiled Joey's)."""
    lines: list[str] = []

    def mark(ok: bool | None, text: str) -> None:
        verdict = "not measured" if ok is None else "met" if ok else "missed"
        lines.append(f"- [{verdict}] {text}")

    if inproc is not None and JOEY_COMPILED in inproc.frameworks:
        _inprocess(inproc, mark)
    for server, table in e2e.items():
        if JOEY_COMPILED not in table.frameworks:
            continue
        for label, cells in table.rows:
            to_raw, to_peer = table.ratios(cells, JOEY_COMPILED)
            failed = not isinstance(cells.get(JOEY_COMPILED), float)
            ahead = to_peer is None or to_peer[1] > 1.0
            mark(
                False if failed else None if to_raw is None else to_raw >= E2E_TO_RAW and ahead,
                f"compiled, end to end under {server}, {label}: >= {E2E_TO_RAW}x raw and ahead"
                f" of every peer ("
                + (
                    f"{JOEY_COMPILED}: {cells.get(JOEY_COMPILED)})"
                    if failed
                    else (f"{to_raw:.2f}x raw" if to_raw is not None else "raw: n/a")
                    + (f", {to_peer[1]:.2f}x {to_peer[0]})" if to_peer else ")")
                ),
            )
    for server, table in (e2e_cpu or {}).items():
        if JOEY_COMPILED not in table.frameworks:
            continue
        for label, cells in table.rows:
            joey, raw = cells.get(JOEY_COMPILED), cells.get(RAW)
            if not isinstance(joey, float) or joey <= 0:
                mark(False, f"compiled, end to end under {server}, {label}, by the server's CPU"
                            f" per request: >= {E2E_TO_RAW}x raw ({JOEY_COMPILED}: {joey})")
                continue
            mark(None if not isinstance(raw, float) else raw / joey >= E2E_TO_RAW,
                 f"compiled, end to end under {server}, {label}, by the server's CPU per"
                 f" request: >= {E2E_TO_RAW}x raw ("
                 + (f"{raw / joey:.2f}x: {joey:.1f} µs, raw {raw:.1f} µs per request)"
                    if isinstance(raw, float) else "raw: n/a)"))
    if inproc is not None and JOEY in inproc.frameworks:
        _pure(inproc, previous if previous is not None else previous_inprocess(), mark)
    return lines


def _inprocess(inproc: Table, mark: Mark) -> None:
    behind: list[str] = []
    compared = False
    for label, cells in inproc.rows:
        figure = cells.get(JOEY_COMPILED)
        _, to_peer = inproc.ratios(cells, JOEY_COMPILED)
        if not isinstance(figure, float):
            behind.append(f"{label} ({JOEY_COMPILED}: {figure})")
        elif to_peer is not None:
            compared = True
            if to_peer[1] * AHEAD > 1.0:
                behind.append(f"{label} ({to_peer[1]:.2f}x {to_peer[0]})")
    mark(
        False if behind else True if compared else None,
        f"compiled, in-process: ahead of every peer by >= {AHEAD - 1:.0%} in every scenario"
        f" (time ÷ best peer's <= {1 / AHEAD:.2f}x)"
        + (f"; not in: {', '.join(behind)}" if behind else ""),
    )
    rows = dict(inproc.rows)
    for key, limit in TO_RAW.items():
        label = BY_KEY[key].title
        if label not in rows:
            mark(None, f"compiled, {label}: within {limit:g}x of raw (not run)")
            continue
        cells = rows[label]
        to_raw, _ = inproc.ratios(cells, JOEY_COMPILED)
        figure = cells.get(JOEY_COMPILED)
        failed = not isinstance(figure, float)
        mark(
            False if failed else None if to_raw is None else to_raw <= limit,
            f"compiled, {label}: within {limit:g}x of raw ("
            + (
                f"{JOEY_COMPILED}: {figure})"
                if failed
                else f"{to_raw:.2f}x)"
                if to_raw is not None
                else "raw: n/a)"
            ),
        )


def _pure(inproc: Table, previous: tuple[dict[str, float], str], mark: Mark) -> None:
    figures, source = previous
    ratios: list[tuple[str, float]] = []
    for label, cells in inproc.rows:
        now, before = cells.get(JOEY), figures.get(label)
        if isinstance(now, float) and before and now > 0:
            ratios.append((label, now / before))
    if not ratios:
        mark(
            None,
            f"pure: no slower than before, within {PURE_SLOWER - 1:.0%} (no earlier figures)",
        )
        return
    mean = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
    slower = [f"{label} {ratio:.2f}x" for label, ratio in ratios if ratio > PURE_SLOWER]
    mark(
        mean <= PURE_SLOWER,
        f"pure: no slower than before, within {PURE_SLOWER - 1:.0%} (indicative only: this run's"
        f" joey column ÷ the {source}, geometric mean over {len(ratios)} scenarios:"
        f" {mean:.2f}x"
        + (f"; above {PURE_SLOWER:.2f}x: {', '.join(slower)}" if slower else "")
        + ")",
    )
