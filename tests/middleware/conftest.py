"""Fixtures for the middleware tests: a real redis-server for RedisStore."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import free_port


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    install = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server"
    subprocess.run(["bash", "-c", install], check=True, capture_output=True, timeout=600)
    found = shutil.which("redis-server")
    assert found, "redis-server is still missing after apt-get install"
    return found


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A throwaway redis-server on 127.0.0.1, no persistence, for the whole test session."""
    binary = _redis_binary()
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)
