"""TechEmpower's six tests (issue 29): Joey against its peers on a real PostgreSQL.

    benchmarks/.venv/bin/python benchmarks/tfb.py     # the section, as `make bench` runs it
    .venv/bin/python benchmarks/tfb.py --smoke        # Joey only: verified, a short CPU run

The apps (``tfb_apps/``) serve JSON, plaintext, single query, multiple queries (20), fortunes
and updates (20) to TechEmpower's requirements, on a private PostgreSQL this section starts
(``tfb_postgres.py``: installed from Debian when missing) and stops. Every app's answers are
checked against the requirements (``tfb_verify.py``) before it is timed; a wrong app shows
``error`` and is not timed. Two measures:

- CPU per request, in-process (``tfb_inprocess.py``): each app called directly in an
  interpreter of its own, all of them up at once, their repeats interleaved one by one
  (rotated every round; the world table vacuumed before each repeat of updates), the best
  repeat. CPU time, not wall time: it leaves out the waits for PostgreSQL, which on a
  shared machine are the noisiest part. Then the database tests again on the stand-in pool
  (``tfb_apps/stand_in.py``): the framework's own share, without asyncpg's.
- requests/s end to end, under uvicorn and then granian (one worker each), driven by wrk
  (plaintext pipelined 16 deep, as TechEmpower does); every framework's server up at once,
  runs interleaved across frameworks, best and median of the rounds. The server's own CPU
  time per request (its process tree, from /proc) is recorded with each run.

The server (and the in-process workers) run on CPU 0; PostgreSQL and wrk share CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import endtoend  # noqa: E402
import report  # noqa: E402
import tfb_postgres  # noqa: E402
from tfb_apps import DATABASE_ENV, FRAMEWORKS, JOEY, PEERS, RAW, STAND_IN_ENV  # noqa: E402
from tfb_verify import TARGETS, TESTS, Answer, Verifier  # noqa: E402

HOST = "127.0.0.1"  # loopback only, always
SERVERS = ("uvicorn", "granian")
TITLES = {
    "json": "JSON serialization",
    "plaintext": "plaintext (pipelined 16)",
    "db": "single query",
    "queries": "multiple queries (20)",
    "fortunes": "fortunes",
    "updates": "updates (20)",
}
PIPELINE = {"plaintext": 16}
# The tests that query the database: timed a second time on the stand-in pool.
DATABASE_TESTS = ("db", "queries", "fortunes", "updates")
# A 10% lead in requests/s is asked for where the framework's share of the cheapest peer's
# server CPU per request end to end (what is left once the raw app's server's is taken away)
# is at least this much; elsewhere a lead.
SHARE_FOR_A_10_PERCENT_LEAD = 0.20

Result = dict[str, Any]
ByFramework = dict[str, dict[str, Result]]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- CPU per request, in-process ---------------------------------------------------------------


def _worker(framework: str, args: argparse.Namespace, env: dict[str, str], tmp: Path,
            verify_only: bool = False) -> dict[str, Result]:
    out = tmp / f"tfb-{framework}-{time.monotonic_ns()}.json"
    command = [
        *endtoend._pin(0), sys.executable, str(HERE / "tfb_inprocess.py"), framework,
        "--out", str(out), "--tests", ",".join(args.tests), "--repeats", str(args.repeats),
        "--target-ms", str(args.target_ms), "--concurrency", str(args.concurrency),
        *(["--verify-only"] if verify_only else []),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=args.worker_timeout)
    except subprocess.TimeoutExpired:
        detail = f"worker timed out after {args.worker_timeout:.0f} s"
    else:
        try:
            results: dict[str, Result] = json.loads(out.read_text())["results"]
            return results
        except (OSError, ValueError, KeyError):
            detail = f"worker failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return {test: {"status": "error", "detail": detail} for test in args.tests}


def _rotated(frameworks: list[str], round_no: int) -> list[str]:
    """The order of one round: rotated every round, so no framework always runs first."""
    shift = round_no % len(frameworks)
    return frameworks[shift:] + frameworks[:shift]


class _Worker:
    """One framework's ``tfb_inprocess.py --commands``: its app started and verified once,
    then timed one repeat per :meth:`ask` (in an interpreter of its own, on CPU 0)."""

    def __init__(self, framework: str, args: argparse.Namespace, env: dict[str, str],
                 tmp: Path, tests: list[str]) -> None:
        self.framework, self.timeout = framework, args.worker_timeout
        self.failure: str | None = None  # why it stopped answering
        self.log = tmp / f"tfb-worker-{framework}-{time.monotonic_ns()}.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*endtoend._pin(0), sys.executable, str(HERE / "tfb_inprocess.py"), framework,
                 "--commands", "--tests", ",".join(tests),
                 "--target-ms", str(args.target_ms), "--concurrency", str(args.concurrency)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env)

    def answer(self) -> Result:
        """The worker's next line; ``{"error": ...}`` when it died or took too long."""
        assert self.process.stdout is not None
        if self.failure is not None:
            return {"error": self.failure}
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            said = self.log.read_text(errors="replace").strip().splitlines()
            why = "timed out" if not ready else f"exited ({self.process.poll()})"
            self.failure = f"worker {why}" + (f": {said[-1][-300:]}" if said else "")
            self.stop()
            return {"error": self.failure}
        answer: Result = json.loads(line)
        return answer

    def ask(self, test: str, n: int) -> Result:
        assert self.process.stdin is not None
        if self.failure is None:
            try:
                self.process.stdin.write(json.dumps({"test": test, "n": n}).encode() + b"\n")
                self.process.stdin.flush()
            except OSError:
                pass  # it died: answer() says how
        return self.answer()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


