"""The `joey` command line.

    joey worker module:app [--concurrency N] [--app-dir DIR] [--log-level LEVEL]

also runnable as ``python -m joey worker module:app``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="joey", description="The Joey web framework.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    worker = commands.add_parser(
        "worker",
        help="run background tasks from a Redis queue (no web server)",
        description="Import the app, run its RedisTasks backend as a worker until SIGTERM/SIGINT.",
    )
    worker.add_argument(
        "app", help="where the app is, as module:attribute (e.g. myproject.main:app)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=None, help="tasks run at once (default: the backend's)"
    )
    worker.add_argument(
        "--app-dir", default=".", help="directory put first on sys.path (default: current)"
    )
    worker.add_argument("--log-level", default="info", help="logging level (default: info)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `joey` script; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "worker":
        return _worker(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _worker(args: argparse.Namespace) -> int:
    from joey.app import App
    from joey.lifespan import LifespanFailed
    from joey.tasks.worker import configure_logging, find_backend, load_target, run_worker

    configure_logging(args.log_level)
    sys.path.insert(0, os.path.abspath(args.app_dir))
    try:
        target = load_target(args.app)
        backend = find_backend(target)
    except (ImportError, ValueError, TypeError) as exc:
        print(f"joey worker: {exc}", file=sys.stderr)
        return 2
    if args.concurrency is not None:
        if args.concurrency < 1:
            print("joey worker: --concurrency must be >= 1", file=sys.stderr)
            return 2
        backend.max_concurrency = args.concurrency
    # A joey.App runs its startup and shutdown around the worker (see run_worker).
    app = target if isinstance(target, App) else None
    try:
        asyncio.run(run_worker(backend, app=app))
    except asyncio.CancelledError:
        return 1  # a second signal cut the graceful stop short
    except LifespanFailed as exc:
        print(f"joey worker: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
