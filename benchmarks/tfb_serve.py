"""Serve one framework's TechEmpower app (``tfb_apps``) on loopback, one worker, under uvicorn
or granian, with the settings ``serve.py`` gives the other sections' apps::

    TFB_DATABASE_URL=postgresql://... python benchmarks/tfb_serve.py joey 8123 [--server granian]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import HOST, SERVERS
from tfb_apps import load


def build(framework: str) -> Any:
    """The framework's app; granian calls this in its worker process."""
    return load(framework).build_app()


def _uvicorn(framework: str, port: int) -> None:
    import uvicorn

    uvicorn.run(build(framework), host=HOST, port=port, loop="uvloop", http="httptools",
                lifespan="on", access_log=False, log_level="warning")


def _granian(framework: str, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels

    server = Granian(framework, address=HOST, port=port, interface=Interfaces.ASGI, workers=1,
                     runtime_threads=1, loop=Loops.uvloop, http=HTTPModes.http1,
                     log_level=LogLevels.warning, log_access=False)
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
