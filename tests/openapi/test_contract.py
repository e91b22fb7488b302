"""The example's API document against the example itself, by an outside fuzzer.

Schemathesis reads ``/openapi.json`` from ``examples/app.py`` under a real uvicorn on
loopback (httptools and h11) and sends generated requests, valid and invalid, through every
phase (examples, coverage, fuzzing, stateful) with every check it has (``--checks all``):
status codes, content types, headers and bodies must be the documented ones, invalid data
must be refused with a 4xx, valid data accepted, no 5xx. Bounded in examples per operation
and in time.

One operation is left out: ``GET /chat/{room}/events`` is an endless event stream (a
request/response fuzzer would wait on it until its request timeout); its document is still
validated in test_document.py.

The same run against a small app with optional authentication (``optional_auth_app.py``)
proves its document too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.servers import run_server, uvicorn_argv

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_schemathesis_finds_nothing(http: str, tmp_path: Path) -> None:
    with run_server(uvicorn_argv("examples.app:app", "--http", http), tmp_path) as server:
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/openapi.json",
             "--checks", "all", "--mode", "all", "--max-examples", "15", "--seed", "14",
             # one worker: under CPython 3.11 two of them parse source in two threads at
             # once and hit "AST constructor recursion depth mismatch" (CPython gh-106905)
             "--workers", "1", "--request-timeout", "5", "--max-response-time", "5",
             "--exclude-path", "/chat/{room}/events", "--no-color",
             # the librarian's token, so valid requests to the protected PUT are accepted
             # (the 401s of anonymous clients are tested in tests/integration/test_http.py)
             "-H", "Authorization: Bearer librarian-token",
             "--report", "junit", "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        )
        server_log = server.output
    summary = result.stdout[-6000:]
    assert result.returncode == 0, f"{summary}\n--- server ---\n{server_log[-3000:]}"
    assert "Tested: 9" in result.stdout, summary  # every documented operation but the stream


@pytest.mark.timeout(150)
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_schemathesis_accepts_optional_authentication(http: str, tmp_path: Path) -> None:
    """Issue #23: routes whose credentials are optional (``Credentials | None``) answer
    anonymous requests with 200. Documented as required, Schemathesis calls that "API accepts
    requests without authentication"; documented with the empty alternative, nothing fails,
    and no request here carries a token unless Schemathesis chose to send one."""
    app = "tests.openapi.optional_auth_app:app"
    with run_server(uvicorn_argv(app, "--http", http), tmp_path) as server:
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/openapi.json",
             "--checks", "all", "--mode", "all", "--max-examples", "15", "--seed", "14",
             "--workers", "1", "--request-timeout", "5", "--max-response-time", "5",
             "--no-color"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        )
        server_log = server.output
    summary = result.stdout[-6000:]
    assert result.returncode == 0, f"{summary}\n--- server ---\n{server_log[-3000:]}"
    assert "Tested: 2" in result.stdout, summary
