"""Joey's benchmark harness (issue 7): in-process, end to end and startup, side by side in one run.

    benchmarks/.venv/bin/python benchmarks/run.py           # everything (what `make bench` runs)
    .venv/bin/python benchmarks/run.py --smoke              # Joey + raw, a few iterations (CI)

Prints one table per section, each figure with Joey's ratio to the raw ASGI baseline and to the
best peer, and writes benchmarks/RESULTS.md (not in smoke mode). No figure is ever asserted on;
``--smoke`` exits non-zero only when a Joey scenario errors, so the harness cannot rot.

Joey has two columns (issue 19): "joey", the pure build this interpreter imports, and
"joey-compiled", the wheel of ``make compiled`` in ``benchmarks/.venv-compiled`` (``make
bench-compiled``), whose workers and servers run under that venv's Python. Before measuring,
each column's interpreter is asked which build it imports; a wrong one stops the run. Smoke
mode skips the compiled column, saying so, when its venv is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import builds  # noqa: E402
import channels_bench  # noqa: E402
import endtoend  # noqa: E402
import openapi_bench  # noqa: E402
import report  # noqa: E402
import startup  # noqa: E402
import tasks_bench  # noqa: E402
import tfb  # noqa: E402
from apps import FRAMEWORKS, IMPORTS, JOEY, JOEY_BUILDS, JOEY_COMPILED, PEERS, RAW, interpreter  # noqa: E402
from scenarios import BY_KEY, ROUTE_COUNTS, SCENARIOS, Scenario  # noqa: E402

Result = dict[str, Any]
ByFramework = dict[str, dict[str, Result]]

# Built in one round only: Litestar needs minutes to register 10,000 routes.
HEAVY = {f"routes_{max(ROUTE_COUNTS)}"}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- in-process --------------------------------------------------------------------------------


def _worker(
    framework: str, keys: list[str], args: argparse.Namespace, tmp: Path, overheads: list[Result]
) -> dict[str, Result]:
    out = tmp / f"{framework}-{time.monotonic_ns()}.json"
    command = [
        interpreter(framework),
        str(HERE / "inprocess.py"),
        framework,
        "--out",
        str(out),
        "--repeats",
        str(args.repeats),
        "--target-ms",
        str(args.target_ms),
        "--ws-messages",
        str(args.ws_messages),
        "--scenarios",
        ",".join(keys),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.worker_timeout)
    except subprocess.TimeoutExpired:
        detail = f"worker timed out after {args.worker_timeout:.0f} s"
    else:
        try:
            report_: Result = json.loads(out.read_text())
            overheads.append(report_["overhead_ns"])
            results: dict[str, Result] = report_["results"]
            return results
        except (OSError, ValueError, KeyError):
            detail = f"worker failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return {key: {"status": "error", "detail": detail} for key in keys}


def _merge(rounds: list[Result]) -> Result:
    """Best of the rounds' best repeats; any error in any round wins (a flaky app is broken)."""
    for result in rounds:
        if result.get("status") != "ok":
            return result
    merged: Result = {
        "status": "ok",
        "best_ns": min(r["best_ns"] for r in rounds),
        "median_ns": statistics.median(r["median_ns"] for r in rounds),
    }
    builds = [r["build_ms"] for r in rounds if "build_ms" in r]
    if builds:
        merged["build_ms"] = min(builds)
    return merged


def run_inprocess(
    args: argparse.Namespace, frameworks: list[str], tmp: Path, overheads: list[Result]
) -> ByFramework:
    light = [s.key for s in SCENARIOS if s.key not in HEAVY or args.smoke]
    heavy = [s.key for s in SCENARIOS if s.key in HEAVY and not args.smoke]
    collected: dict[str, dict[str, list[Result]]] = {fw: {} for fw in frameworks}
    for round_no in range(args.rounds):
        # Rotate the order every round so no framework always runs first (or last).
        order = frameworks[round_no % len(frameworks) :] + frameworks[: round_no % len(frameworks)]
        for framework in order:
            keys = light + (heavy if round_no == 0 else [])
            _say(f"in-process round {round_no + 1}/{args.rounds}: {framework}")
            for key, result in _worker(framework, keys, args, tmp, overheads).items():
                collected[framework].setdefault(key, []).append(result)
    return {
        fw: {key: _merge(rounds) for key, rounds in by_key.items()}
        for fw, by_key in collected.items()
    }