async def _vacuum(database_url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("VACUUM ANALYZE world")
    finally:
        await connection.close()


def run_inprocess(args: argparse.Namespace, env: dict[str, str], tmp: Path,
                  stand_in: bool = False) -> ByFramework:
    """Every framework's worker up at once; for each test, the repeats interleaved one by
    one across frameworks (rotated every round), so that every framework meets the same
    minutes of the shared machine and the same state of the database. Before each repeat of
    the updates test, the world table is vacuumed: every app writes to the same table.

    ``stand_in``: the database tests again, every app on the stand-in pool
    (``tfb_apps/stand_in.py``), for the framework's own share."""
    frameworks = args.frameworks
    tests = [t for t in args.tests if t in DATABASE_TESTS] if stand_in else args.tests
    if stand_in:
        env = {**env, STAND_IN_ENV: "1"}
    label = "tfb in-process" + (", stand-in pool" if stand_in else "")
    results: ByFramework = {fw: {} for fw in frameworks}
    workers: dict[str, _Worker] = {}
    try:
        for fw in frameworks:
            # one after the other: the verifier counts every query the database ran
            _say(f"{label}: starting and verifying {fw}")
            worker = _Worker(fw, args, env, tmp, tests)
            hello = worker.answer()
            if "ready" not in hello:
                worker.stop()
                results[fw] = {t: {"status": "error", "detail": hello.get("error", str(hello))}
                               for t in tests}
                continue
            workers[fw] = worker
            for test, problem in hello["ready"].items():
                if problem:
                    results[fw][test] = {"status": "error", "detail": f"wrong answer: {problem}"}
        for test in tests:
            _say(f"{label}: {test}, {args.rounds} rounds of {args.repeats} repeats")
            timed = {fw: w for fw, w in workers.items() if test not in results[fw]}
            samples: dict[tuple[str, str], list[float]] = {}
            sizes: dict[tuple[str, str], int] = {}
            for fw, worker in list(timed.items()):
                for what in ("harness", test):
                    got = worker.ask(what, 0)
                    if "n" not in got or got.get("failed"):
                        detail = got.get("error") or (
                            f"{got.get('failed')} of {got.get('n')} requests did not answer 200")
                        results[fw][test] = {"status": "error", "detail": detail}
                        del timed[fw]
                        break
                    sizes[fw, what] = got["n"]
            for repeat in range(args.rounds * args.repeats):
                # the harness (the empty app) once a round, the test every repeat
                asked = ("harness", test) if repeat % args.repeats == 0 else (test,)
                for fw in _rotated(list(timed), repeat):
                    if test in results[fw]:
                        continue  # failed earlier in this test
                    if test == "updates" and not stand_in:
                        asyncio.run(_vacuum(env[DATABASE_ENV]))
                    for what in asked:
                        got = timed[fw].ask(what, sizes[fw, what])
                        if "cpu" not in got or got.get("failed"):
                            detail = got.get("error") or (
                                f"{got.get('failed')} of {sizes[fw, what]} requests did not"
                                " answer 200")
                            results[fw][test] = {"status": "error", "detail": detail}
                            break
                        samples.setdefault((fw, what), []).append(got["cpu"] / sizes[fw, what])
            for fw in timed:
                if test in results[fw]:
                    continue
                mine, harness = samples[fw, test], samples[fw, "harness"]
                results[fw][test] = {
                    "status": "ok",
                    "best_us": (min(mine) - min(harness)) * 1e6,
                    "median_us": (statistics.median(mine) - statistics.median(harness)) * 1e6,
                    # every repeat, in order (net of the harness's best): the repeats of all
                    # frameworks are interleaved, so repeat i of each met the same minute
                    "repeats_us": [(x - min(harness)) * 1e6 for x in mine],
                }
    finally:
        for worker in workers.values():
            worker.stop()
    return results


# --- requests/s end to end ---------------------------------------------------------------------


def _http_get(port: int, target: str) -> Answer:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        headers: dict[str, str] = {}
        for name, value in response.getheaders():
            headers.setdefault(name.lower(), value)
        return Answer(response.status, headers, response.read())
    finally:
        connection.close()


async def verify_server(database_url: str, port: int, tests: list[str]) -> dict[str, str | None]:
    async def fetch(target: str) -> Answer:
        return await asyncio.to_thread(_http_get, port, target)

    async with Verifier(database_url, server_headers=True) as verifier:
        return await verifier.check_all(fetch, tuple(tests))


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_REQUESTS = re.compile(r"(\d+) requests in")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors:(.*)")


def _wrk(port: int, test: str, seconds: float, connections: int, server_pid: int,
         scripts: Path) -> Result:
    command = [*endtoend._pin(1), "wrk", "-t1", f"-c{connections}",
               f"-d{max(1, math.ceil(seconds))}s"]
    depth = PIPELINE.get(test)
    if depth:
        script = scripts / f"pipeline-{depth}.lua"
        script.write_text("init = function(args)\n  local r = {}\n"
                          f"  for i = 1, {depth} do r[i] = wrk.format(nil) end\n"
                          "  req = table.concat(r)\nend\n"
                          "request = function()\n  return req\nend\n")
        command += ["-s", str(script)]
    command.append(f"http://{HOST}:{port}{TARGETS[test]}")
    cpu_before = endtoend.cpu_seconds(server_pid)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu = endtoend.cpu_seconds(server_pid) - cpu_before
    output = done.stdout
    rps, count = _RPS.search(output), _REQUESTS.search(output)
    if done.returncode != 0 or rps is None or count is None:
        return {"status": "error", "detail": f"wrk failed: {(done.stderr or output)[-200:]}"}
    bad = _NON_2XX.search(output)
    if bad:
        return {"status": "error", "detail": f"{bad.group(1)} non-2xx responses"}
    result: Result = {"status": "ok", "rps": float(rps.group(1)),
                      "cpu_us": cpu / max(1, int(count.group(1))) * 1e6}
    errors = _SOCKET_ERRORS.search(output)
    if errors:
        result["socket_errors"] = errors.group(1).strip()
    return result


@contextlib.contextmanager
def _servers(frameworks: list[str], server: str, env: dict[str, str], logs: Path,
             results: ByFramework, tests: list[str]) -> Iterator[dict[str, tuple[Any, int]]]:
    """Every framework's app under ``server`` at once; those that fail to start get errors."""
    running: dict[str, tuple[Any, int]] = {}
    try:
        for fw in frameworks:
            log = logs / f"tfb-{server}-{fw}.log"
            port = endtoend.free_port()
            command = [*endtoend._pin(0), sys.executable, str(HERE / "tfb_serve.py"), fw,
                       str(port), "--server", server]
            with log.open("ab") as log_file:
                process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                           env=env)
            try:
                endtoend._wait_listening(port, process)
            except Exception as exc:
                endtoend.stop(process)
                said = log.read_text(errors="replace").strip().splitlines()
                detail = f"server did not start: {exc}"[:200] + (
                    f"; its last words: {said[-1][-300:]}" if said else "")
                results[fw] = {t: {"status": "error", "detail": detail} for t in tests}
                continue
            running[fw] = (process, port)
        yield running
    finally:
        for process, _ in running.values():
            endtoend.stop(process)


