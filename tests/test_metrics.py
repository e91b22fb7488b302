"""joey.metrics in one process: the HTTP metrics by route template, the scrape route and its
formats (checked by ``promtool``), and what the in-memory task queue, the channels, the rate
limits and a failing session store report. Over real worker processes and a real Prometheus:
tests/integration/test_metrics_prometheus.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from joey import App, Middleware, Request, Response, Router
from joey.channels import Channels
from joey.cli.run import _metrics_directory
from joey.metrics import Metrics
from joey.middleware import SessionMiddleware
from joey.openapi import OpenAPI
from joey.ratelimit import Decision, RateLimit
from joey.security import Security
from joey.tasks import Backoff, InMemoryTasks
from joey.testing import AsyncTestClient, TestClient
from tests.middleware.test_sessions import SECRET, FlakyStore

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DURATION = "http_server_request_duration_seconds_count"


def samples(text: str) -> Samples:
    """Every sample of a scrape: (name, labels) → value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def requests(found: Samples, route: str, status: str, method: str = "GET") -> float:
    return value(found, DURATION, http_request_method=method, http_route=route,
                 http_response_status_code=status)


def series(found: Samples) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return set(found)


def items_app(metrics: Metrics | None = None, **options: Any) -> App:
    app = App(metrics=metrics or Metrics(), **options)

    @app.get("/items/{id:int}")
    async def item(id: int, verbose: bool = False) -> dict[str, int]:
        return {"id": id}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return app


# -- HTTP ------------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_method_and_status() -> None:
    with TestClient(items_app(), raise_server_exceptions=False) as client:
        for i in range(3):
            assert client.get(f"/items/{i}").status_code == 200
        assert client.get("/items/1?verbose=maybe").status_code == 422
        assert client.get("/boom").status_code == 500
        found = samples(client.get("/metrics").text)
    assert requests(found, "/items/{id}", "200") == 3
    assert requests(found, "/items/{id}", "422") == 1
    assert requests(found, "/boom", "500") == 1
    # never a raw path as a label
    assert not any(v.startswith("/items/") and v != "/items/{id}"
                   for _, labels in found for _, v in labels)


def test_a_404_storm_and_unknown_methods_make_no_new_series() -> None:
    with TestClient(items_app()) as client:
        assert client.get("/nothing").status_code == 404
        assert client.request("BREW", "/items/1").status_code == 405
        before = samples(client.get("/metrics").text)
        for i in range(1000):
            client.get(f"/unknown/{i}/{'x' * (i % 50)}")
            client.request(f"M{i}", f"/items/{i}")
        after = samples(client.get("/metrics").text)
    assert series(after) == series(before)
    assert requests(after, "", "404") == 1001
    assert requests(after, "/items/{id}", "405", method="_OTHER") == 1001


def test_body_sizes_and_requests_in_flight() -> None:
    metrics = Metrics()
    app = items_app(metrics)

    @app.get("/in-flight")
    async def in_flight() -> float:
        found = samples(metrics.exposition()[0].decode())
        return value(found, "http_server_active_requests", http_request_method="GET")

    with TestClient(app) as client:
        assert client.post("/echo", content=b"x" * 1500).content == b"x" * 1500
        assert client.get("/in-flight").json() == 1
        found = samples(client.get("/metrics").text)
    labels = {"http_request_method": "POST", "http_route": "/echo",
              "http_response_status_code": "200"}
    assert value(found, "http_server_request_body_size_bytes_sum", **labels) == 1500
    assert value(found, "http_server_response_body_size_bytes_sum", **labels) == 1500
    assert value(found, "http_server_request_body_size_bytes_bucket", le="1000.0",
                 **labels) == 0
    assert value(found, "http_server_request_body_size_bytes_bucket", le="10000.0",
                 **labels) == 1
    assert value(found, "http_server_active_requests", http_request_method="GET") == 0


def test_the_scrape_is_left_out_of_the_api_document_and_of_the_metrics() -> None:
    app = items_app(openapi=OpenAPI(title="t"))
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
        client.get("/metrics")
        found = samples(client.get("/metrics").text)
    assert "/metrics" not in document["paths"]
    assert not any(("http_route", "/metrics") in labels for _, labels in found)
    assert requests(found, "/openapi.json", "200") == 1


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    with TestClient(items_app()) as client:
        plain = client.get("/metrics")
        open_metrics = client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition() -> None:
    with TestClient(items_app(), raise_server_exceptions=False) as client:
        client.get("/items/1")
        client.post("/echo", content=b"abc")
        client.get("/nothing")
        client.get("/boom")
        text = client.get("/metrics").text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_first_request_is_measured_without_a_lifespan() -> None:
    client = TestClient(items_app())  # no `with`: the first request compiles the app
    client.get("/items/1")
    client.get("/items/2")
    assert requests(samples(client.get("/metrics").text), "/items/{id}", "200") == 2


