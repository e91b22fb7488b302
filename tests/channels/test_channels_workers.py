"""The proofs of issue #16 over real servers: `uvicorn examples.app:app --workers 2` with
`REDIS_URL` pointing at a real redis-server on loopback (h11 and httptools), SSE resume on
another process, and a Redis restart under live traffic."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.servers import Server, run_server, uvicorn_argv
from tests.redis_server import RedisServer

HTTP = pytest.mark.parametrize("http", ["h11", "httptools"])


def example(redis_url: str, tmp_path: Path, *extra: str) -> Iterator[Server]:
    return run_server(uvicorn_argv("examples.app:app", "--log-level", "warning", *extra),
                      tmp_path, env={"REDIS_URL": redis_url}, ready_path="/stats")


async def receive(ws: ClientConnection, count: int, within: float) -> list[str]:
    deadline = time.monotonic() + within
    return [str(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
            for _ in range(count)]


def workers_serving(server: Server, sockets: int) -> dict[int, int]:
    """pid -> open WebSockets, once both workers report and the total is ``sockets``."""
    seen: dict[int, int] = {}
    for _ in range(300):  # bounded: each request lands on one of the workers
        with httpx.Client(timeout=5) as client:  # a new connection: maybe the other worker
            stats = client.get(server.base_url + "/stats").json()
        seen[stats["pid"]] = stats["open_websockets"]
        if len(seen) == 2 and sum(seen.values()) == sockets:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"the workers never reported {sockets} sockets together: {seen}")


@HTTP
async def test_forty_clients_over_two_workers_all_messages_same_order(
    http: str, redis_server: RedisServer, tmp_path: Path,
) -> None:
    rooms, per_room, says = 4, 10, 5
    with example(redis_server.url, tmp_path, "--workers", "2", "--http", http) as server:
        clients: dict[str, list[ClientConnection]] = {}
        try:
            for _attempt in range(10):  # bounded: the kernel decides which worker accepts
                for r in range(rooms):
                    room = f"proof-{http}-{r}"
                    clients[room] = []
                    for _ in range(per_room):
                        clients[room].append(await connect(f"{server.ws_url}/ws/chat/{room}"))
                        await asyncio.sleep(0.005)
                spread = await asyncio.to_thread(workers_serving, server, rooms * per_room)
                if all(count > 0 for count in spread.values()):
                    break
                await asyncio.gather(*(ws.close() for members in clients.values()
                                       for ws in members))
                await asyncio.to_thread(workers_serving, server, 0)
            assert all(count > 0 for count in spread.values())  # both workers hold members

            async def talk(room: str, index: int, ws: ClientConnection) -> None:
                for n in range(says):
                    await ws.send(f"{room}/{index}/{n}")
                    await asyncio.sleep(0.005)

            await asyncio.gather(*(talk(room, i, ws) for room, members in clients.items()
                                   for i, ws in enumerate(members)))
            total = per_room * says
            for room, members in clients.items():
                seen = await asyncio.gather(*(receive(ws, total, 30) for ws in members))
                expected = {f"{room}/{i}/{n}" for i in range(per_room) for n in range(says)}
                for got in seen:
                    assert len(got) == len(set(got)) == total  # every message, none twice
                    assert set(got) == expected
                    assert got == seen[0]  # one and the same order for every member
                    for i in range(per_room):  # each sender's messages in the order sent
                        own = [m for m in got if m.startswith(f"{room}/{i}/")]
                        assert own == [f"{room}/{i}/{n}" for n in range(says)]
        finally:
            await asyncio.gather(*(ws.close() for members in clients.values()
                                   for ws in members))


def sse_events(response: httpx.Response, count: int) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                events.append(fields)
                if len(events) == count:
                    return events
            fields = {}
        elif ": " in line:
            key, value = line.split(": ", 1)
            fields[key] = value
    raise AssertionError(f"the stream ended after {len(events)} events")


@HTTP
def test_sse_resumes_on_another_process_without_duplicates(
    http: str, redis_server: RedisServer, tmp_path: Path,
) -> None:
    room = f"sse-{http}"
    with example(redis_server.url, tmp_path, "--http", http) as a, \
            example(redis_server.url, tmp_path, "--http", http) as b:
        assert a.process.pid != b.process.pid

        def say(server: Server, text: str) -> None:
            reply = httpx.post(f"{server.base_url}/chat/{room}/messages", content=text,
                               timeout=5)
            assert reply.status_code == 202

        with httpx.stream("GET", f"{a.base_url}/chat/{room}/events", timeout=10) as response:
            assert response.status_code == 200
            for i in range(3):
                say(b, f"m{i}")
            first = sse_events(response, 2)  # read some, then disconnect
        assert [e["data"] for e in first] == ["m0", "m1"]
        for i in range(3, 6):
            say(a, f"m{i}")
        headers = {"Last-Event-ID": first[-1]["id"]}
        with httpx.stream("GET", f"{b.base_url}/chat/{room}/events", headers=headers,
                          timeout=10) as response:
            say(a, "live")
            resumed = sse_events(response, 5)
        assert [e["data"] for e in resumed] == ["m2", "m3", "m4", "m5", "live"]
        ids = [e["id"] for e in first + resumed]
        assert len(ids) == len(set(ids))
        assert all(e["event"] == "message" for e in resumed)


def stalled_member(server: Server, path: str) -> socket.socket:
    """A WebSocket client on a raw socket with a tiny receive buffer that, once the handshake
    is done, reads nothing more: what the server sends piles up on its side."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing after the handshake is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def close_frame(sock: socket.socket, within: float) -> tuple[int, str, int]:
    """Read frames until the close frame: (code, reason, text frames before it)."""
    buffer, texts = b"", 0
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        while len(buffer) >= 2:
            opcode, length, at = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                length, at = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                length, at = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < at + length:
                break
            payload, buffer = buffer[at:at + length], buffer[at + length:]
            if opcode == 8:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode(), texts
            texts += 1
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    raise AssertionError(f"no close frame after {texts} messages")