def run_endtoend(args: argparse.Namespace, env: dict[str, str], tmp: Path, server: str,
                 database_url: str) -> ByFramework:
    frameworks, tests = args.frameworks, args.tests
    results: ByFramework = {fw: {} for fw in frameworks}
    if shutil.which("wrk") is None:
        return {fw: {t: {"status": "error", "detail": "wrk not installed"} for t in tests}
                for fw in frameworks}
    samples: dict[tuple[str, str], list[Result]] = {}
    with _servers(frameworks, server, env, tmp, results, tests) as running:
        # Every app verified before any is loaded: requests a wrk run leaves in flight (an
        # update still writing) would change the rows another app's answers are checked on.
        for fw, (_, port) in running.items():
            _say(f"tfb end to end ({server}): verifying {fw}")
            problems = asyncio.run(verify_server(database_url, port, tests))
            for test, problem in problems.items():
                if problem:
                    results[fw][test] = {"status": "error", "detail": f"wrong answer: {problem}"}
        for fw, (process, port) in running.items():
            for test in tests:
                if args.warmup > 0 and test not in results[fw]:
                    _wrk(port, test, args.warmup, args.connections, process.pid, tmp)
        for round_no in range(args.e2e_rounds):
            for test in tests:
                for fw in _rotated(frameworks, round_no):
                    if fw in running and test not in results[fw]:
                        _say(f"tfb end to end ({server}) round {round_no + 1}/"
                             f"{args.e2e_rounds}: {test} {fw}")
                        process, port = running[fw]
                        samples.setdefault((fw, test), []).append(
                            _wrk(port, test, args.duration, args.connections, process.pid, tmp))
    for (fw, test), runs in samples.items():
        failed = [r for r in runs if r["status"] != "ok"]
        if failed:
            results[fw][test] = failed[0]
            continue
        best = max(runs, key=lambda r: r["rps"])
        results[fw][test] = {
            "status": "ok", "rps": best["rps"],
            "median_rps": statistics.median(r["rps"] for r in runs),
            "cpu_us": statistics.median(r["cpu_us"] for r in runs),
            "rounds_rps": [r["rps"] for r in runs],  # round i of each framework: same minutes
        }
    return results


