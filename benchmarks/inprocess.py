"""Worker: time one framework's in-process scenarios and write the figures as JSON.

Run by ``run.py`` in a fresh interpreter per framework and round, so that one framework's imports,
caches and garbage never slow another's measurements::

    python benchmarks/inprocess.py joey --out /tmp/joey.json [--repeats 5 --target-ms 100]

Each scenario's app is built, sent a lifespan startup, and its answer checked once before it is
timed; a wrong answer or an exception is recorded as an error, a missing feature as "n/a".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asgi_driver as driver
from apps import load
from scenarios import SCENARIOS, Scenario, check_http

Result = dict[str, Any]


def _error(exc: BaseException) -> Result:
    where = traceback.extract_tb(exc.__traceback__)
    place = f" at {Path(where[-1].filename).name}:{where[-1].lineno}" if where else ""
    return {"status": "error", "detail": f"{type(exc).__name__}: {exc}"[:300] + place}


class Worker:
    def __init__(self, framework: str, repeats: int, target_s: float, ws_messages: int) -> None:
        self.framework = framework
        self.repeats = repeats
        self.target_s = target_s
        self.ws_messages = ws_messages
        self.module = load(framework)
        self._shared: dict[str, driver.Lifespan] = {}

    async def _start(self, scenario: Scenario) -> tuple[driver.Lifespan, float]:
        """Build the scenario's app and run its lifespan startup; return it and the time taken."""
        started = time.perf_counter()
        if scenario.app in ("routes", "prefixed"):
            app = getattr(self.module, f"build_{scenario.app}_app")(scenario.routes)
        elif scenario.app == "middleware":
            app = self.module.build_middleware_app()
        elif scenario.app in ("security", "ratelimit", "caching", "metrics", "tracing"):
            build = getattr(self.module, f"build_{scenario.app}_app", None)
            if build is None:  # without built-in security, rate limits, caches or metrics
                raise NotImplementedError
            app = build()
        else:
            app = self.module.build_app()
        lifespan = driver.Lifespan(app)
        await lifespan.start()
        return lifespan, time.perf_counter() - started

    async def _app_for(self, scenario: Scenario) -> tuple[driver.Lifespan, float | None]:
        if scenario.app in ("routes", "prefixed"):  # built for one scenario, then dropped
            return await self._start(scenario)
        if scenario.app not in self._shared:
            self._shared[scenario.app], _ = await self._start(scenario)
        return self._shared[scenario.app], None

    async def overheads(self) -> dict[str, float]:
        """The harness's own cost per HTTP request and per WebSocket message, in seconds."""
        http = next(s for s in SCENARIOS if not s.websocket)
        ws = next(s for s in SCENARIOS if s.websocket)
        http_best, _, _ = await driver.measure(
            driver.http_loop(driver.null_app, http, {}), self.target_s, self.repeats
        )
        ws_best, _, _ = await driver.measure(
            driver.ws_loop(driver.drain_app, ws, {}, self.ws_messages, wait=False),
            self.target_s,
            self.repeats,
        )
        return {"http": http_best, "ws": ws_best}

    async def scenario(self, scenario: Scenario, overhead: dict[str, float]) -> Result:
        try:
            lifespan, build_s = await self._app_for(scenario)
        except NotImplementedError:
            return {"status": "n/a"}
        except Exception as exc:
            return _error(exc)
        try:
            result = await self._verify_and_time(scenario, lifespan, overhead)
            if build_s is not None and result["status"] == "ok":
                result["build_ms"] = (build_s + result.pop("first_s")) * 1e3
            result.pop("first_s", None)
            if lifespan.startup_error:
                result["lifespan"] = lifespan.startup_error
            return result
        finally:
            if scenario.app in ("routes", "prefixed"):
                await lifespan.stop()

    async def _verify_and_time(
        self, scenario: Scenario, lifespan: driver.Lifespan, overhead: dict[str, float]
    ) -> Result:
        app, state = lifespan.app, lifespan.state
        try:
            started = time.perf_counter()
            if scenario.websocket:
                problem = await driver.call_ws(app, scenario, state, 3)
                run = driver.ws_loop(app, scenario, state, self.ws_messages)
            else:
                status, body = await driver.call_http(app, scenario, state)
                problem = check_http(scenario, status, body)
                run = driver.http_loop(app, scenario, state)
            first_s = time.perf_counter() - started
            if problem:
                return {"status": "error", "detail": f"wrong answer: {problem}"}
            best, median, n = await driver.measure(run, self.target_s, self.repeats)
        except Exception as exc:
            return _error(exc)
        harness = overhead["ws" if scenario.websocket else "http"]
        return {
            "status": "ok",
            "best_ns": (best - harness) * 1e9,
            "median_ns": (median - harness) * 1e9,
            "n": n,
            "first_s": first_s,
        }

    async def close(self) -> None:
        for lifespan in self._shared.values():
            await lifespan.stop()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    wanted = set(args.scenarios.split(",")) if args.scenarios else None
    scenarios = [s for s in SCENARIOS if wanted is None or s.key in wanted]
    try:
        worker = Worker(args.framework, args.repeats, args.target_ms / 1e3, args.ws_messages)
    except Exception as exc:  # the framework is not importable: every scenario is an error
        return {"results": {s.key: _error(exc) for s in scenarios}, "overhead_ns": {}}
    overhead = await worker.overheads()
    results = {}
    for scenario in scenarios:
        results[scenario.key] = await worker.scenario(scenario, overhead)
    await worker.close()
    return {"results": results, "overhead_ns": {k: v * 1e9 for k, v in overhead.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target-ms", type=float, default=100.0, help="duration of one repeat")
    parser.add_argument("--ws-messages", type=int, default=200, help="messages per connection")
    parser.add_argument("--scenarios", default="", help="comma-separated keys (default: all)")
    args = parser.parse_args()
    report = asyncio.run(_run(args))
    report["framework"] = args.framework
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
