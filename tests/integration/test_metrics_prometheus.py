"""``joey run --workers 2`` scraped by a real Prometheus (uvicorn with httptools and h11, and
Granian): after a known number of requests spread over both workers, Prometheus's HTTP API
gives their sum, whichever worker answered each scrape; the exposition passes
``promtool check metrics``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.integration.servers import Server, free_port, run_server

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus is not installed")

SERVERS = [
    pytest.param(["--server", "uvicorn", "--http", "httptools"], id="uvicorn-httptools"),
    pytest.param(["--server", "uvicorn", "--http", "h11"], id="uvicorn-h11"),
    pytest.param(["--server", "granian"], id="granian"),
]
ROUTE = 'http_route="/items/{id}"'


def run_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "joey", "run", "tests.integration.metrics_app:app",
            "--workers", "2", *args, "--host", "127.0.0.1", "--port", "{port}"]


def send_over_both_workers(server: Server, at_least: int) -> tuple[int, set[int]]:
    """GET /items/{i} on a new connection each time until both workers answered and
    ``at_least`` were sent (1,000 at most); returns how many were sent and the pids seen."""
    sent, pids = 0, set()
    while (sent < at_least or len(pids) < 2) and sent < 1000:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            response = client.get(f"/items/{sent}")
        assert response.status_code == 200
        pids.add(response.json()["pid"])
        sent += 1
    return sent, pids


@pytest.fixture
def prometheus_at(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Start Prometheus scraping a target every second: ``prometheus_at(port)`` → its URL."""
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(target_port: int) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: joey\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        log = (tmp_path / "prometheus.log").open("wb")
        logs.append(log)
        processes.append(subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT))
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for log in logs:
        log.close()


def query(prometheus: str, promql: str) -> float | None:
    """The single value of an instant query (None: no result yet, or not up yet)."""
    try:
        answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
    except httpx.TransportError:
        return None
    if answer.status_code != 200:  # 503 while it starts
        return None
    result = answer.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.mark.parametrize("server_args", SERVERS)
def test_prometheus_sees_the_requests_of_every_worker(
    tmp_path: Path, server_args: list[str], prometheus_at: Callable[[int], str],
) -> None:
    with run_server(run_argv(*server_args), tmp_path, ready_path="/metrics") as server:
        sent, pids = send_over_both_workers(server, at_least=50)
        assert len(pids) == 2, f"one worker answered all {sent} requests"
        prometheus = prometheus_at(server.port)
        total = f"sum(http_server_request_duration_seconds_count{{{ROUTE}}})"
        seen: float | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = query(prometheus, total)
            if seen == sent:
                break
            time.sleep(0.5)
        assert seen == sent, server.output
        # the same sum from whichever worker answers: scrape twice more, on new connections
        for _ in range(2):
            text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
            line = next(line for line in text.splitlines() if line.startswith(
                "http_server_request_duration_seconds_count{") and ROUTE in line)
            assert float(line.rsplit(" ", 1)[1]) == sent
        checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                 capture_output=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert query(prometheus, 'up{job="joey"}') == 1
