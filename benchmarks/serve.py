"""Serve one framework's benchmark app under uvicorn (httptools + uvloop, one worker, loopback).

python benchmarks/serve.py joey 8123
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvicorn
from apps import load


def main() -> None:
    framework, port = sys.argv[1], int(sys.argv[2])
    app = load(framework).build_app()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="auto",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