def test_measured_outside_asgi_middleware_and_mounts_by_their_prefix() -> None:
    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = items_app(asgi_middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])
    app.mount("/legacy", mounted)
    with TestClient(app) as client:
        client.get("/items/1")
        client.get("/legacy/a/b")
        client.get("/legacy/c")
        found = samples(client.get("/metrics").text)
    assert requests(found, "/items/{id}", "200") == 1
    assert requests(found, "/legacy", "204") == 2


def test_an_app_without_metrics_runs_nothing_new_per_request() -> None:
    app = App()

    @app.get("/")
    async def index() -> str:
        return "hi"

    app.freeze()
    # the server calls the engine's own HTTP path: no wrapper, no labelled pipelines
    assert app._serve_http == app._engine.handle_http  # type: ignore[union-attr]
    endpoint = app._engine.static_routes["/"]  # type: ignore[union-attr]
    assert endpoint.handlers["GET"].__name__ != "labelled"


def test_two_apps_keep_their_metrics_apart() -> None:
    first, second = items_app(), items_app()
    with TestClient(first) as one, TestClient(second) as two:
        one.get("/items/1")
        assert requests(samples(two.get("/metrics").text), "/items/{id}", "200") == 0
        assert requests(samples(one.get("/metrics").text), "/items/{id}", "200") == 1


def test_setting_the_multiprocess_directory_too_late_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="set after prometheus_client was imported"):
        Metrics()


def test_joey_run_prepares_the_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with _metrics_directory(1):
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    with _metrics_directory(2):
        made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert made.is_dir()
    assert not made.exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"old")
    (given / "notes.txt").write_text("mine")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    for workers in (1, 2):
        with _metrics_directory(workers):
            assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]
        assert given.is_dir()
        (given / "gauge_livesum_123.db").write_bytes(b"old")


# -- tasks, channels, rate limits, sessions ---------------------------------------------------


def task_values(metrics: Metrics, task: str) -> Mapping[str, float]:
    found = samples(metrics.exposition()[0].decode())
    names = ("enqueued", "started", "succeeded", "failed", "dead")
    counts = {name: value(found, f"joey_tasks_{name}_total", task=task) for name in names}
    counts["runs"] = value(found, "joey_task_run_duration_seconds_count", task=task)
    counts["queued"] = value(found, "joey_tasks_queued")
    return counts


async def test_in_memory_tasks_report_enqueues_attempts_and_outcomes() -> None:
    metrics = Metrics()
    tasks = InMemoryTasks(max_concurrency=1)
    app = App(metrics=metrics, tasks=tasks)
    gate = asyncio.Event()

    @app.task(name="blocked")
    async def blocked() -> None:
        await gate.wait()

    @app.task(name="flaky", retries=1, backoff=Backoff(base=0.0, jitter=0.0))
    async def flaky() -> None:
        raise ValueError("no")

    async with AsyncTestClient(app):
        first = await tasks.enqueue(blocked)
        second = await tasks.enqueue(blocked)
        for _ in range(1000):  # the first starts on the loop's next turns
            if task_values(metrics, "blocked")["started"] == 1:
                break
            await asyncio.sleep(0)
        assert task_values(metrics, "blocked")["queued"] == 1  # the second waits for the slot
        gate.set()
        await tasks.wait(first)
        await tasks.wait(second)
        await tasks.wait(await tasks.enqueue(flaky))
        blocked_counts = task_values(metrics, "blocked")
        flaky_counts = task_values(metrics, "flaky")
    assert blocked_counts == {"enqueued": 2, "started": 2, "succeeded": 2, "failed": 0,
                              "dead": 0, "runs": 2, "queued": 0}
    assert flaky_counts == {"enqueued": 1, "started": 2, "succeeded": 0, "failed": 2,
                            "dead": 1, "runs": 2, "queued": 0}


