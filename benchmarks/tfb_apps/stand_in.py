"""A stand-in for the asyncpg pool, for measuring each framework's own share (``tfb.py``).

On the real database, what a query test costs in-process is mostly asyncpg and the event
loop, the same code for every app, and the load of this shared machine moves it by more than
the frameworks differ. With ``TFB_STAND_IN=1`` in the environment, ``create_pool()`` gives
every app this pool instead: the same calls (``acquire()``, ``fetchval``, ``fetch``,
``executemany``, ``close()``), each suspending once as a query does (a future the loop
resolves on its next turn), answering at once with rows of the right shape. What is left of
an app's CPU per request is its framework, its own code, JSON and the template.

Its answers are not the database's (``randomNumber`` is computed from the id), so the
verifier is not run on it: the apps are verified on the real database first.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from tfb_postgres import FORTUNES


def _answer(value: Any) -> asyncio.Future[Any]:
    """A future the loop resolves with ``value`` on its next turn: one suspension."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_soon(future.set_result, value)
    return future


class StandInConnection:
    async def fetchval(self, sql: str, id_: int) -> int:
        number: int = await _answer(id_ * 7 % 10_000 + 1)
        return number

    async def fetch(self, sql: str) -> list[tuple[int, str]]:
        rows: list[tuple[int, str]] = await _answer(list(FORTUNES))
        return rows

    async def executemany(self, sql: str, args: list[tuple[int, int]]) -> None:
        await _answer(None)


class _Acquired:
    """What ``pool.acquire()`` gives: used as ``async with``, as asyncpg's is."""

    __slots__ = ("connection",)

    def __init__(self, connection: StandInConnection) -> None:
        self.connection = connection

    async def __aenter__(self) -> StandInConnection:
        return self.connection

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        return None


class StandInPool:
    def __init__(self) -> None:
        self._acquired = _Acquired(StandInConnection())

    def acquire(self) -> _Acquired:
        return self._acquired

    async def close(self) -> None:
        return None
