"""Worker: one framework's TechEmpower app, verified and then timed in-process, figures out
as JSON. Run by ``tfb.py`` in an interpreter of its own per framework::

    TFB_DATABASE_URL=postgresql://... python benchmarks/tfb_inprocess.py joey --out f.json
    TFB_DATABASE_URL=postgresql://... python benchmarks/tfb_inprocess.py joey --commands
    TFB_STAND_IN=1 python benchmarks/tfb_inprocess.py joey --commands  # no database at all

The first form times every test and writes the figures (the smoke run). The second is how
the section runs every framework at once (``tfb.py``): the worker starts and verifies its app,
says so on stdout (a JSON line), then times one repeat per command read from stdin (a JSON
line each: ``{"test": "db", "n": 0}`` calibrates ``n``, ``{"test": "db", "n": 800}`` answers
the CPU seconds of 800 requests; ``"harness"`` is the empty app) until stdin closes. So the
parent interleaves the repeats of all frameworks one by one, and a slow minute on the shared
machine (which moves CPU per request by 30% here) is shared by all of them.

The app is called directly (no server, no sockets to the client; asyncpg talks to the real
PostgreSQL), under uvloop as under the servers. What is measured is this process's CPU time
per request (``time.process_time``): the framework, the driver's share on the client side,
serialization and the template, but not the time spent waiting for PostgreSQL, which the
load of the shared machine would make noisy. ``--concurrency`` requests run at once, as a
server would run them, so that the pool is used as under load. The harness's own CPU per
request (an empty app, the same way) is subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_driver import ASGIApp, Lifespan, Message, Scope, null_app
from tfb_apps import DATABASE_ENV, STAND_IN_ENV, database_url, load
from tfb_verify import TARGETS, TESTS, Answer, Verifier

Result = dict[str, Any]
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_DISCONNECT: Message = {"type": "http.disconnect"}


def scope_for(target: str, state: dict[str, Any]) -> Scope:
    path, _, query = target.partition("?")
    return {
        "type": "http", "asgi": _ASGI, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"joey-bench/1"),
                    (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "state": state.copy(),  # what a server does per request with the lifespan state
    }


def fetcher(app: ASGIApp, state: dict[str, Any]) -> Callable[[str], Awaitable[Answer]]:
    """``fetch(target)`` for the verifier: one in-process request, its whole answer."""

    async def fetch(target: str) -> Answer:
        sent: list[Message] = []
        received = False

        async def receive() -> Message:
            nonlocal received
            if received:
                return _DISCONNECT
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        await asyncio.wait_for(app(scope_for(target, state), receive, send), 30)
        start = next(m for m in sent if m["type"] == "http.response.start")
        headers: dict[str, str] = {}
        for name, value in start.get("headers", []):
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Answer(start["status"], headers, body)

    return fetch


def cpu_loop(app: ASGIApp, target: str, state: dict[str, Any], concurrency: int
             ) -> Callable[[int], Awaitable[tuple[float, int]]]:
    """``run(n)``: the CPU seconds this process spends on ``n`` requests, ``concurrency`` at
    a time, and how many of them did not answer 200."""

    async def one(count: int, failures: list[int]) -> None:
        for _ in range(count):
            received = False

            async def receive() -> Message:
                nonlocal received
                if received:
                    return _DISCONNECT
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] != 200:
                    failures.append(message["status"])

            await app(scope_for(target, state), receive, send)

    async def run(n: int) -> tuple[float, int]:
        failures: list[int] = []
        share, extra = divmod(n, concurrency)
        started = time.process_time()
        await asyncio.gather(*(one(share + (i < extra), failures) for i in range(concurrency)))
        return time.process_time() - started, len(failures)

    return run


async def calibrate(run: Callable[[int], Awaitable[tuple[float, int]]], target_s: float,
                    max_n: int) -> tuple[int, int]:
    """``(n, failed)``: the number of requests that takes about ``target_s`` of CPU, and how
    many requests of the last trial did not answer 200."""
    n = 8
    while True:  # bounded: n doubles up to max_n
        spent, failed = await run(n)
        if failed:
            return n, failed
        if spent >= target_s / 4 or n >= max_n:
            break
        n *= 2
    return max(8, min(max_n, int(n * target_s / max(spent, 1e-9)))), 0


async def measure(run: Callable[[int], Awaitable[tuple[float, int]]], target_s: float,
                  repeats: int, max_n: int) -> Result:
    """Calibrate ``n`` to about ``target_s`` of CPU, then take ``repeats`` repeats: the best
    and the median CPU seconds per request (or the failures)."""
    n, failed = await calibrate(run, target_s, max_n)
    if failed:
        return {"status": "error", "detail": f"{failed} of {n} requests did not answer 200"}
    per_request = []
    for _ in range(repeats):
        gc.collect()
        spent, failed = await run(n)
        if failed:
            return {"status": "error", "detail": f"{failed} of {n} requests did not answer 200"}
        per_request.append(spent / n)
    per_request.sort()
    return {"status": "ok", "best": per_request[0], "median": per_request[len(per_request) // 2],
            "n": n}


def _error(exc: BaseException) -> Result:
    where = traceback.extract_tb(exc.__traceback__)
    place = f" at {Path(where[-1].filename).name}:{where[-1].lineno}" if where else ""
    return {"status": "error", "detail": f"{type(exc).__name__}: {exc}"[:300] + place}


async def check(lifespan: Lifespan, tests: list[str]) -> dict[str, str | None]:
    """What the verifier finds wrong with each test's answers (``None``: right). On the
    stand-in pool there is no database to check against: nothing is checked (tfb.py has
    verified every app on the database first), and a test that does not answer 200 fails
    when it is timed."""
    if os.environ.get(STAND_IN_ENV):
        return {test: None for test in tests}
    async with Verifier(database_url(), server_headers=False) as verifier:
        return await verifier.check_all(fetcher(lifespan.app, lifespan.state), tuple(tests))


async def run_worker(args: argparse.Namespace) -> dict[str, Result]:
    tests = [t for t in args.tests.split(",") if t in TESTS]
    try:
        app = load(args.framework).build_app()
        lifespan = Lifespan(app)
        await lifespan.start()
    except Exception as exc:
        return {test: _error(exc) for test in tests}
    if lifespan.startup_error:
        return {test: {"status": "error", "detail": f"startup failed: {lifespan.startup_error}"}
                for test in tests}
    results: dict[str, Result] = {}
    try:
        problems = await check(lifespan, tests)
        if args.verify_only:
            return {test: ({"status": "error", "detail": f"wrong answer: {problem}"} if problem
                           else {"status": "ok"}) for test, problem in problems.items()}
        harness = await measure(cpu_loop(null_app, "/", {}, args.concurrency),
                                args.target_ms / 1e3, args.repeats, args.max_requests)
        for test in tests:
            if problems[test]:
                results[test] = {"status": "error", "detail": f"wrong answer: {problems[test]}"}
                continue
            try:
                got = await measure(
                    cpu_loop(lifespan.app, TARGETS[test], lifespan.state, args.concurrency),
                    args.target_ms / 1e3, args.repeats, args.max_requests)
            except Exception as exc:
                got = _error(exc)
            if got["status"] == "ok":
                got["best_us"] = (got.pop("best") - harness["best"]) * 1e6
                got["median_us"] = (got.pop("median") - harness["median"]) * 1e6
            results[test] = got
    except Exception as exc:
        return {test: results.get(test, _error(exc)) for test in tests}
    finally:
        await lifespan.stop()
    return results


async def serve_commands(args: argparse.Namespace) -> None:
    """``--commands``: start and verify the app, then one repeat per command (module doc)."""
    tests = [t for t in args.tests.split(",") if t in TESTS]
    loop = asyncio.get_running_loop()

    def say(message: Result) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        app = load(args.framework).build_app()
        lifespan = Lifespan(app)
        await lifespan.start()
    except Exception as exc:
        say({"error": _error(exc)["detail"]})
        return
    if lifespan.startup_error:
        say({"error": f"startup failed: {lifespan.startup_error}"})
        return
    try:
        problems = await check(lifespan, tests)
        say({"ready": problems})
        runs = {test: cpu_loop(lifespan.app, TARGETS[test], lifespan.state, args.concurrency)
                for test in tests if not problems[test]}
        runs["harness"] = cpu_loop(null_app, "/", {}, args.concurrency)
        random.seed(29)  # every app draws the same ids and numbers, in the same order
        while True:  # bounded by the parent: it closes stdin when done
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            run = runs[command["test"]]
            try:
                if command["n"] == 0:
                    n, failed = await calibrate(run, args.target_ms / 1e3, args.max_requests)
                    say({"n": n, "failed": failed})
                else:
                    gc.collect()
                    spent, failed = await run(command["n"])
                    say({"cpu": spent, "failed": failed})
            except Exception as exc:
                say({"error": _error(exc)["detail"]})
    finally:
        await lifespan.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework")
    parser.add_argument("--out", type=Path, help="time every test, write the figures here")
    parser.add_argument("--commands", action="store_true",
                        help="time one repeat per command on stdin (how tfb.py runs it)")
    parser.add_argument("--tests", default=",".join(TESTS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target-ms", type=float, default=200.0, help="CPU ms of one repeat")
    parser.add_argument("--concurrency", type=int, default=16, help="requests at once")
    parser.add_argument("--max-requests", type=int, default=50_000, help="per repeat")
    parser.add_argument("--verify-only", action="store_true", help="check the answers, no timing")
    args = parser.parse_args()
    if DATABASE_ENV not in os.environ and not os.environ.get(STAND_IN_ENV):
        parser.error(f"{DATABASE_ENV} is not set (tfb.py starts a database and sets it)")
    if (args.out is None) == (not args.commands):
        parser.error("one of --out and --commands")
    try:
        import uvloop
        run_loop: Callable[[Any], Any] = uvloop.run
    except ModuleNotFoundError:  # the servers run on uvloop; without it, asyncio's loop
        run_loop = asyncio.run
    if args.commands:
        run_loop(serve_commands(args))
        return
    results = run_loop(run_worker(args))
    args.out.write_text(json.dumps({"framework": args.framework, "results": results}, indent=1))


if __name__ == "__main__":
    main()
