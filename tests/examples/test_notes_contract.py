"""The notes service's API document against the service itself, by an outside fuzzer: the
contract test of ``examples/app.py`` (tests/openapi/test_contract.py), on the example with
authentication, pagination and uploads.

``uvicorn examples.notes.main:app`` runs on loopback (httptools and h11) on a fresh database.
The test signs up first, and Schemathesis sends every request with that real token, through
every phase (examples, coverage, fuzzing, stateful) with every check it has
(``--checks all``, valid and invalid data): documented statuses, content types, headers and
bodies, invalid data refused with a 4xx, valid data accepted, no 5xx. The stateful phase
follows the links it infers from the ``Location`` of a created note or attachment (create →
read, change, delete → read again: a 404). ``GET /notes/{note_id}`` takes an optional token
(anyone may read a public note): documented as such, the requests Schemathesis sends without
the token are no failure. Bounded in examples per operation and in time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.servers import run_server, uvicorn_argv
from tests.soak.load import MULTIPART_WARNING


@pytest.mark.timeout(200)
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_schemathesis_finds_nothing_in_the_notes_service(http: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}",
           "NOTES_UPLOAD_DIR": str(tmp_path / "files"), "NOTES_MAX_UPLOAD_SIZE": "100000"}
    argv = uvicorn_argv("examples.notes.main:app", "--http", http)
    with run_server(argv, tmp_path, env=env, ready_path="/openapi.json") as server:
        signup = httpx.post(f"{server.base_url}/users", json={"name": "contract"}, timeout=10)
        assert signup.status_code == 201, signup.text
        token = signup.json()["token"]
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/openapi.json",
             "--checks", "all", "--mode", "all", "--max-examples", "15", "--seed", "14",
             # one worker: see tests/openapi/test_contract.py (CPython gh-106905)
             "--workers", "1", "--request-timeout", "5", "--max-response-time", "5",
             "--no-color", "-H", f"Authorization: Bearer {token}",
             "--report", "junit", "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False,
        )
        server_log = server.output
    summary = result.stdout[-8000:]
    assert result.returncode == 0, f"{summary}\n--- server ---\n{server_log[-3000:]}"
    assert "Tested: 10" in result.stdout, summary  # every operation of the document
    # The token worked: no operation answered only 401s (Schemathesis warns, and passes).
    assert "Authentication failed" not in result.stdout, summary
    links = re.search(r"API Links:\s+(\d+) covered", result.stdout)
    assert links is not None and int(links.group(1)) > 0, summary  # the stateful phase ran
    # Nothing logged but INFO (the notes service's own warnings are bare lines), except
    # uvicorn's note of the malformed requests the fuzzer sends on purpose, and the warnings
    # python-multipart before 0.0.26 writes about malformed forms (the lowest-py311 cell;
    # Joey answers those forms itself).
    complaints = [line for line in server_log.splitlines() if line.strip()
                  and not line.startswith(("INFO:", "WARNING:  Invalid HTTP request received."))
                  and not MULTIPART_WARNING.fullmatch(line)]
    assert complaints == [], server_log[-3000:]
