"""The soak's load and its measurements: one *round* sends a fixed number of requests to every
built-in of tests/soak/app.py, then the server process is sampled (its memory, its file
descriptors, its asyncio tasks). Bounded by counts, never by a rate: a slow machine takes
longer and sends the same requests."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from websockets.asyncio.client import connect

PLAIN = 30  # GET /plain per round (10 of them on a connection of their own)
JSON = 10
USERS = 5  # sessions: each logs in and reads its session back
UPLOADS = 5
UPLOAD_SIZE = 64 * 1024
TASKS = 10
ROOMS = 3  # each: a WebSocket and an SSE stream subscribed, two messages through both
LIMIT_HITS = 7  # the rate limit allows 5 per minute for each key: 5 pass, 2 are refused


@dataclass(frozen=True)
class Sample:
    rss_kib: int
    fds: int
    tasks: int

    def minus(self, other: Sample) -> Sample:
        return Sample(self.rss_kib - other.rss_kib, self.fds - other.fds,
                      self.tasks - other.tasks)


#: a line at INFO, as uvicorn, Granian and `joey worker` print them
_INFO = re.compile(r"INFO:|\[INFO\]|\S+ \S+ INFO ")


def complaints(log: str) -> list[str]:
    """Every line of a server's or worker's output that is not at INFO: warnings, errors,
    tracebacks, and what Joey's loggers print through Python's last-resort handler when the
    server configured none (a bare message: WARNING and above). Not Joey's, so left out:
    python-multipart's own warnings about the hostile forms the load sends
    (:data:`MULTIPART_WARNING`)."""
    return [line for line in log.splitlines() if line.strip() and not _INFO.match(line)
            and not MULTIPART_WARNING.fullmatch(line)]


#: what python-multipart before 0.0.26 (the lowest-py311 cell) logs at WARNING about a
#: malformed or unusual form, besides raising (Joey answers that form with a 400 of its own)
MULTIPART_WARNING = re.compile(
    r"Skipping data after last boundary|Did not find (CR|LF) at end of boundary \(\d+\)"
    r"|Expected boundary character .* at index \d+|Found 0-length header at \d+"
    r"|Found invalid character .* in header at \d+|Did not find LF (character )?at end of "
    r"header.*|Look-back buffer error|Unknown Content-(Type|Transfer-Encoding): .*")


async def wait_until(check: Callable[[], Awaitable[bool]], what: str,
                     within: float = 20.0) -> None:
    """Poll ``check()`` until true; fail after ``within`` seconds (a bound for a stuck
    server, far above what a loaded machine needs)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def sample(client: httpx.AsyncClient) -> Sample:
    """The server process's resident memory, open file descriptors and asyncio tasks, each
    the least of three reads (a request in flight, a socket closing: momentary, not held)."""
    reads = []
    for _ in range(3):
        stats = (await client.get("/_stats")).json()
        reads.append(Sample(*_from_proc(stats["pid"]), stats["tasks"]))
        await asyncio.sleep(0.05)
    return Sample(min(r.rss_kib for r in reads), min(r.fds for r in reads),
                  min(r.tasks for r in reads))


def _from_proc(pid: int) -> tuple[int, int]:
    """Resident memory (KiB) and open file descriptors of process ``pid``."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def one_round(base_url: str, number: int) -> None:
    """Every built-in, a fixed number of times; each answer checked."""
    ws_url = base_url.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        plain = [client.get("/plain") for _ in range(PLAIN - 10)]
        plain += [client.get("/plain", headers={"connection": "close"}) for _ in range(10)]
        for response in await asyncio.gather(*plain):
            assert response.text == "ok", response.text
        for i in range(JSON):
            item = {"name": f"item {number}.{i}", "tags": ["a", "b"]}
            assert (await client.post("/json", json=item)).json() == item
        assert (await client.post("/json", json={"tags": 1})).status_code == 422

        for i in range(USERS):  # a new session each: a client of its own, its own cookie
            async with httpx.AsyncClient(base_url=base_url, timeout=20) as user:
                name = f"user{number}-{i}"
                assert (await user.post(f"/login?name={name}")).status_code == 200
                assert (await user.get("/me")).json() == {"user": name}

        codes = [(await client.get(f"/limited?who=r{number}")).status_code
                 for _ in range(LIMIT_HITS)]
        assert codes == [200] * 5 + [429] * 2, codes

        for _ in range(UPLOADS):
            sent = await client.post("/upload", files={"file": ("f.bin", b"u" * UPLOAD_SIZE)})
            assert sent.json() == {"size": UPLOAD_SIZE}, sent.text

        ids = [(await client.post(f"/tasks?n={i}")).text for i in range(TASKS)]

        async def all_done() -> bool:
            states = [(await client.get(f"/tasks/{task_id}")).json()["state"]
                      for task_id in ids]
            assert "failed" not in states and "dead" not in states, states
            return all(state == "succeeded" for state in states)

        await wait_until(all_done, "the round's tasks to succeed")

        for room_number in range(ROOMS):
            await _through_a_room(client, ws_url, f"room-{number}-{room_number}")


async def _through_a_room(client: httpx.AsyncClient, ws_url: str, room: str) -> None:
    """A WebSocket and an SSE stream subscribe to ``room``; a message published over HTTP and
    one sent by the socket reach both; both leave, and the room is empty again."""

    async def subscribed(count: int) -> bool:
        return bool((await client.get(f"/rooms/{room}/subscribers")).json() == count)

    async with connect(f"{ws_url}/rooms/{room}/ws", open_timeout=20) as ws, \
            client.stream("GET", f"/rooms/{room}/events") as stream:
        assert stream.status_code == 200
        await wait_until(lambda: subscribed(2), f"two subscribers in {room}")
        lines = stream.aiter_lines()

        async def next_data() -> str:
            async for line in lines:
                if line.startswith("data: "):
                    return line.removeprefix("data: ")
            raise AssertionError("the event stream ended")

        published = (await client.post(f"/rooms/{room}?text=from-http")).json()
        assert published == {"published": "from-http"}
        assert await asyncio.wait_for(ws.recv(), 20) == "from-http"
        assert await asyncio.wait_for(next_data(), 20) == "from-http"
        await ws.send("from-socket")
        assert await asyncio.wait_for(ws.recv(), 20) == "from-socket"
        assert await asyncio.wait_for(next_data(), 20) == "from-socket"
    await wait_until(lambda: subscribed(0), f"{room} to be empty again")