def inprocess_table(
    results: ByFramework, frameworks: list[str], overheads: list[Result]
) -> report.Table:
    http = [o["http"] for o in overheads if "http" in o]
    ws = [o["ws"] for o in overheads if "ws" in o]
    overhead = (
        f" ({statistics.median(http) / 1e3:.2f} µs per request,"
        f" {statistics.median(ws) / 1e3:.2f} µs per WebSocket message,"
        " measured with empty apps and subtracted)"
        if http and ws
        else ""
    )
    rows = [
        (s.title, {fw: report.cell(results[fw].get(s.key), "best_ns", 1e-3) for fw in frameworks})
        for s in SCENARIOS
    ]
    return report.Table(
        "In-process cost per request (µs, lower is better)",
        "Best repeat, net of the harness's own cost" + overhead + "; WebSocket: per echoed"
        " message. Ratios: Joey's time ÷ the other's (below 1.00x, Joey is faster).",
        frameworks,
        rows,
        lower_is_better=True,
    )


# --- end to end --------------------------------------------------------------------------------


# How each server is run (serve.py): the same settings where both have them.
SERVER_NOTES = {
    "uvicorn": "uvicorn, httptools + uvloop, 1 worker",
    "granian": "granian (ASGI interface), HTTP/1.1, uvloop, 1 worker with 1 runtime thread",
}


def run_endtoend(
    args: argparse.Namespace, frameworks: list[str], tmp: Path, server: str
) -> ByFramework:
    scenarios: list[Scenario] = [s for s in SCENARIOS if s.end_to_end]
    return endtoend.run_all(
        frameworks,
        scenarios,
        args.e2e_rounds,
        args.duration,
        args.warmup,
        args.connections,
        tmp,
        server,
    )


def endtoend_table(
    results: ByFramework, frameworks: list[str], args: argparse.Namespace, server: str
) -> report.Table:
    rows = [
        (s.title, {fw: report.cell(results[fw].get(s.key), "rps") for fw in frameworks})
        for s in SCENARIOS
        if s.end_to_end
    ]
    return report.Table(
        f"End to end under {server} (requests/s, higher is better)",
        f"{SERVER_NOTES[server]} on CPU 0; wrk -t1 -c{args.connections} on CPU 1,"
        f" {args.duration:g} s per run after a {args.warmup:g} s warm-up; all servers up at once,"
        f" runs interleaved across frameworks, best of {args.e2e_rounds} rounds."
        " Ratios: Joey's requests/s ÷ the other's (above 1.00x, Joey is faster).",
        frameworks,
        rows,
        lower_is_better=False,
        digits=0,
    )


def endtoend_cpu_table(
    results: ByFramework, frameworks: list[str], args: argparse.Namespace, server: str
) -> report.Table:
    rows = [
        (s.title, {fw: report.cell(results[fw].get(s.key), "cpu_us") for fw in frameworks})
        for s in SCENARIOS
        if s.end_to_end
    ]
    return report.Table(
        f"End to end under {server}: the server's CPU per request (µs, lower is better)",
        "The server's process tree (server and framework), from /proc, over each timed wrk run of"
        " the table above, divided by the requests wrk counted; median of the"
        f" {args.e2e_rounds} rounds. Ratios: Joey's µs ÷ the other's (below 1.00x, Joey is"
        " cheaper); the targets read by CPU take raw's µs ÷ Joey's.",
        frameworks,
        rows,
        lower_is_better=True,
    )