# --- the section -------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> Result:
    """Everything this section measures: {"inprocess": ..., "e2e": {server: ...}}, or
    {"unavailable": why} when there is no PostgreSQL to be had."""
    try:
        tfb_postgres.ensure_installed(_say)
    except tfb_postgres.Unavailable as exc:
        return {"unavailable": str(exc)}
    out: Result = {"inprocess": {}, "e2e": {}}
    with tempfile.TemporaryDirectory(prefix="joey-tfb-") as tmp_name, \
            tfb_postgres.running(cpu=1, say=_say) as database:
        tmp = Path(tmp_name)
        env = {**os.environ, DATABASE_ENV: database.url}
        if args.smoke:
            out["inprocess"] = {fw: _worker(fw, args, env, tmp) for fw in args.frameworks}
            return out
        if "inprocess" not in args.skip:
            out["inprocess"] = run_inprocess(args, env, tmp)
            if any(t in DATABASE_TESTS for t in args.tests):
                out["stand_in"] = run_inprocess(args, env, tmp, stand_in=True)
        for server in args.servers:
            out["e2e"][server] = run_endtoend(args, env, tmp, server, database.url)
    return out


def _cells(results: ByFramework, frameworks: list[str], test: str, field: str) -> dict[str, Any]:
    return {fw: report.cell(results.get(fw, {}).get(test), field) for fw in frameworks}


