"""The TechEmpower section of the benchmarks (issue 29): its verifier, on a real PostgreSQL,
accepts Joey's app (in-process and under uvicorn, httptools and h11) and refuses apps that
break a requirement, each with a sentence naming it; the section's smoke run verifies Joey's
six tests. No timing is asserted here. Skipped only where PostgreSQL cannot be installed.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jinja2
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import tfb_apps  # noqa: E402
import tfb_postgres  # noqa: E402
from asgi_driver import Lifespan  # noqa: E402
from tfb_apps import raw_app  # noqa: E402
from tfb_inprocess import fetcher  # noqa: E402
from tfb_verify import TESTS, Answer, Verifier  # noqa: E402

from tests.integration.servers import run_server, uvicorn_argv  # noqa: E402

ROOT = BENCHMARKS.parent
# The first test may install PostgreSQL (apt-get) and starts a cluster.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def database() -> Iterator[tfb_postgres.Database]:
    try:
        tfb_postgres.ensure_installed()
    except tfb_postgres.Unavailable as exc:
        pytest.skip(f"no PostgreSQL here, and it cannot be installed: {exc}")
    with tfb_postgres.running() as running:
        yield running


@pytest.fixture
def database_url(database: tfb_postgres.Database, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(tfb_apps.DATABASE_ENV, database.url)
    return database.url


async def _verify(app: Any, url: str, tests: tuple[str, ...] = TESTS) -> dict[str, str | None]:
    lifespan = Lifespan(app)
    await lifespan.start()
    assert lifespan.startup_error is None
    try:
        async with Verifier(url, server_headers=False) as verifier:
            return await verifier.check_all(fetcher(lifespan.app, lifespan.state), tests)
    finally:
        await lifespan.stop()


def test_the_database_is_techempowers(database_url: str) -> None:
    async def read() -> tuple[int, int, list[str]]:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetchval("SELECT count(*) FROM world")
            same = await connection.fetchval("SELECT count(*) FROM world WHERE randomnumber = id")
            messages = [r["message"] for r in await connection.fetch(
                "SELECT message FROM fortune ORDER BY id")]
        finally:
            await connection.close()
        return rows, same, messages

    rows, same, messages = asyncio.run(read())
    assert rows == 10_000 and same == 0  # no row where answering the id would pass
    assert len(messages) == 12 and messages[0] == "fortune: No such file or directory"
    assert "<script>" in messages[10] and messages[11] == "フレームワークのベンチマーク"


async def test_joey_and_the_raw_app_pass(database_url: str) -> None:
    for framework in ("joey", "raw"):
        assert await _verify(tfb_apps.load(framework).build_app(), database_url) == {
            test: None for test in TESTS}, framework


# --- apps that break one requirement each: the verifier names what is wrong ------------------


class IdAsRandomNumber(raw_app.RawApp):
    async def db(self, scope: Any, send: Any) -> None:
        id_ = raw_app.randint(1, tfb_apps.ROWS)
        async with self.pool.acquire() as connection:
            await connection.fetchval(tfb_apps.READ_ROW_SQL, id_)
        await raw_app._respond(send, raw_app._JSON, raw_app.encode(
            {"id": id_, "randomNumber": id_}))


class AlwaysTheSameRow(raw_app.RawApp):
    async def db(self, scope: Any, send: Any) -> None:
        async with self.pool.acquire() as connection:
            number = await connection.fetchval(tfb_apps.READ_ROW_SQL, 42)
        await raw_app._respond(send, raw_app._JSON, raw_app.encode(
            {"id": 42, "randomNumber": number}))


class CachedWorld(raw_app.RawApp):
    """Right numbers, read once at startup: no query per request."""

    async def db(self, scope: Any, send: Any) -> None:
        if not hasattr(self, "world"):
            async with self.pool.acquire() as connection:
                self.world = dict(await connection.fetch("SELECT id, randomnumber FROM world"))
                await connection.execute("SELECT pg_stat_statements_reset()")  # unseen
        id_ = raw_app.randint(1, tfb_apps.ROWS)
        await raw_app._respond(send, raw_app._JSON, raw_app.encode(
            {"id": id_, "randomNumber": self.world[id_]}))


class Unclamped(raw_app.RawApp):
    async def queries(self, scope: Any, send: Any) -> None:
        value = scope["query_string"].decode().partition("=")[2]
        count = int(value) if value.lstrip("-").isdigit() else 1  # no clamping to 1..500
        async with self.pool.acquire() as connection:
            rows = [{"id": i, "randomNumber": await connection.fetchval(
                tfb_apps.READ_ROW_SQL, i)} for i in range(1, count + 1)]
        await raw_app._respond(send, raw_app._JSON, raw_app.encode(rows))


class OneQueryForAllRows(raw_app.RawApp):
    async def queries(self, scope: Any, send: Any) -> None:
        ids = list(range(1, raw_app._queries(scope) + 1))
        async with self.pool.acquire() as connection:
            rows = await connection.fetch(
                'SELECT "id", "randomnumber" FROM "world" WHERE "id" = any($1::int[])', ids)
        await raw_app._respond(send, raw_app._JSON, raw_app.encode(
            [{"id": r[0], "randomNumber": r[1]} for r in rows]))


def _fortunes_app(*, escape: bool = True, sort: bool = True, add: bool = True,
                  charset: bool = True) -> type[raw_app.RawApp]:
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(tfb_apps.TEMPLATES), autoescape=escape,
    ).get_template(tfb_apps.FORTUNES_TEMPLATE)

    class Fortunes(raw_app.RawApp):
        async def fortunes(self, scope: Any, send: Any) -> None:
            async with self.pool.acquire() as connection:
                rows = await connection.fetch(tfb_apps.FORTUNES_SQL)
            if add:
                rows.append((0, tfb_apps.ADDITIONAL_FORTUNE))
            if sort:
                rows.sort(key=lambda row: row[1])
            await raw_app._respond(send, b"text/html" + b"; charset=utf-8" * charset,
                                   template.render(fortunes=rows).encode())

    return Fortunes


class NotPersisted(raw_app.RawApp):
    async def updates(self, scope: Any, send: Any) -> None:
        ids = list(range(1, raw_app._queries(scope) + 1))
        async with self.pool.acquire() as connection:
            for id_ in ids:
                await connection.fetchval(tfb_apps.READ_ROW_SQL, id_)
        await raw_app._respond(send, raw_app._JSON, raw_app.encode(
            [{"id": i, "randomNumber": 1 + i % 9} for i in ids]))


class JSONAsText(raw_app.RawApp):
    async def json(self, scope: Any, send: Any) -> None:
        await raw_app._respond(send, raw_app._TEXT, b'{"message":"Hello, World!"}')


class Crashes(raw_app.RawApp):
    async def fortunes(self, scope: Any, send: Any) -> None:
        raise RuntimeError("template not found")


class StringNumbers(raw_app.RawApp):
    async def queries(self, scope: Any, send: Any) -> None:
        await raw_app._respond(send, raw_app._JSON, b'[{"id": "1", "randomNumber": "2"}]')


BROKEN: dict[str, tuple[Callable[[], Any], str, str]] = {
    "randomNumber is the id": (IdAsRandomNumber, "db", r"that is the id: randomNumber is the"
                               r" row's randomnumber column"),
    "the same row every time": (AlwaysTheSameRow, "db", r"row 42 five times: the id must be"
                                r" random"),
    "no query per request": (CachedWorld, "db", r"/db answered without querying the world"
                             r" table"),
    "no clamping": (Unclamped, "queries", r"/queries\?queries=0 answered 0 rows, not 1"),
    "one query for all rows": (OneQueryForAllRows, "queries", r"rows from 1 queries: each row"
                               r" must be read by its own query"),
    "not escaped": (_fortunes_app(escape=False), "fortunes", r"differs .* \('start', 'script'\)"),
    "not sorted": (_fortunes_app(sort=False), "fortunes", r"the page differs"),
    "no added fortune": (_fortunes_app(add=False), "fortunes", r"the page differs"),
    "no charset": (_fortunes_app(charset=False), "fortunes", r"does not say charset=utf-8"),
    "updates not written": (NotPersisted, "updates", r"\d+ rows answered, 0 updated"),
    "JSON as text/plain": (JSONAsText, "json", r"Content-Type 'text/plain', not"
                           r" application/json"),
    "numbers as strings": (StringNumbers, "queries", r"id '1' is not an integer"),
    "a crash": (Crashes, "fortunes", r"/fortunes: the app failed: RuntimeError: template not"
                r" found"),
}


@pytest.mark.parametrize("bug", list(BROKEN))
async def test_the_verifier_names_what_an_app_gets_wrong(bug: str, database_url: str) -> None:
    make, test, problem = BROKEN[bug]
    found = await _verify(make(), database_url, (test,))
    assert found[test] is not None, f"{bug}: not caught"
    assert re.search(problem, found[test]), found[test]


async def test_the_verifier_wants_server_and_date_over_http(database_url: str) -> None:
    async def bare(target: str) -> Answer:  # an answer without the headers a server adds
        return Answer(200, {"content-type": "application/json", "content-length": "27"},
                      b'{"message":"Hello, World!"}')

    async with Verifier(database_url, server_headers=True) as verifier:
        assert await verifier.check("json", bare) == "/json: no Server header"
    async with Verifier(database_url, server_headers=False) as verifier:
        assert await verifier.check("json", bare) is None


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_joey_passes_under_uvicorn(http: str, database_url: str, tmp_path: Path) -> None:
    argv = uvicorn_argv("tfb_apps.joey_app:build_app", "--factory", "--app-dir",
                        str(BENCHMARKS), "--http", http)
    with run_server(argv, tmp_path, ready_path="/plaintext") as server:
        def fetch_sync(target: str) -> Answer:
            response = httpx.get(server.base_url + target, timeout=30)
            return Answer(response.status_code, {k.lower(): v for k, v in
                                                 response.headers.items()}, response.content)

        async def check() -> dict[str, str | None]:
            async def fetch(target: str) -> Answer:
                return await asyncio.to_thread(fetch_sync, target)

            async with Verifier(database_url, server_headers=True) as verifier:
                return await verifier.check_all(fetch)

        assert asyncio.run(check()) == {test: None for test in TESTS}, server.output


def test_the_smoke_run_verifies_joeys_six_tests(database: tfb_postgres.Database) -> None:
    # Its own database, as `tfb.py --smoke` starts one (and stops it: no postgres is left).
    done = subprocess.run([sys.executable, "benchmarks/tfb.py", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for test in TESTS:
        assert f"tfb smoke: {test}: verified" in done.stdout
    assert "- none" in done.stdout  # no problems


def test_the_in_process_run_interleaves_every_frameworks_repeats(
        database_url: str, tmp_path: Path) -> None:
    # every framework's worker up at once, verified one after the other, then timed one
    # repeat at a time (the world table vacuumed before each repeat of updates)
    import os

    import tfb

    args = tfb.parse(["--frameworks", "raw,joey", "--tests", "db,updates", "--rounds", "1",
                      "--repeats", "2", "--target-ms", "10"])
    env = {**os.environ, tfb_apps.DATABASE_ENV: database_url}
    results = tfb.run_inprocess(args, env, tmp_path)
    for framework in ("raw", "joey"):
        for test in ("db", "updates"):
            result = results[framework][test]
            assert result["status"] == "ok", result
            assert result["best_us"] > 0 and result["median_us"] >= result["best_us"] * 0.5


# --- the framework's own share: every app on the stand-in pool --------------------------------


@pytest.mark.parametrize("framework", ["joey", "raw"])
async def test_the_stand_in_pool_serves_every_database_test(
        framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # No database at all: the same calls, answered at once, rows of the right shape.
    monkeypatch.delenv(tfb_apps.DATABASE_ENV, raising=False)
    monkeypatch.setenv(tfb_apps.STAND_IN_ENV, "1")
    lifespan = Lifespan(tfb_apps.load(framework).build_app())
    await lifespan.start()
    assert lifespan.startup_error is None
    try:
        fetch = fetcher(lifespan.app, lifespan.state)
        one = await fetch("/db")
        assert one.status == 200 and set(json_of(one)) == {"id", "randomNumber"}
        for test in ("queries", "updates"):
            many = await fetch(f"/{test}?queries=20")
            assert many.status == 200, many
            rows = json_of(many)
            assert len(rows) == 20 and all(isinstance(r["randomNumber"], int) for r in rows)
        page = await fetch("/fortunes")
        assert page.status == 200 and page.body.count(b"<tr>") == 14  # heading, 12 + 1 rows
        assert b"&lt;script&gt;" in page.body and b"<script>" not in page.body
    finally:
        await lifespan.stop()


def json_of(answer: Answer) -> Any:
    import json

    return json.loads(answer.body)


def test_the_stand_in_run_times_the_database_tests_without_a_database(
        tmp_path: Path) -> None:
    import os

    import tfb

    args = tfb.parse(["--frameworks", "raw,joey", "--tests", "json,db,fortunes", "--rounds",
                      "1", "--repeats", "2", "--target-ms", "10"])
    env = {k: v for k, v in os.environ.items() if k != tfb_apps.DATABASE_ENV}
    results = tfb.run_inprocess(args, env, tmp_path, stand_in=True)
    for framework in ("raw", "joey"):
        assert set(results[framework]) == {"db", "fortunes"}  # JSON needs no pool
        for test in ("db", "fortunes"):
            result = results[framework][test]
            assert result["status"] == "ok", result
            assert result["best_us"] > 0 and len(result["repeats_us"]) == 2


def _ok(us: float, *repeats: float) -> dict[str, Any]:
    return {"status": "ok", "best_us": us, "repeats_us": list(repeats or [us])}


def test_the_targets_judge_database_cpu_on_the_framework_s_own_share() -> None:
    import tfb

    results = {
        # on the database, Joey's best is 6% above BlackSheep's: one repeat of each below
        # the other's, the noise of this machine
        "inprocess": {"raw": {"db": _ok(100)}, "joey": {"db": _ok(123, 123, 131)},
                      "blacksheep": {"db": _ok(116, 140, 116)},
                      "starlette": {"db": _ok(130)}},
        "stand_in": {"raw": {"db": _ok(5.4)}, "joey": {"db": _ok(9.9)},
                     "blacksheep": {"db": _ok(10.2)}, "starlette": {"db": _ok(12.0)}},
        "e2e": {},
    }
    lines = tfb.targets(results)
    single = next(line for line in lines if "CPU per request, single query" in line)
    assert single.startswith("- [met]"), single
    assert "stand-in pool: 9.9 µs vs 10.2 µs blacksheep" in single
    assert "on the database: 123.0 µs vs 116.0 µs blacksheep; round by round 0.88x to 1.13x" \
        in single
    # and where the framework itself costs more, it is a miss, whatever the database says
    results["stand_in"]["joey"]["db"] = _ok(10.5)
    results["inprocess"]["joey"]["db"] = _ok(110)
    single = next(line for line in tfb.targets(results) if "single query" in line)
    assert single.startswith("- [missed]"), single
    assert "10.5 µs vs 10.2 µs blacksheep" in single


def test_a_10_percent_lead_is_asked_where_the_server_leaves_the_framework_room() -> None:
    import tfb

    def e2e(rps: list[float], cpu: float) -> dict[str, Any]:
        return {"status": "ok", "rps": max(rps), "rounds_rps": rps, "cpu_us": cpu}

    # in-process, the framework is 70% of JSON's cost; end to end, the server's own cost
    # leaves it 7% of what the cheapest peer's server spends per request
    results = {
        "inprocess": {"raw": {"json": _ok(1.5)}, "joey": {"json": _ok(4.3)},
                      "blacksheep": {"json": _ok(4.9)}},
        "e2e": {"uvicorn": {"raw": {"json": e2e([16_000, 15_000], 65.0)},
                            "joey": {"json": e2e([14_500, 15_200], 69.0)},
                            "blacksheep": {"json": e2e([15_000, 14_000], 70.0)}}},
    }
    line = next(line for line in tfb.targets(results) if line.endswith(")") and "uvicorn,"
                in line and "JSON" in line)
    assert "framework share of the server's CPU per request 7%: too small for a 10% lead" \
        in line
    assert line.startswith("- [met]") and "(1.01x blacksheep)" in line
    # behind: the rounds say by how much, each against the same minutes of the peer
    results["e2e"]["uvicorn"]["joey"]["json"] = e2e([14_000, 14_800], 69.0)
    line = next(line for line in tfb.targets(results) if "uvicorn, JSON" in line)
    assert line.startswith("- [missed]")
    assert "(0.99x blacksheep; round by round 0.93x to 1.06x)" in line