def cpu_to_raw(cells: dict[str, report.Cell], subject: str = JOEY
               ) -> str | None:
    """``raw's µs ÷ Joey's`` on a row of an end-to-end CPU table, as text with both figures
    (what "at least 0.95x raw" means when read by the server's CPU per request), or None."""
    joey, raw = cells.get(subject), cells.get(RAW)
    if not isinstance(joey, float) or not isinstance(raw, float) or joey <= 0:
        return None
    return f"{raw / joey:.2f}x: {subject} {joey:.1f} µs, raw {raw:.1f} µs per request"


# --- startup -----------------------------------------------------------------------------------


def run_startup(args: argparse.Namespace, frameworks: list[str]) -> ByFramework:
    results: ByFramework = {}
    for framework in frameworks:
        _say(f"startup: {framework}")
        results[framework] = {
            "import": startup.measure_import(
                IMPORTS[framework], args.import_runs, interpreter(framework)
            )
        }
    return results


def startup_table(
    imports: ByFramework, inprocess: ByFramework, frameworks: list[str], args: argparse.Namespace
) -> report.Table:
    rows: list[tuple[str, dict[str, report.Cell]]] = [
        (
            "import time (ms)",
            {fw: report.cell(imports[fw]["import"], "import_ms") for fw in frameworks},
        ),
        (
            "import: peak RSS growth (MiB)",
            {fw: report.cell(imports[fw]["import"], "rss_mib") for fw in frameworks},
        ),
        (
            "import: peak Python allocations (MiB)",
            {fw: report.cell(imports[fw]["import"], "alloc_mib") for fw in frameworks},
        ),
    ]
    for n in ROUTE_COUNTS[1:]:
        rows.append(
            (
                f"build {n:,} routes + first request (ms)",
                {
                    fw: report.cell(inprocess.get(fw, {}).get(f"routes_{n}"), "build_ms")
                    for fw in frameworks
                },
            )
        )
    return report.Table(
        "Startup (lower is better)",
        f"Import in a fresh interpreter, best of {args.import_runs} (the statement a user's app"
        " starts with; raw = `import msgspec`). Build = construct the app, run its lifespan"
        " startup and answer the first request (in-process worker). Ratios: Joey ÷ the other.",
        frameworks,
        rows,
        lower_is_better=True,
    )


# --- targets -----------------------------------------------------------------------------------