def tables(results: Result, args: argparse.Namespace) -> list[str]:
    """The section's tables, as markdown."""
    if "unavailable" in results:
        return [f"### TechEmpower tests (issue 29)\n\nNot measured: {results['unavailable']}\n"]
    frameworks: list[str] = args.frameworks
    out = []
    inproc = results["inprocess"]
    if inproc:
        out.append(report.Table(
            "TechEmpower tests: CPU per request in-process (µs, lower is better)",
            "Each app called directly (no server), under uvloop, "
            f"{args.concurrency} requests at once, on a private PostgreSQL {_pg_note()}; this"
            " process's CPU time per request (framework, driver, JSON, template; not the waits"
            " for the database), net of the harness's own; best of"
            f" {args.rounds} rounds of {args.repeats} repeats, the frameworks' repeats"
            " interleaved one by one (an interpreter per framework, all up at once, order"
            " rotated; the world table vacuumed before each repeat of updates)."
            " Ratios: Joey's time ÷ the other's (below 1.00x, Joey is cheaper).",
            frameworks,
            [(TITLES[t], _cells(inproc, frameworks, t, "best_us")) for t in args.tests],
            lower_is_better=True,
        ).markdown())
    stand_in = results.get("stand_in")
    if stand_in:
        tests = [t for t in args.tests if t in DATABASE_TESTS]
        out.append(report.Table(
            "TechEmpower tests: the framework's own CPU per request, stand-in pool (µs, lower"
            " is better)",
            "The database tests again, the same way, every app given the stand-in pool of"
            " `tfb_apps/stand_in.py` instead of asyncpg's: the same calls, each suspending once"
            " as a query does and answering at once. What asyncpg costs is the same code for"
            " every app, and on this shared machine it moves the table above by more than the"
            " frameworks differ; here it is gone, and what is left is the framework, the app's"
            " code, JSON and the template (the raw app: its own code and JSON). Best of"
            f" {args.rounds} rounds of {args.repeats} repeats, interleaved as above.",
            frameworks,
            [(TITLES[t], _cells(stand_in, frameworks, t, "best_us")) for t in tests],
            lower_is_better=True,
        ).markdown())
    for server, by_fw in results["e2e"].items():
        rows = [(TITLES[t], _cells(by_fw, frameworks, t, "rps")) for t in args.tests]
        rows += [(f"{TITLES[t]}, median", _cells(by_fw, frameworks, t, "median_rps"))
                 for t in args.tests]
        out.append(report.Table(
            f"TechEmpower tests end to end under {server} (requests/s, higher is better)",
            f"{endtoend_note(server)}; wrk -t1 -c{args.connections}, {args.duration:g} s per run"
            f" after a {args.warmup:g} s warm-up, {args.e2e_rounds} rounds interleaved across"
            " frameworks: best round, then the median. Ratios: Joey's requests/s ÷ the other's"
            " (above 1.00x, Joey is faster).",
            frameworks, rows, lower_is_better=False, digits=0,
        ).markdown())
    if results["e2e"]:
        rows = [(f"{TITLES[t]} ({server})", _cells(by_fw, frameworks, t, "cpu_us"))
                for server, by_fw in results["e2e"].items() for t in args.tests]
        out.append(report.Table(
            "TechEmpower tests: the server's CPU per request end to end (µs, lower is better)",
            "The server's process tree (framework and server), from /proc, over each timed wrk"
            " run, divided by the requests wrk counted; median of the rounds.",
            frameworks, rows, lower_is_better=True,
        ).markdown())
    return out