async def test_channels_report_subscribers_publishes_deliveries_and_drops() -> None:
    metrics = Metrics()
    channels = Channels(max_queue=1)
    App(metrics=metrics, channels=channels)

    def read() -> Samples:
        return samples(metrics.exposition()[0].decode())

    async with channels:
        oldest = channels.subscribe("news", overflow="drop_oldest")
        newest = channels.subscribe("news", overflow="drop_newest")
        slow = channels.subscribe("news", overflow="disconnect")
        async with oldest, newest, slow:
            assert value(read(), "joey_channel_subscribers") == 3
            for i in range(3):
                await channels.publish("news", i)
            found = read()
            await asyncio.sleep(0)  # the disconnected one leaves after the fan-out (call_soon)
            assert value(read(), "joey_channel_subscribers") == 2
        assert value(read(), "joey_channel_subscribers") == 0
    assert value(found, "joey_channel_messages_published_total") == 3
    # queued: every message by drop_oldest, the first by the two others
    assert value(found, "joey_channel_messages_delivered_total") == 3 + 1 + 1
    assert value(found, "joey_channel_messages_dropped_total", overflow="drop_oldest") == 2
    assert value(found, "joey_channel_messages_dropped_total", overflow="drop_newest") == 2
    assert value(found, "joey_channel_messages_dropped_total", overflow="disconnect") == 1


class DownQueue:
    """A shared task queue (as RedisTasks is) that cannot be read."""

    async def overview(self) -> dict[str, dict[str, int]]:
        raise ConnectionError("down")


async def test_a_queue_that_cannot_be_read_is_left_out_of_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    metrics.tasks.watch(DownQueue())
    async with AsyncTestClient(App(metrics=metrics)) as client:
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert "joey_tasks_in_redis" not in scrape.text
    assert "http_server_request_duration_seconds" in scrape.text
    assert "the task queue cannot be read" in caplog.text


class BrokenRateLimits:
    """A rate-limit backend that is down."""

    async def hit(self, key: str, limit: int, window: float, policy: Any) -> Decision:
        raise ConnectionError("down")


def test_rate_limits_report_every_decision() -> None:
    login = RateLimit(2, 60, name="login")
    open_ = RateLimit(1, 60, name="open", backend=BrokenRateLimits(), fail_open=True)
    closed = RateLimit(1, 60, name="closed", backend=BrokenRateLimits(), fail_open=False)
    app = App(metrics=Metrics())
    limited = Router(dependencies=[Security(login)])

    @limited.get("/login")
    async def page() -> str:
        return "ok"

    @app.get("/open", dependencies=[Security(open_)])
    async def fails_open() -> str:
        return "ok"

    @app.get("/closed", dependencies=[Security(closed)])
    async def fails_closed() -> str:
        return "ok"

    app.include_router(limited)
    with TestClient(app) as client:
        assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/open").status_code == 200
        assert client.get("/closed").status_code == 503
        found = samples(client.get("/metrics").text)

    def decisions(limit: str, decision: str) -> float:
        return value(found, "joey_rate_limit_decisions_total", limit=limit, decision=decision)

    assert (decisions("login", "allowed"), decisions("login", "limited")) == (2, 1)
    assert decisions("open", "failed_open") == 1
    assert decisions("closed", "unavailable") == 1


def test_session_store_errors_are_counted() -> None:
    store = FlakyStore()
    app = App(metrics=Metrics(),
              asgi_middleware=[Middleware(SessionMiddleware, secret_key=SECRET, store=store)])

    @app.post("/login")
    async def login(request: Request) -> str:
        request.session["user"] = "ada"
        return "in"

    @app.get("/me")
    async def me(request: Request) -> str:
        return str(request.session.get("user"))

    with TestClient(app) as client:
        assert client.post("/login").status_code == 200
        store.down = {"load", "save"}
        assert client.get("/me").status_code == 503
        client.cookies.clear()
        assert client.post("/login").status_code == 503
        found = samples(client.get("/metrics").text)
    assert value(found, "joey_session_store_errors_total", operation="load") == 1
    assert value(found, "joey_session_store_errors_total", operation="save") == 1
    assert requests(found, "/me", "503") == 1


async def test_a_client_gone_before_the_response_counts_as_499() -> None:
    metrics = Metrics()
    app = items_app(metrics)
    app.freeze()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/echo", "raw_path": b"/echo",
             "query_string": b"", "root_path": "", "headers": [(b"content-length", b"10")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent == []
    found = samples(metrics.exposition()[0].decode())
    assert requests(found, "/echo", "499", method="POST") == 1


def test_an_unhandled_error_is_logged_naming_its_handler_with_metrics_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The metrics' wrapper of a route keeps what error messages name (found by review).
    app = App(metrics=Metrics())

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    assert "boom" in caplog.text and "in middleware" not in caplog.text
    assert "test_metrics" in caplog.text or "boom (" in caplog.text
