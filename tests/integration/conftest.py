from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import Server, run_server, uvicorn_argv


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example app under a real uvicorn (plain `uvicorn examples.app:app`)."""
    tmp: Path = tmp_path_factory.mktemp("example")
    with run_server(uvicorn_argv("examples.app:app"), tmp) as server:
        yield server
