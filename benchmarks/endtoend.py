"""End to end: requests per second under uvicorn or granian, driven by ``wrk``, on loopback only,
and the server's own CPU time per request over each run (its process tree, from ``/proc``):
what the server spent, however much of the CPU it was given during the run.

The server runs pinned to CPU 0 and wrk (one thread) to CPU 1 when the machine has two CPUs and
``taskset`` exists, so the load generator never steals the server's core. Each server is checked to
answer every scenario correctly before it is loaded. Each framework's server runs under its
column's interpreter (:func:`apps.interpreter`: compiled Joey under its own venv).
"""

from __future__ import annotations

import http.client
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from apps import interpreter
from scenarios import Scenario, check_http

HOST = "127.0.0.1"  # loopback only, always
HERE = Path(__file__).resolve().parent
Result = dict[str, Any]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pin(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def _wait_listening(port: int, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server not listening after {timeout:.0f} s")


def verify(port: int, scenario: Scenario) -> str | None:
    """Why the server's answer to ``scenario`` is wrong, or None when it is right."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request(scenario.method, scenario.target, body=scenario.body or None)
        response = conn.getresponse()
        return check_http(scenario, response.status, response.read())
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its descendants (granian's worker is a child)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending, seen = 0.0, [pid], set()
    while pending:  # bounded: each process is visited once
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (OSError, ValueError, IndexError):
            continue
    return total


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_REQUESTS = re.compile(r"(\d+) requests in")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors:(.*)")
_LATENCY = re.compile(r"Latency\s+([\d.]+\w+)")


def _wrk(port: int, scenario: Scenario, seconds: float, connections: int,
         server_pid: int | None = None) -> Result:
    """One wrk run; with ``server_pid``, also the server's CPU µs per request over it."""
    command = [
        *_pin(1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, math.ceil(seconds))}s",  # wrk takes whole seconds only
        f"http://{HOST}:{port}{scenario.target}",
    ]
    cpu_before = cpu_seconds(server_pid) if server_pid is not None else 0.0
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid is not None else None
    output = done.stdout
    rps = _RPS.search(output)
    if done.returncode != 0 or rps is None:
        return {"status": "error", "detail": f"wrk failed: {(done.stderr or output)[-200:]}"}
    bad = _NON_2XX.search(output)
    if bad:
        return {"status": "error", "detail": f"{bad.group(1)} non-2xx responses"}
    latency = _LATENCY.search(output)
    result: Result = {"status": "ok", "rps": float(rps.group(1))}
    count = _REQUESTS.search(output)
    if cpu is not None and count is not None and int(count.group(1)) > 0:
        result["cpu_us"] = cpu / int(count.group(1)) * 1e6
    if latency:
        result["latency"] = latency.group(1)
    errors = _SOCKET_ERRORS.search(output)
    if errors:
        result["socket_errors"] = errors.group(1).strip()
    return result


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop a server as Ctrl-C would; killed when it takes more than 10 s."""
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def start(framework: str, server_name: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``framework``'s app under ``server_name`` on a free port, under its column's
    interpreter, output to ``log``; return the process once it listens, and the port."""
    port = free_port()
    command = [interpreter(framework), str(HERE / "serve.py"), framework, str(port)]
    with log.open("ab") as log_file:
        server = subprocess.Popen(
            [*_pin(0), *command, "--server", server_name],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, server)
    except BaseException:
        stop(server)
        raise
    return server, port


def run_all(
    frameworks: list[str],
    scenarios: list[Scenario],
    rounds: int,
    seconds: float,
    warmup: float,
    connections: int,
    logs: Path,
    server_name: str = "uvicorn",
) -> dict[str, dict[str, Result]]:
    """Load every framework's server (``server_name``: uvicorn or granian) with every scenario;
    return results by framework and key.

    All servers start together (idle ones cost nothing) so that the measurements can be
    interleaved: each round loads every framework in turn, scenario by scenario, and the best
    round counts. A slow minute on the shared machine then hurts every framework alike. Each
    result also carries ``cpu_us``, the server's CPU µs per request (median of the rounds).
    """
    results: dict[str, dict[str, Result]] = {fw: {} for fw in frameworks}
    if shutil.which("wrk") is None:
        for fw in frameworks:
            results[fw] = {
                s.key: {"status": "error", "detail": "wrk not installed"} for s in scenarios
            }
        return results
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for fw in frameworks:
            try:
                log = logs / f"serve-{server_name}-{fw}.log"
                servers[fw] = start(fw, server_name, log)
            except Exception as exc:
                said = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
                detail = f"server did not start: {type(exc).__name__}: {exc}"[:200] + (
                    f"; its last words: {said[-1][-300:]}" if said else ""
                )
                results[fw] = {s.key: {"status": "error", "detail": detail} for s in scenarios}
                continue
            for scenario in scenarios:
                try:
                    problem = verify(servers[fw][1], scenario)
                except Exception as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if problem:
                    results[fw][scenario.key] = {
                        "status": "error",
                        "detail": f"wrong answer: {problem}",
                    }
                elif warmup > 0:
                    _wrk(servers[fw][1], scenario, warmup, connections)
        samples: dict[tuple[str, str], list[Result]] = {}
        for round_no in range(rounds):
            order = (
                frameworks[round_no % len(frameworks) :] + frameworks[: round_no % len(frameworks)]
            )
            for scenario in scenarios:
                for fw in order:
                    if fw in servers and scenario.key not in results[fw]:
                        _log(
                            f"end to end ({server_name}) round {round_no + 1}/{rounds}:"
                            f" {scenario.key} {fw}"
                        )
                        server, port = servers[fw]
                        sample = _wrk(port, scenario, seconds, connections, server.pid)
                        samples.setdefault((fw, scenario.key), []).append(sample)
    finally:
        for server, _ in servers.values():
            stop(server)
    for (fw, key), runs in samples.items():
        failed = [r for r in runs if r["status"] != "ok"]
        if failed:
            results[fw][key] = failed[0]
        else:
            best = max(runs, key=lambda r: r["rps"])
            results[fw][key] = {**best, "median_rps": statistics.median(r["rps"] for r in runs)}
            cpu = [r["cpu_us"] for r in runs if "cpu_us" in r]
            if cpu:
                results[fw][key]["cpu_us"] = statistics.median(cpu)
                results[fw][key]["cpu_us_rounds"] = cpu
    return results


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