async def test_a_member_that_stops_reading_is_dropped_the_others_keep_receiving(
    redis_server: RedisServer, tmp_path: Path,
) -> None:
    room = "slow-member"
    # No server ping within the test: a stalled member answers none, and on a loaded machine
    # the server's keepalive timeout (1011) could drop it before Joey's slow-subscriber policy
    # (1008) does.
    with example(redis_server.url, tmp_path, "--workers", "2",
                 "--ws-ping-interval", "600") as server:
        url = f"{server.ws_url}/ws/chat/{room}"
        slow = stalled_member(server, f"/ws/chat/{room}")
        members = [await connect(url) for _ in range(3)]
        try:
            await asyncio.to_thread(workers_serving, server, 4)
            texts = [f"{i:05d} " + "x" * 990 for i in range(10_000)]  # 10 MB: past the buffers

            async def speak() -> None:
                for text in texts:
                    await members[0].send(text)

            speaking = asyncio.ensure_future(speak())
            got = await asyncio.gather(*(receive(ws, len(texts), 60) for ws in members))
            await speaking
            assert all(g == texts for g in got)  # the room never stalled, nothing lost
            code, reason, before = await asyncio.to_thread(close_frame, slow, 30)
            assert (code, reason) == (1008, "Too slow: more than 1000 messages behind")
            assert before < len(texts)  # dropped, not waited for
        finally:
            slow.close()
            await asyncio.gather(*(ws.close() for ws in members), return_exceptions=True)


async def test_redis_restart_mid_traffic_loses_nothing_with_streams(
    own_redis: RedisServer, tmp_path: Path,
) -> None:
    room = "restart"
    with example(own_redis.url, tmp_path, "--workers", "2") as server:
        listeners = [await connect(f"{server.ws_url}/ws/chat/{room}") for _ in range(6)]
        try:
            await asyncio.to_thread(workers_serving, server, 6)
            count, refused = 200, 0
            async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
                restarting: asyncio.Future[None] | None = None
                for i in range(count):
                    if i == 60:
                        restarting = asyncio.ensure_future(
                            asyncio.to_thread(own_redis.restart, 0.5))
                    for _ in range(400):  # bounded: retry while Redis is away
                        reply = await client.post(f"/chat/{room}/messages", content=str(i))
                        if reply.status_code == 202:
                            break
                        assert reply.status_code == 503 and "retry-after" in reply.headers
                        refused += 1
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.01)
                assert restarting is not None
                await restarting
            assert refused > 0  # the outage was real
            for ws in listeners:
                got = await receive(ws, count, 30)
                deduplicated = [t for j, t in enumerate(got) if j == 0 or got[j - 1] != t]
                # a publish refused as Redis went down may have been written all the same,
                # so its retry can repeat it, right after itself; nothing is ever lost
                while len(deduplicated) < count:
                    more = await receive(ws, 1, 10)
                    got += more
                    if more[0] != deduplicated[-1]:
                        deduplicated += more
                assert deduplicated == [str(i) for i in range(count)]
        finally:
            await asyncio.gather(*(ws.close() for ws in listeners), return_exceptions=True)