def targets(
    inproc: report.Table | None, e2e: report.Table | None, imports: ByFramework,
    e2e_cpu: report.Table | None = None,
) -> list[str]:
    """Issue 7's targets for the pure build (end to end: under uvicorn), each marked met or missed,
    with the measured figure. End to end, "at least 0.95x raw" is read twice: by requests/s,
    and by the server's CPU per request (``e2e_cpu``: raw's µs ÷ Joey's), which does not
    depend on how much of the CPU the server got during the run.

    A Joey error is a miss; a target whose comparison figure (raw, peers) is missing is
    "not measured".
    """
    lines: list[str] = []

    def mark(ok: bool | None, text: str) -> None:
        verdict = "not measured" if ok is None else "met" if ok else "missed"
        lines.append(f"- [{verdict}] {text}")

    def ratio_text(ratio: float | None, cells: dict[str, report.Cell]) -> str:
        if ratio is not None:
            return f"{ratio:.2f}x"
        joey = cells.get(JOEY)
        return f"Joey: {joey}" if isinstance(joey, str) else "n/a"

    def joey_failed(cells: dict[str, report.Cell]) -> bool:
        return not isinstance(cells.get(JOEY), float)

    if inproc is not None:
        rows = {s.key: cells for s, (_, cells) in zip(SCENARIOS, inproc.rows, strict=True)}
        behind = []
        for label, cells in inproc.rows:
            _, to_peer = inproc.ratios(cells)
            if joey_failed(cells):
                behind.append(f"{label} (Joey: {cells.get(JOEY)})")
            elif to_peer is not None and to_peer[1] >= 1.0:
                behind.append(f"{label} ({to_peer[1]:.2f}x {to_peer[0]})")
        compared = any(inproc.ratios(cells)[1] for _, cells in inproc.rows)
        mark(
            False if behind else True if compared else None,
            "in-process: faster than every peer in every scenario"
            + (f"; not in: {', '.join(behind)}" if behind else ""),
        )
        for key in ("plaintext", "json", "ws_echo"):
            cells = rows[key]
            to_raw, _ = inproc.ratios(cells)
            mark(
                False if joey_failed(cells) else None if to_raw is None else to_raw <= 2.0,
                f"{BY_KEY[key].title}: within 2x of raw ({ratio_text(to_raw, cells)})",
            )
        few, many = rows[f"routes_{min(ROUTE_COUNTS)}"], rows[f"routes_{max(ROUTE_COUNTS)}"]
        failed = joey_failed(few) or joey_failed(many)
        growth = None if failed else float(many[JOEY]) / float(few[JOEY])
        mark(
            False if failed else growth is not None and growth <= 1.15,
            f"routing: last of {max(ROUTE_COUNTS):,} within 15% of last of {min(ROUTE_COUNTS)}"
            f" ({ratio_text(growth, few if joey_failed(few) else many)})",
        )
    if e2e is not None:
        for label, cells in e2e.rows:
            to_raw, to_peer = e2e.ratios(cells)
            ahead = to_peer is None or to_peer[1] > 1.0
            mark(
                False
                if joey_failed(cells)
                else None
                if to_raw is None
                else to_raw >= 0.95 and ahead,
                f"end to end under uvicorn, {label}: >= 0.95x raw and ahead of every peer"
                f" ({ratio_text(to_raw, cells)} raw"
                + (f", {to_peer[1]:.2f}x {to_peer[0]})" if to_peer else ")"),
            )
    if e2e_cpu is not None:
        for label, cells in e2e_cpu.rows:
            to_raw, _ = e2e_cpu.ratios(cells)
            text = cpu_to_raw(cells)
            mark(
                False if joey_failed(cells) else None if to_raw is None else 1 / to_raw >= 0.95,
                f"end to end under uvicorn, {label}, by the server's CPU per request: >= 0.95x"
                f" raw ({text or ratio_text(to_raw, cells)})",
            )
    joey_import = imports.get(JOEY, {}).get("import")
    if joey_import is not None:
        ms = joey_import.get("import_ms")
        mark(
            ms is not None and ms < 50,
            f"`import joey` under 50 ms ({f'{ms:.1f} ms' if ms is not None else 'Joey: error'})",
        )
    return lines


