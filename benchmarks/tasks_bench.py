"""Background-task benchmark: enqueue-to-start latency and throughput, both backends.

    python benchmarks/tasks_bench.py [--redis-url redis://127.0.0.1:6379/0] [--tasks 5000]

Without --redis-url it starts a throwaway redis-server on a free loopback port if one is on
PATH, otherwise it skips the Redis rows. Latency: one task at a time, time from just before
`enqueue` to the first line of the task. Throughput: `--tasks` no-op tasks enqueued at once,
until the last one has run. The Redis backend consumes in this same process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

from joey.tasks import InMemoryTasks, RedisTasks, TaskBackend


async def _latency(tasks: TaskBackend, rounds: int) -> list[float]:
    started = asyncio.Event()
    samples: list[float] = []

    @tasks.task(name="bench.latency")
    async def mark() -> None:
        started.set()

    async with tasks:
        for _ in range(rounds):
            started.clear()
            t0 = time.perf_counter()
            await tasks.enqueue(mark)
            await started.wait()
            samples.append(time.perf_counter() - t0)
    return samples


async def _throughput(tasks: TaskBackend, count: int) -> float:
    remaining = count
    all_done = asyncio.Event()

    @tasks.task(name="bench.noop")
    async def noop(i: int) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            all_done.set()

    async with tasks:
        t0 = time.perf_counter()
        for i in range(count):
            await tasks.enqueue(noop, i)
        await all_done.wait()
        return count / (time.perf_counter() - t0)


def _row(name: str, samples: list[float], rate: float) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    return f"| {name:<12} | {p50:>10.0f} | {p99:>10.0f} | {rate:>10.0f} |"


@contextlib.contextmanager
def _local_redis() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="joey-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


async def _run(redis_url: str | None, count: int, rounds: int, concurrency: int) -> None:
    print(f"{count} tasks for throughput, {rounds} rounds for latency, "
          f"max_concurrency={concurrency}")  # fmt: skip
    print("| backend      | p50 µs     | p99 µs     | tasks/s    |")
    print("|--------------|------------|------------|------------|")

    lat = await _latency(InMemoryTasks(max_concurrency=concurrency), rounds)
    rate = await _throughput(InMemoryTasks(max_concurrency=concurrency, max_queue=count), count)
    print(_row("in-memory", lat, rate))

    if redis_url is None:
        print("| redis        | skipped: no --redis-url and no redis-server on PATH  |")
        return

    def redis_tasks() -> RedisTasks:
        prefix = f"joey-bench:{uuid.uuid4().hex[:8]}"
        return RedisTasks(redis_url, prefix=prefix, max_concurrency=concurrency)

    lat = await _latency(redis_tasks(), rounds)
    rate = await _throughput(redis_tasks(), count)
    print(_row("redis", lat, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=None, help="an existing Redis (loopback)")
    parser.add_argument("--tasks", type=int, default=5000, help="tasks for the throughput run")
    parser.add_argument("--rounds", type=int, default=500, help="samples for the latency run")
    parser.add_argument("--concurrency", type=int, default=50, help="max_concurrency")
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(_run(args.redis_url, args.tasks, args.rounds, args.concurrency))
        return
    with _local_redis() as url:
        asyncio.run(_run(url, args.tasks, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
