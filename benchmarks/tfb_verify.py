"""The TechEmpower verifier: checks an app's answers to the six tests against the
requirements before anything is timed, by asking it (over HTTP or in-process, through a
``fetch(path)`` callable) and reading the database behind it.

What is checked, test by test (every answer: status 200 and the test's ``Content-Type``;
over a real server also ``Server``, ``Date`` and a ``Content-Length`` or chunked body):

- json: ``{"message": "Hello, World!"}`` and nothing else;
- plaintext: ``Hello, World!``;
- db: one ``{"id", "randomNumber"}`` object whose ``randomNumber`` is that row's column in
  ``world`` (never its id: the bench's table has no row where the two are equal), from at
  least one query on ``world``; several answers must not all name the same row;
- queries: a JSON array of that many such objects, for ``queries`` missing, empty, not a
  number, 0, -1 (1 row), 1, 20 and 501 (500 rows), each row read by its own query;
- fortunes: the page, parsed, equals the expected one: every fortune in the table plus the
  one added at request time, sorted by message, escaped (a ``<script>`` in a message is
  text, not a tag), in UTF-8;
- updates: like queries, and the answered numbers are the rows' new values in the database,
  every row read by its own query and every row written.

Queries are counted with ``pg_stat_statements``: statements on ``world`` that read and
rows that they updated, reset before each request (so the verifier checks one app at a
time). Returns one problem (a sentence) per failing test; none for a right app.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from typing import Any

ROWS = 10_000
MAX_QUERIES = 500
ADDITIONAL_FORTUNE = "Additional fortune added at request time."
TESTS = ("json", "plaintext", "db", "queries", "fortunes", "updates")
# What each test type asks when it is timed (the verifier asks more).
TARGETS = {
    "json": "/json",
    "plaintext": "/plaintext",
    "db": "/db",
    "queries": "/queries?queries=20",
    "fortunes": "/fortunes",
    "updates": "/updates?queries=20",
}
# TechEmpower's query-count rule: what is asked, and how many rows must come back.
COUNT_CASES = (("", 1), ("?queries=", 1), ("?queries=foo", 1), ("?queries=0", 1),
               ("?queries=-1", 1), ("?queries=1", 1), ("?queries=20", 20),
               ("?queries=501", 500))
MEDIA_TYPES = {"json": "application/json", "plaintext": "text/plain",
               "db": "application/json", "queries": "application/json",
               "fortunes": "text/html", "updates": "application/json"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the first value of each
    body: bytes


Fetch = Callable[[str], Awaitable[Answer]]


class Wrong(Exception):
    """One problem with an answer, said as a sentence."""


class Verifier:
    """``async with Verifier(database_url) as verifier: await verifier.check(test, fetch)``.

    ``server_headers``: whether ``Server`` and ``Date`` must be there (a real server adds
    them; an app called in-process does not).
    """

    def __init__(self, database_url: str, server_headers: bool = True) -> None:
        self.database_url = database_url
        self.server_headers = server_headers
        self._connection: Any = None

    async def __aenter__(self) -> Verifier:
        import asyncpg

        self._connection = await asyncpg.connect(self.database_url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._connection.close()

    async def check_all(self, fetch: Fetch, tests: tuple[str, ...] = TESTS
                        ) -> dict[str, str | None]:
        return {test: await self.check(test, fetch) for test in tests}

    async def check(self, test: str, fetch: Fetch) -> str | None:
        """Why the app's answers to ``test`` are wrong, or None when they are right."""
        try:
            await getattr(self, f"_{test}")(fetch)
        except Wrong as problem:
            return str(problem)
        except Exception as exc:  # the app broke the connection, answered garbage...
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    # --- the tests -----------------------------------------------------------------------

    async def _json(self, fetch: Fetch) -> None:
        body = self._parse(await self._ask(fetch, "/json", "json"), "/json")
        if body != {"message": "Hello, World!"}:
            raise Wrong(f'/json answered {body!r}, not {{"message": "Hello, World!"}}')

    async def _plaintext(self, fetch: Fetch) -> None:
        answer = await self._ask(fetch, "/plaintext", "plaintext")
        if answer.body != b"Hello, World!":
            raise Wrong(f"/plaintext answered {answer.body[:80]!r}, not b'Hello, World!'")

    async def _db(self, fetch: Fetch) -> None:
        ids = set()
        for _ in range(5):
            await self._reset()
            body = self._parse(await self._ask(fetch, "/db", "db"), "/db")
            if not isinstance(body, dict):
                raise Wrong(f"/db answered {type(body).__name__}, not one JSON object")
            self._shape(body, "/db")
            reads, _ = await self._counts()  # before the verifier's own queries
            if reads < 1:
                raise Wrong("/db answered without querying the world table")
            ids.add((await self._world(body, "/db"))[0])
        if len(ids) == 1:
            raise Wrong(f"/db answered row {ids.pop()} five times: the id must be random")

    async def _queries(self, fetch: Fetch) -> None:
        for query, expected in COUNT_CASES:
            path = f"/queries{query}"
            await self._reset()
            rows = await self._rows(fetch, path, "queries", expected)
            for row in rows:
                self._shape(row, path)
            reads, _ = await self._counts()
            if reads < expected:
                raise Wrong(f"{path}: {expected} rows from {reads} queries: each row must be"
                            " read by its own query")
            for row in rows:
                await self._world(row, path)

    async def _updates(self, fetch: Fetch) -> None:
        for query, expected in COUNT_CASES:
            path = f"/updates{query}"
            await self._reset()
            rows = await self._rows(fetch, path, "updates", expected)
            for row in rows:
                self._shape(row, path)
            reads, written = await self._counts()
            if reads < expected:
                raise Wrong(f"{path}: {expected} rows from {reads} queries: each row must be"
                            " read by its own query before it is updated")
            if written < expected:
                raise Wrong(f"{path}: {expected} rows answered, {written} updated")
            latest = {}
            for row in rows:
                id_, number = self._shape(row, path)
                latest[id_] = number  # a row answered twice: its last value was written
            stored = dict(await self._connection.fetch(
                "SELECT id, randomnumber FROM world WHERE id = any($1::int[])", list(latest)))
            for id_, number in latest.items():
                if stored.get(id_) != number:
                    raise Wrong(f"{path} answered row {id_} with randomNumber {number}, but the"
                                f" database holds {stored.get(id_)}: the update was not"
                                " persisted")

    async def _fortunes(self, fetch: Fetch) -> None:
        answer = await self._ask(fetch, "/fortunes", "fortunes")
        content_type = answer.headers.get("content-type", "").lower().replace(" ", "")
        if "charset=utf-8" not in content_type:
            raise Wrong(f"/fortunes: Content-Type {answer.headers.get('content-type')!r} does"
                        " not say charset=utf-8")
        try:
            page = answer.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Wrong(f"/fortunes: the page is not UTF-8 ({exc})") from None
        rows = [tuple(row) for row in await self._connection.fetch(
            "SELECT id, message FROM fortune")]
        rows.append((0, ADDITIONAL_FORTUNE))
        rows.sort(key=lambda row: row[1])
        expected = _fortunes_page(rows)
        got, want = _html_events(page), _html_events(expected)
        if got != want:
            at = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                      min(len(got), len(want)))
            raise Wrong(f"/fortunes: the page differs from the expected one at element {at}:"
                        f" {got[at] if at < len(got) else 'end of page'!r}, expected"
                        f" {want[at] if at < len(want) else 'end of page'!r}")

    # --- helpers -------------------------------------------------------------------------

    async def _ask(self, fetch: Fetch, path: str, test: str) -> Answer:
        try:
            answer = await fetch(path)
        except Exception as exc:  # in-process, what a server would answer with a 500
            raise Wrong(f"{path}: the app failed: {type(exc).__name__}: {exc}"[:300]) from exc
        if answer.status != 200:
            raise Wrong(f"{path} answered {answer.status}: {answer.body[:120]!r}")
        media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != MEDIA_TYPES[test]:
            raise Wrong(f"{path}: Content-Type {answer.headers.get('content-type')!r}, not"
                        f" {MEDIA_TYPES[test]}")
        if self.server_headers:
            for name in ("server", "date"):
                if name not in answer.headers:
                    raise Wrong(f"{path}: no {name.title()} header")
            chunked = answer.headers.get("transfer-encoding", "").lower() == "chunked"
            if "content-length" not in answer.headers and not chunked:
                raise Wrong(f"{path}: neither Content-Length nor chunked encoding")
        return answer

    def _parse(self, answer: Answer, path: str) -> Any:
        try:
            return json.loads(answer.body)
        except ValueError:
            raise Wrong(f"{path}: not JSON: {answer.body[:80]!r}") from None

    async def _rows(self, fetch: Fetch, path: str, test: str, expected: int) -> list[Any]:
        body = self._parse(await self._ask(fetch, path, test), path)
        if not isinstance(body, list):
            raise Wrong(f"{path} answered {type(body).__name__}, not a JSON array")
        if len(body) != expected:
            raise Wrong(f"{path} answered {len(body)} rows, not {expected}")
        return body

    def _shape(self, row: Any, path: str) -> tuple[int, int]:
        if not isinstance(row, dict) or set(row) != {"id", "randomNumber"}:
            raise Wrong(f'{path}: {row!r} is not {{"id": .., "randomNumber": ..}}')
        id_, number = row["id"], row["randomNumber"]
        for name, value in (("id", id_), ("randomNumber", number)):
            if type(value) is not int or not 1 <= value <= ROWS:
                raise Wrong(f"{path}: {name} {value!r} is not an integer from 1 to {ROWS:,}")
        return id_, number

    async def _world(self, row: Any, path: str) -> tuple[int, int]:
        id_, number = self._shape(row, path)
        stored = await self._connection.fetchval(
            "SELECT randomnumber FROM world WHERE id = $1", id_)
        if number != stored:
            why = (" (that is the id: randomNumber is the row's randomnumber column)"
                   if number == id_ else "")
            raise Wrong(f"{path} answered row {id_} with randomNumber {number}, but the"
                        f" database holds {stored}{why}")
        return id_, number

    async def _reset(self) -> None:
        await self._connection.execute("SELECT pg_stat_statements_reset()")

    async def _counts(self) -> tuple[int, int]:
        """Statements run on ``world`` since the reset: reads (calls), rows updated."""
        reads = written = 0
        for query, calls, rows in await self._connection.fetch(
            "SELECT query, calls, rows FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ):
            text = query.lower()
            if "world" not in text or "pg_stat_statements" in text:
                continue
            if text.lstrip().startswith("select"):
                reads += calls
            elif text.lstrip().startswith("update"):
                written += rows
        return reads, written


def _fortunes_page(rows: list[tuple[int, str]]) -> str:
    cells = "".join(f"<tr><td>{id_}</td><td>{escape(message)}</td></tr>"
                    for id_, message in rows)
    return ("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
            f"<tr><th>id</th><th>message</th></tr>{cells}</table></body></html>")


class _Events(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, str]] = []

    def handle_decl(self, decl: str) -> None:
        self.events.append(("decl", decl.lower()))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.events.append(("text", data.strip()))


def _html_events(page: str) -> list[tuple[str, str]]:
    """The page as a list of tags and texts (entities decoded, whitespace between tags
    ignored): two pages that differ only in formatting or in how they escape are equal."""
    parser = _Events()
    parser.feed(page)
    parser.close()
    return parser.events
