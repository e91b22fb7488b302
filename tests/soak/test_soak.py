"""A bounded soak under a real uvicorn (httptools and h11): rounds of requests through every
built-in (tests/soak/load.py: sessions in Redis, channels publish and subscribe over a
WebSocket and SSE, Redis tasks enqueued and run, a Redis rate limit, plain routes, JSON,
uploads), and the server process sampled after each round: its resident memory, its file
descriptors, its asyncio tasks.

After a warm-up (pools, caches and lazily built things reach their size), what the process
holds must stay flat: growth under a bound that is generous for noise and that a leak of
one task or one file descriptor per request, or per WebSocket or SSE connection, passes
several times over (each round has at least 3 of everything; six rounds are measured). A
run on a loaded machine is slower, never different: the load is counted, not timed.

The last test proves the net holds: a handler that leaks a task, a file descriptor and
256 KiB per request fails all three bounds, in fewer rounds than the soak has.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.servers import Server, run_server, uvicorn_argv
from tests.soak.load import Sample, complaints, one_round, sample

WARM_UP = 2
MEASURED = 6
#: the most each may grow from the end of the warm-up to the end of the soak
#: (a leak of one per WebSocket, per SSE stream, per upload is 18 to 30 over the soak; one
#: per request of the leaking handler below, 90)
MAX_GROWTH = Sample(rss_kib=8 * 1024, fds=10, tasks=10)


async def soak(server: Server, warm_up: int, measured: int) -> list[Sample]:
    """Samples at the end of the warm-up and after each measured round."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
        for number in range(warm_up):
            await one_round(server.base_url, number)
        samples = [await sample(client)]
        for number in range(warm_up, warm_up + measured):
            await one_round(server.base_url, number)
            samples.append(await sample(client))
    return samples


def over_bounds(samples: list[Sample]) -> list[str]:
    """What grew past its bound, first sample to last."""
    growth = samples[-1].minus(samples[0])
    return [name for name in ("rss_kib", "fds", "tasks")
            if getattr(growth, name) > getattr(MAX_GROWTH, name)]


def soak_argv(http: str) -> list[str]:
    return uvicorn_argv("tests.soak.app:app", "--http", http, "--no-access-log")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_soak_through_every_builtin_holds_what_it_held_after_warm_up(
    http: str, tmp_path: Path, soak_env: dict[str, str],
) -> None:
    with run_server(soak_argv(http), tmp_path, env=soak_env, ready_path="/plain") as server:
        samples = await soak(server, WARM_UP, MEASURED)
        log = server.output
    assert over_bounds(samples) == [], samples
    assert complaints(log) == [], log[-3000:]


@pytest.mark.timeout(240)
async def test_the_soak_fails_a_handler_that_leaks_a_task_a_descriptor_or_memory(
    tmp_path: Path, soak_env: dict[str, str],
) -> None:
    env = {**soak_env, "SOAK_LEAK": "task,fd,memory"}  # GET /plain leaks, 30 times a round
    with run_server(soak_argv("httptools"), tmp_path, env=env, ready_path="/plain") as server:
        samples = await soak(server, 1, 3)
    assert over_bounds(samples) == ["rss_kib", "fds", "tasks"], samples
