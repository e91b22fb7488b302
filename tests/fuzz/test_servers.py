"""A share of the fuzzed requests over real servers: uvicorn with httptools and with h11, which
pass different malformed input on to the app (h11 far more). Same property as in process,
read from the wire: never a 5xx, no authority from a second Host, and nothing the server logs
as a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given

from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.properties import check_wire, exchange
from tests.fuzz.strategies import RawRequest, requests
from tests.integration.servers import Server, run_server, uvicorn_argv

PARSERS = ["httptools", "h11"]


@pytest.fixture(scope="module", params=PARSERS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with run_server(uvicorn_argv("tests.fuzz.app:app", "--http", request.param,
                                 "--log-level", "warning"), tmp, ready_path="/q?q=1") as server:
        yield server
        assert "Traceback" not in server.output, server.output[-5000:]


def test_any_request_over_a_real_server(server: Server) -> None:
    logged = len(server.output)

    @given(requests())
    @fuzz_settings(60)
    def one(request: RawRequest) -> None:
        nonlocal logged
        check_wire(request, exchange(server.port, request), f"127.0.0.1:{server.port}")
        output = server.output
        new, logged = output[logged:], len(output)
        assert "Traceback" not in new and "Exception in ASGI" not in new, new[-3000:]

    one()