def _pg_note() -> str:
    found = tfb_postgres.binaries()
    return f"{found.parent.name}" if found else ""


# How tfb_serve.py runs each server: the settings serve.py gives the other sections' apps.
SERVER_NOTES = {
    "uvicorn": "uvicorn, httptools + uvloop, 1 worker",
    "granian": "granian (ASGI interface), HTTP/1.1, uvloop, 1 worker with 1 runtime thread",
}


def endtoend_note(server: str) -> str:
    return f"{SERVER_NOTES[server]} on CPU 0, PostgreSQL and wrk on CPU 1"


def targets(results: Result) -> list[str]:
    """Issue 29's targets for Joey, each met or missed, with the figures.

    End to end, a 10% lead is asked for where the framework's share of the server's CPU per
    request (the end-to-end CPU table: what is left once the raw app's is taken away) allows
    one. CPU per request on the database tests is judged on the framework's own share (the
    stand-in pool), the database's figures beside it. Where Joey is behind, the ratio of
    each round (or repeat) to the same round of the peer says whether the gap is larger than
    this run's noise."""
    def mark(ok: bool | None, text: str) -> str:
        return f"- [{'not measured' if ok is None else 'met' if ok else 'missed'}] {text}"

    if "unavailable" in results:
        return [mark(None, f"TechEmpower tests: {results['unavailable']}")]
    inproc: ByFramework = results["inprocess"]
    stand_in: ByFramework = results.get("stand_in") or {}
    lines = []

    def figure(by_fw: ByFramework, fw: str, test: str, field: str) -> float | None:
        result = by_fw.get(fw, {}).get(test)
        return float(result[field]) if result and result.get("status") == "ok" else None

    def share(by_fw: ByFramework, test: str, field: str) -> float | None:
        """The framework's share of the cheapest peer's CPU per request."""
        raw = figure(by_fw, RAW, test, field)
        peers = [c for p in PEERS if (c := figure(by_fw, p, test, field)) is not None]
        return 1 - raw / min(peers) if raw is not None and peers else None

    def by_round(by_fw: ByFramework, test: str, field: str, peer: str) -> str:
        """Joey's figure ÷ the peer's, round by round (the same minutes): their range."""
        mine = by_fw.get(JOEY, {}).get(test, {}).get(field)
        theirs = by_fw.get(peer, {}).get(test, {}).get(field)
        if not mine or not theirs:
            return ""
        ratios = [a / b for a, b in zip(mine, theirs, strict=False) if b]
        return f"; round by round {min(ratios):.2f}x to {max(ratios):.2f}x" if ratios else ""

    for server, by_fw in results["e2e"].items():
        for test in TESTS:
            joey = figure(by_fw, JOEY, test, "rps")
            peers = {p: c for p in PEERS if (c := figure(by_fw, p, test, "rps")) is not None}
            part = share(by_fw, test, "cpu_us")
            wanted = 1.10 if part is not None and part >= SHARE_FOR_A_10_PERCENT_LEAD else 1.0
            where = f" of the server's CPU per request {part:.0%}" if part is not None else ""
            goal = (f"ahead of every peer by 10% (framework share{where})" if wanted > 1
                    else "ahead of every peer" + (f" (framework share{where}: too small for"
                                                  " a 10% lead)" if part is not None else ""))
            if joey is None or not peers:
                lines.append(mark(False if joey is None and by_fw.get(JOEY) else None,
                                  f"{server}, {TITLES[test]}: {goal}"))
                continue
            best = max(peers, key=lambda p: peers[p])
            ratio = joey / peers[best]
            ok = ratio >= wanted if wanted > 1 else ratio > 1.0
            noise = "" if ok else by_round(by_fw, test, "rounds_rps", best)
            lines.append(mark(ok, f"{server}, {TITLES[test]}: {goal} ({ratio:.2f}x {best}"
                                  f"{noise})"))

    def cheapest(by_fw: ByFramework, test: str, among: tuple[str, ...] = PEERS
                 ) -> tuple[bool, str] | None:
        """Whether Joey's best is at most the cheapest peer's, and the figures."""
        joey = figure(by_fw, JOEY, test, "best_us")
        peers = {p: c for p in among if (c := figure(by_fw, p, test, "best_us")) is not None}
        if joey is None or not peers:
            return None
        peer = min(peers, key=lambda p: peers[p])
        ok = joey <= peers[peer]
        noise = "" if ok else by_round(by_fw, test, "repeats_us", peer)
        return ok, f"{joey:.1f} µs vs {peers[peer]:.1f} µs {peer}{noise}"

    def cpu_line(text: str, test: str, among: tuple[str, ...] = PEERS) -> str:
        on_database = cheapest(inproc, test, among)
        own = cheapest(stand_in, test, among) if test in DATABASE_TESTS else None
        if own is not None:
            figures = f"on the database: {on_database[1]}" if on_database else ""
            return mark(own[0], f"{text}, judged on the framework's own share (stand-in pool:"
                                f" {own[1]}; {figures})")
        if on_database is None:
            return mark(False if inproc.get(JOEY) else None, text)
        return mark(on_database[0], f"{text} ({on_database[1]})")

    for test in TESTS:
        lines.append(cpu_line(f"CPU per request, {TITLES[test]}: at most the cheapest peer's",
                              test))
    lines.append(cpu_line("CPU per request, fortunes: at most BlackSheep's", "fortunes",
                          ("blacksheep",)))
    return lines


