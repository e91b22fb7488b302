"""Start real servers on free loopback ports for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A server process on 127.0.0.1 and what it printed."""

    def __init__(self, process: subprocess.Popen[str], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


@contextlib.contextmanager
def run_server(
    argv: list[str], tmp_path: Path, env: dict[str, str] | None = None,
    ready_path: str = "/", expect_ready: bool = True,
) -> Iterator[Server]:
    """Run ``argv`` (with ``{port}`` replaced) until it answers ``ready_path``."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [arg.replace("{port}", str(port)) for arg in argv],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    server = Server(process, port, log_path)
    try:
        if expect_ready:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{server.output}")
                try:
                    httpx.get(server.base_url + ready_path, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"server never answered:\n{server.output}") from None
                    time.sleep(0.05)
        yield server
    finally:
        server.stop()
        log.close()


def uvicorn_argv(app: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}",
            *extra]


def example_argv() -> list[str]:
    return [sys.executable, "examples/app.py", "{port}"]
