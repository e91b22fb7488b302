"""Serve one framework's benchmark app on loopback, one worker, under uvicorn or granian.

    python benchmarks/serve.py joey 8123                    # uvicorn, httptools + uvloop
    python benchmarks/serve.py joey 8123 --server granian   # granian, ASGI interface, uvloop

Both servers get the same settings where they have them: one worker (granian: one runtime
thread), HTTP/1.1, uvloop, no access log. Joey's app is built by :func:`apps.load`, which
refuses to serve a column whose interpreter imports the other Joey build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import load

HOST = "127.0.0.1"  # loopback only, always
SERVERS = ("uvicorn", "granian")


def build(framework: str) -> Any:
    """The framework's main app; granian calls this in its worker process."""
    return load(framework).build_app()


def _uvicorn(framework: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        build(framework),
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="auto",
        access_log=False,
        log_level="warning",
    )


def _granian(framework: str, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels

    server = Granian(
        framework,  # handed to the loader below, which builds the app in the worker
        address=HOST,
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        runtime_threads=1,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_level=LogLevels.warning,
        log_access=False,
    )
    server.serve(target_loader=build)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework")
    parser.add_argument("port", type=int)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    args = parser.parse_args(argv)
    (_uvicorn if args.server == "uvicorn" else _granian)(args.framework, args.port)


if __name__ == "__main__":
    main()