# --- main --------------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="Joey + raw, few iterations, no wrk")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument(
        "--skip",
        default="",
        help="sections to skip: inprocess,e2e,startup,tasks,channels,openapi,tfb",
    )
    parser.add_argument("--servers", default=",".join(SERVER_NOTES), help="end-to-end servers")
    parser.add_argument("--rounds", type=int, default=3, help="in-process rounds (interleaved)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per worker")
    parser.add_argument("--target-ms", type=float, default=100.0, help="duration of one repeat")
    parser.add_argument("--ws-messages", type=int, default=200, help="messages per connection")
    parser.add_argument("--worker-timeout", type=float, default=900.0)
    parser.add_argument("--e2e-rounds", type=int, default=3, help="end-to-end rounds (interleaved)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of one wrk run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--import-runs", type=int, default=7)
    parser.add_argument("--output", type=Path, default=None, help="default: benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.frameworks = f"{RAW},{JOEY},{JOEY_COMPILED}"  # compiled: when its venv exists
        args.skip = ",".join(filter(None, [args.skip, "e2e", "tasks", "channels", "tfb"]))
        args.rounds, args.repeats, args.target_ms, args.ws_messages = 1, 1, 5.0, 20
        args.import_runs = 2
    elif args.output is None:
        args.output = HERE / "RESULTS.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    # Issue 23: the default output is the committed record, so it takes committed code only.
    recording = args.output == HERE / "RESULTS.md"
    revision = report.committed_revision() if recording else None
    frameworks = [fw for fw in args.frameworks.split(",") if fw in FRAMEWORKS]
    frameworks, joey_files = builds.check(frameworks, args.smoke)
    servers = [s for s in args.servers.split(",") if s in SERVER_NOTES]
    skip = set(args.skip.split(","))
    sections: list[str] = []
    inproc: report.Table | None = None
    e2e: dict[str, report.Table] = {}
    e2e_cpu: dict[str, report.Table] = {}
    inproc_results: ByFramework = {}
    errors: dict[str, ByFramework] = {}
    with tempfile.TemporaryDirectory(prefix="joey-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "inprocess" not in skip:
            overheads: list[Result] = []
            inproc_results = run_inprocess(args, frameworks, tmp, overheads)
            errors["in-process"] = inproc_results
            inproc = inprocess_table(inproc_results, frameworks, overheads)
            sections.append(inproc.markdown())
            print(sections[-1], flush=True)
        for server in servers if "e2e" not in skip else []:
            e2e_results = run_endtoend(args, frameworks, tmp, server)
            errors[f"end to end ({server})"] = e2e_results
            e2e[server] = endtoend_table(e2e_results, frameworks, args, server)
            e2e_cpu[server] = endtoend_cpu_table(e2e_results, frameworks, args, server)
            sections.append(e2e[server].markdown() + "\n" + e2e_cpu[server].markdown())
            print(sections[-1], flush=True)
    imports: ByFramework = {}
    if "startup" not in skip:
        imports = run_startup(args, frameworks)
        errors["startup"] = imports
        table = startup_table(imports, inproc_results, frameworks, args)
        slow = startup.slowest_imports("joey") if JOEY in frameworks else []
        extra = (
            "\nSlowest modules under `import joey` (cumulative ms, `-X importtime`): "
            + ", ".join(f"`{name}` {ms:.1f}" for name, ms in slow)
            + "\n"
            if slow
            else ""
        )
        sections.append(table.markdown() + extra)
        print(sections[-1], flush=True)
    goals = (targets(inproc, e2e.get("uvicorn"), imports, e2e_cpu.get("uvicorn"))
             if JOEY in frameworks else [])
    if JOEY_COMPILED in frameworks and not args.smoke:
        goals += ["", "### Targets (issue 19, compiled build)", "",
                  *builds.targets(inproc, e2e, e2e_cpu=e2e_cpu)]
    # Issue 17: Joey's Redis queue against saq, arq and taskiq (tasks_bench.py); issue 16:
    # Channels fan-out against Litestar Channels and broadcaster (channels_bench.py).
    for key, bench, heading, scenario in (
        ("tasks", tasks_bench, "issue 17, background tasks", "run"),
        ("channels", channels_bench, "issue 16, channels", "fan-out"),
    ):
        if key in skip:
            continue
        bench_args = bench.parse([])
        results = bench.measure(bench_args)
        sections.append(bench.table(results, bench_args))
        print(sections[-1], flush=True)
        goals += ["", f"### Targets ({heading})", "", *bench.targets(results)]
        errors[key] = {
            name: {scenario: {"status": "error", "detail": r["error"]}}
            for name, r in results.items()
            if "error" in r
        }
    if "openapi" not in skip:
        # Issue 14: building the OpenAPI document of a 1,000-route app (openapi_bench.py).
        openapi_result = openapi_bench.measure(1 if args.smoke else 5)
        sections.append(openapi_bench.table(openapi_result))
        print(sections[-1], flush=True)
        goals += ["", "### Targets (issue 14, OpenAPI)", "",
                  *openapi_bench.targets(openapi_result)]  # fmt: skip
    if "tfb" not in skip:
        # Issue 29: TechEmpower's six tests on a private PostgreSQL (tfb.py).
        tfb_args = tfb.parse([
            f"--frameworks={','.join(fw for fw in frameworks if fw in tfb.FRAMEWORKS)}",
            f"--servers={','.join(servers)}",
        ])
        tfb_results = tfb.measure(tfb_args)
        tfb_tables = tfb.tables(tfb_results, tfb_args)
        sections.extend(tfb_tables)
        print("\n".join(tfb_tables), flush=True)
        goals += ["", "### Targets (issue 29, TechEmpower tests)", "", *tfb.targets(tfb_results)]
        errors.update(tfb.errors(tfb_results))
    trouble = report.problems(errors)
    minutes = (time.monotonic() - started) / 60
    print(
        "\n".join(
            ["### Targets (issue 7)", "", *goals, "", "### Problems", "", *(trouble or ["- none"])]
        )
    )
    _say(f"total: {minutes:.1f} min")
    if recording and report.committed_revision() != revision:
        raise report.UncommittedCode(
            f"the checkout moved from {revision} during the run: RESULTS.md not written"
        )
    if args.output is not None:
        _write(args.output, args, frameworks, joey_files, sections, goals, trouble, minutes)
        _say(f"wrote {args.output}")
    joey_broken = [line for line in trouble if any(f"/ {fw} /" in line for fw in JOEY_BUILDS)]
    return 1 if args.smoke and joey_broken else 0


def _write(
    path: Path,
    args: argparse.Namespace,
    frameworks: list[str],
    joey_files: dict[str, str],
    sections: list[str],
    goals: list[str],
    trouble: list[str],
    minutes: float,
) -> None:
    peers = [fw for fw in frameworks if fw in PEERS]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join(
        [
            "# Joey benchmark results",
            "",
            f"Written by `make bench` (`benchmarks/run.py`) on {when} in {minutes:.1f} min."
            " The machine is shared and noisy: read the ratios, not the absolute figures."
            " See `benchmarks/README.md` for the method.",
            "",
            "## Machine",
            "",
            *report.machine(),
            "",
            "## Method",
            "",
            "- Frameworks: raw (a hand-written ASGI function with msgspec), Joey,"
            f" {', '.join(peers)}; each written idiomatically (`benchmarks/apps/`), each answer"
            " checked before timing.",
            *(
                f"- {fw}: {_BUILD_NOTES[fw]}; `{PROBE}` is `{path}`."
                for fw, path in joey_files.items()
            ),
            f"- End to end under {', '.join(args.servers.split(','))}: every framework's app"
            " under each server in turn, the same settings where both servers have them.",
            "- In-process: the app is called directly with a fresh scope per request;"
            f" {args.rounds} rounds, each framework in a fresh interpreter per round, order"
            f" rotated; {args.repeats} repeats of ~{args.target_ms:g} ms per round; the best"
            f" repeat is shown. The last of {max(ROUTE_COUNTS):,} routes is measured in one round"
            " only (slow to build for some peers).",
            "",
            "## Targets (issue 7)",
            "",
            *goals,
            "",
            *_gaps(),
            "## Results",
            "",
            *sections,
            "## Problems",
            "",
            *(trouble or ["- none"]),
            "",
        ]
    )
    path.write_text(text)


_BUILD_NOTES = {
    JOEY: "the pure build (editable install of src/ in benchmarks/.venv)",
    JOEY_COMPILED: "the wheel `make compiled` builds (mypyc), in benchmarks/.venv-compiled, its"
    " in-process workers and servers run by that venv's Python",
}
PROBE = "joey._engine.tree.__file__"


def _gaps() -> list[str]:
    """The hand-written analysis of the missed targets (benchmarks/GAPS.md), if any."""
    path = HERE / "GAPS.md"
    if not path.exists():
        return []
    return [path.read_text().rstrip(), ""]


if __name__ == "__main__":
    sys.exit(main())
