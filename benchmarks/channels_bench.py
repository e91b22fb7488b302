"""Channels fan-out: Joey's Channels, Litestar Channels and broadcaster, on Redis pub/sub.

    benchmarks/.venv/bin/python benchmarks/channels_bench.py [--subscribers 1000] [--messages 1000]

One local redis-server (loopback, no persistence). Per library and round: one publisher (this
process) and `--subscribers` subscribers to one channel, spread over 2 forked processes, each
subscriber an asyncio task iterating its subscription (the library's documented way), every
library on its Redis pub/sub backend (one connection per process for all subscriptions).

- latency: `--latency-messages` messages, one at a time, each published once every subscriber
  got the previous one (+2 ms); publish→receive per delivery, monotonic clock across processes;
- throughput: `--messages` messages published back to back (each `publish` awaited), until every
  subscriber received every one; messages/s = messages ÷ that time (each message delivered to
  every subscriber); queues are sized so nothing is dropped (Joey `max_queue`, Litestar
  `subscriber_max_backlog` unset; broadcaster's are unbounded);
- memory: `--idle` idle subscribers in one fresh process: RSS growth ÷ subscribers.

Deliveries are counted in shared memory (no traffic of their own); rounds rotate the order.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from multiprocessing.sharedctypes import RawArray
from typing import Any

from tasks_bench import local_redis

LIBRARIES = ("joey", "litestar", "broadcaster")
CHANNEL = "bench"
PROCESSES = 2


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the libraries ----------------------------------------------------------------------------
# Each yields (publish, subscribe): publish(text) awaits the publish; subscribe() is an async
# context manager giving an async iterator of message texts.

Publish = Callable[[str], Awaitable[Any]]
Subscribe = Callable[[], contextlib.AbstractAsyncContextManager[AsyncIterator[str]]]


@contextlib.asynccontextmanager
async def _joey(url: str, queue: int) -> AsyncIterator[tuple[Publish, Subscribe]]:
    from joey.channels import Channels, RedisPubSubBackend

    channels = Channels(RedisPubSubBackend(url), max_queue=queue)

    @contextlib.asynccontextmanager
    async def subscribe() -> AsyncIterator[AsyncIterator[str]]:
        async with channels.subscribe(CHANNEL) as subscription:

            async def texts() -> AsyncIterator[str]:
                async for message in subscription:
                    yield message.data.decode()

            yield texts()

    async with channels:
        yield (lambda text: channels.publish(CHANNEL, text)), subscribe


@contextlib.asynccontextmanager
async def _litestar(url: str, queue: int) -> AsyncIterator[tuple[Publish, Subscribe]]:
    from litestar.channels import ChannelsPlugin
    from litestar.channels.backends.redis import RedisChannelsPubSubBackend
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    plugin = ChannelsPlugin(backend=RedisChannelsPubSubBackend(redis=redis), channels=[CHANNEL])

    @contextlib.asynccontextmanager
    async def subscribe() -> AsyncIterator[AsyncIterator[str]]:
        async with plugin.start_subscription([CHANNEL]) as subscriber:

            async def texts() -> AsyncIterator[str]:
                async for event in subscriber.iter_events():
                    yield event.decode()

            yield texts()

    async with plugin:
        yield (lambda text: plugin.wait_published(text, CHANNEL)), subscribe
    await redis.aclose()


@contextlib.asynccontextmanager
async def _broadcaster(url: str, queue: int) -> AsyncIterator[tuple[Publish, Subscribe]]:
    from broadcaster import Broadcast

    broadcast = Broadcast(url)

    @contextlib.asynccontextmanager
    async def subscribe() -> AsyncIterator[AsyncIterator[str]]:
        async with broadcast.subscribe(channel=CHANNEL) as subscriber:
            # Workaround, not a speed-up: broadcaster 0.3.1 starts its listener at the first
            # subscribe, before SUBSCRIBE is acknowledged; on redis-py 8 `listen()` then ends
            # at once and the listener waits forever. Waking it after the subscription is
            # what its code intends (it is a no-op while the listener runs).
            broadcast._backend._ready.set()  # type: ignore[attr-defined]

            async def texts() -> AsyncIterator[str]:
                async for event in subscriber:  # type: ignore[union-attr]
                    if event is None:
                        return
                    yield event.message

            yield texts()

    async with broadcast:
        yield (lambda text: broadcast.publish(CHANNEL, text)), subscribe


OPEN = {"joey": _joey, "litestar": _litestar, "broadcaster": _broadcaster}


# --- subscriber processes ---------------------------------------------------------------------


class Shared:
    def __init__(self) -> None:
        self.got = RawArray("q", PROCESSES)  # deliveries per process
        self.ready = RawArray("q", PROCESSES)  # subscribers open per process
        self.stop = RawArray("b", 1)

    def total(self) -> int:
        return sum(self.got)


async def _subscribers(library: str, url: str, count: int, queue: int, shared: Shared,
                       slot: int, out: Any) -> None:  # fmt: skip
    samples = array.array("d")

    async with OPEN[library](url, queue) as (_, subscribe):

        async def one() -> None:
            async with subscribe() as texts:
                shared.ready[slot] += 1
                async for text in texts:
                    now = time.monotonic_ns()
                    kind, _, t0 = text.partition(":")
                    if kind == "L":
                        samples.append((now - int(t0)) / 1e3)
                    shared.got[slot] += 1

        # The first subscription opens alone: broadcaster loses concurrent first subscribers
        # of a channel (each overwrites the others' registration while awaiting Redis).
        tasks = [asyncio.create_task(one())]
        while not shared.ready[slot] and not shared.stop[0]:  # noqa: ASYNC110 - shared memory
            await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(one()) for _ in range(count - 1)]
        while not shared.stop[0]:  # noqa: ASYNC110 - set by the publisher process
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out.send_bytes(samples.tobytes())


def _subscriber_main(library: str, url: str, count: int, queue: int, shared: Shared, slot: int,
                     out: Any) -> None:  # fmt: skip
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    asyncio.run(_subscribers(library, url, count, queue, shared, slot, out))


async def _wait(shared: Shared, target: int, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while shared.total() < target:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.0005)
    return True


Result = dict[str, Any]


async def _publish(library: str, url: str, args: argparse.Namespace, shared: Shared) -> Result:
    subs = args.subscribers
    async with OPEN[library](url, args.messages) as (publish, _):
        deadline = time.monotonic() + 60
        while sum(shared.ready) < subs:
            if time.monotonic() > deadline:
                return {"error": f"{sum(shared.ready)} of {subs} subscribers open after 60 s"}
            await asyncio.sleep(0.01)
        # A subscription is open before its library's listener has told Redis: publish warm-up
        # messages until one reaches every subscriber.
        for _ in range(100):
            before = shared.total()
            await publish("W:0")
            await asyncio.sleep(0.05)
            if shared.total() - before >= subs:
                break
        else:
            return {"error": "no warm-up message reached every subscriber within 5 s"}
        await asyncio.sleep(0.2)
        expected = shared.total()
        for _ in range(args.latency_messages):
            await publish(f"L:{time.monotonic_ns()}")
            expected += subs
            if not await _wait(shared, expected, 10):
                return {"error": f"latency: {expected - shared.total()} deliveries missing"}
            await asyncio.sleep(0.002)
        t0 = time.perf_counter()
        for _ in range(args.messages):
            await publish("T:0")
        expected += subs * args.messages
        if not await _wait(shared, expected, args.timeout):
            missing = expected - shared.total()
            return {"error": f"throughput: {missing} of {subs * args.messages} deliveries"
                             f" missing after {args.timeout:g} s"}  # fmt: skip
        return {"rate": args.messages / (time.perf_counter() - t0)}


def run_fanout(library: str, url: str, args: argparse.Namespace) -> Result:
    shared = Shared()
    ctx = multiprocessing.get_context("fork")
    per = [args.subscribers // PROCESSES + (i < args.subscribers % PROCESSES)
           for i in range(PROCESSES)]  # fmt: skip
    pipes = [ctx.Pipe(duplex=False) for _ in range(PROCESSES)]
    procs = [
        ctx.Process(
            target=_subscriber_main,
            args=(library, url, per[i], args.messages, shared, i, pipes[i][1]),
            daemon=True,
        )
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        result = asyncio.run(_publish(library, url, args, shared))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    shared.stop[0] = 1
    samples = array.array("d")
    for (reader, _), proc in zip(pipes, procs, strict=True):
        if reader.poll(30):
            samples.frombytes(reader.recv_bytes())
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if "error" not in result and samples:
        ordered = sorted(samples)
        result["p50_us"] = statistics.median(ordered)
        result["p99_us"] = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        result["deliveries"] = len(ordered)
    return result


# --- memory per idle subscriber ---------------------------------------------------------------


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _idle(library: str, url: str, count: int) -> float:
    async with OPEN[library](url, 1000) as (_, subscribe):
        opened = 0

        async def one() -> None:
            nonlocal opened
            async with subscribe() as texts:
                opened += 1
                async for _ in texts:
                    pass

        # One subscriber first, so the connection and the listener are not counted.
        first = asyncio.create_task(one())
        while opened < 1:  # noqa: ASYNC110 - a count, bounded below
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        before = _rss_kib()
        tasks = [asyncio.create_task(one()) for _ in range(count)]
        deadline = time.monotonic() + 60
        while opened < count + 1 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        grown = _rss_kib() - before
        for task in [first, *tasks]:
            task.cancel()
        await asyncio.gather(first, *tasks, return_exceptions=True)
    return grown * 1024 / count


def _idle_main(library: str, url: str, count: int, out: Any) -> None:
    try:
        out.send(asyncio.run(_idle(library, url, count)))
    except Exception as exc:
        out.send(f"{type(exc).__name__}: {exc}")


def run_idle(library: str, url: str, count: int) -> Result:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_idle_main, args=(library, url, count, writer), daemon=True)
    proc.start()
    got = reader.recv() if reader.poll(120) else "no answer within 120 s"
    proc.join(10)
    if proc.is_alive():
        proc.kill()
    return {"bytes_per_idle": got} if isinstance(got, float) else {"error": str(got)}


# --- the section ------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Result]:
    libraries = [name for name in args.libraries.split(",") if name in LIBRARIES]
    rounds: dict[str, list[Result]] = {name: [] for name in libraries}
    idle: dict[str, Result] = {}
    with local_redis() as url:
        for round_no in range(args.repeats):
            order = libraries[round_no % len(libraries) :] + libraries[: round_no % len(libraries)]
            for library in order:
                _say(f"channels round {round_no + 1}/{args.repeats}: {library}")
                rounds[library].append(run_fanout(library, url, args))
        for library in libraries:
            _say(f"channels idle subscribers: {library}")
            idle[library] = run_idle(library, url, args.idle)
    out: dict[str, Result] = {}
    for library, results in rounds.items():
        ok = [r for r in results if "error" not in r]
        merged: Result = {}
        if ok:
            merged["rate"] = max(r["rate"] for r in ok)
            merged["p50_us"] = statistics.median(r["p50_us"] for r in ok)
            merged["p99_us"] = statistics.median(r["p99_us"] for r in ok)
        failed = [r["error"] for r in results if "error" in r]
        if failed:
            merged["error"] = f"{len(failed)} of {len(results)} round(s) failed: {failed[0]}"
        merged.update(idle[library])
        out[library] = merged
    return out


ROWS = (
    ("publish→receive p50 (µs, lower is better)", "p50_us", 0),
    ("publish→receive p99 (µs)", "p99_us", 0),
    ("messages/s, each to every subscriber (higher is better)", "rate", 0),
    ("memory per idle subscriber (bytes)", "bytes_per_idle", 0),
)


def table(results: dict[str, Result], args: argparse.Namespace) -> str:
    libraries = list(results)
    lines = [
        "### Channels fan-out on Redis pub/sub (Joey, Litestar, broadcaster)",
        "",
        f"One publisher, {args.subscribers:,} subscribers to one channel over {PROCESSES}"
        f" processes, one local redis-server; latency over {args.latency_messages} messages"
        f" one at a time, throughput over {args.messages:,} messages back to back; best rate"
        f" and median latency of {args.repeats} rounds in rotated order. Memory: RSS growth"
        f" for {args.idle:,} idle subscribers in one fresh process.",
        "",
        "| measure | " + " | ".join(libraries) + " |",
        "|---" * (len(libraries) + 1) + "|",
    ]
    for label, key, digits in ROWS:
        cells = []
        for name in libraries:
            value = results[name].get(key)
            cells.append("error" if value is None else f"{value:,.{digits}f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = [f"- {name}: {r['error']}" for name, r in results.items() if "error" in r]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def targets(results: dict[str, Result]) -> list[str]:
    """Issue 16's target: Joey ahead of both peers on latency and throughput."""
    joey = results.get("joey", {})
    peers = {name: r for name, r in results.items() if name != "joey"}
    lines = []
    for key, label, better in (("p50_us", "p50 latency", min), ("rate", "messages/s", max)):
        figures = {name: r[key] for name, r in peers.items() if key in r}
        if key not in joey or not figures:
            lines.append(f"- [not measured] channels: {label} ahead of every peer")
            continue
        ahead = all((joey[key] < v) if better is min else (joey[key] > v)
                    for v in figures.values())  # fmt: skip
        shown = ", ".join(f"{name} {v:,.0f}" for name, v in figures.items())
        lines.append(f"- [{'met' if ahead else 'missed'}] channels: {label} ahead of every peer"
                     f" (Joey {joey[key]:,.0f}; {shown})")  # fmt: skip
    if "bytes_per_idle" in joey:
        lines.append(f"- [reported] channels: {joey['bytes_per_idle']:,.0f} bytes per idle"
                     " subscriber")  # fmt: skip
    return lines


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000, help="for throughput")
    parser.add_argument("--latency-messages", type=int, default=200)
    parser.add_argument("--idle", type=int, default=10_000, help="idle subscribers for memory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    results = measure(args)
    print(table(results, args))
    print("\n".join(targets(results)))


if __name__ == "__main__":
    main()