def errors(results: Result) -> dict[str, ByFramework]:
    """Every error, by section, for report.problems."""
    if "unavailable" in results:
        return {}
    out = {"tfb in-process": results["inprocess"]}
    if results.get("stand_in"):
        out["tfb in-process, stand-in pool"] = results["stand_in"]
    out.update({f"tfb end to end ({server})": by_fw for server, by_fw in results["e2e"].items()})
    return out


# --- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help="Joey only: verify, then one short CPU repeat; no wrk")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--tests", default=",".join(TESTS))
    parser.add_argument("--servers", default=",".join(SERVERS), help="end-to-end servers")
    parser.add_argument("--skip", default="", help="inprocess: only end to end")
    parser.add_argument("--rounds", type=int, default=3, help="in-process rounds")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per worker")
    parser.add_argument("--target-ms", type=float, default=200.0, help="CPU ms of one repeat")
    parser.add_argument("--concurrency", type=int, default=16, help="in-process requests at once")
    parser.add_argument("--worker-timeout", type=float, default=900.0)
    parser.add_argument("--e2e-rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of one wrk run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=64)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.frameworks = [fw for fw in args.frameworks.split(",") if fw in FRAMEWORKS]
    args.tests = [t for t in args.tests.split(",") if t in TESTS]
    args.servers = [s for s in args.servers.split(",") if s in SERVERS]
    args.skip = set(args.skip.split(","))
    if args.smoke:
        args.frameworks, args.servers = [JOEY], []
        args.rounds, args.repeats, args.target_ms = 1, 1, 20.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    results = measure(args)
    if "unavailable" in results:
        print(f"tfb: skipped: {results['unavailable']}")
        return 2 if args.smoke else 0
    print("\n".join(tables(results, args)))
    print("\n".join(["### Targets (issue 29, TechEmpower tests)", "", *targets(results)]))
    trouble = report.problems(errors(results))
    print("\n".join(["", "### Problems", "", *(trouble or ["- none"])]))
    if args.smoke:
        joey = results["inprocess"].get(JOEY, {})
        for test in args.tests:
            status = joey.get(test, {}).get("status", "missing")
            print(f"tfb smoke: {test}: {'verified' if status == 'ok' else status}")
        return 0 if all(joey.get(t, {}).get("status") == "ok" for t in args.tests) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
