"""The `joey` command line.

    joey run [module:app] [--reload | --workers N] [--host H] [--port P] [--server uvicorn|granian]
    joey routes [module:app] [--json]
    joey worker module:app [--concurrency N] [--app-dir DIR] [--log-level LEVEL]
    joey tasks module:app [show | metrics | requeue ID... | drop ID...] [--all] [--app-dir DIR]
    joey openapi module:app [--yaml] [-o FILE] [--app-dir DIR]

also runnable as ``python -m joey ...``. Each command is a `_parser` entry and a function
that takes the parsed arguments and returns the exit status (see `_COMMANDS`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from joey.tasks.redis import RedisTasks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="joey", description="The Joey web framework.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from joey.cli.run import add_parser as add_run

    add_run(commands)
    routes = commands.add_parser(
        "routes",
        help="list every route (methods, path, name, handler file:line, middleware, guards, "
             "dependencies), WebSocket routes and mounts",
        description="Import the app and print its route model (app.routes, app.mounts).",
    )
    routes.add_argument("app", nargs="?", default=None,
                        help="module:attribute (default: main:app or app:app)")
    routes.add_argument("--json", action="store_true", help="JSON for tools, one object per "
                        "route or mount")
    routes.add_argument(
        "--app-dir", default=".", help="directory put first on sys.path (default: current)"
    )
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

    tasks = commands.add_parser(
        "tasks",
        help="see and operate a Redis task queue: counts per task, metrics, dead tasks",
        description="Import the app and read its RedisTasks queue (nothing is consumed).",
    )
    tasks.add_argument("app", help="where the app is, as module:attribute")
    tasks.add_argument(
        "action",
        nargs="?",
        default="show",
        choices=("show", "metrics", "requeue", "drop"),
        help="show: queued/running/scheduled/dead per task name (default); metrics: the "
        "Prometheus text; requeue / drop: dead tasks by id (or --all)",
    )
    tasks.add_argument("ids", nargs="*", help="dead task ids, for requeue and drop")
    tasks.add_argument("--all", action="store_true", help="requeue or drop every dead task")
    tasks.add_argument(
        "--app-dir", default=".", help="directory put first on sys.path (default: current)"
    )
    from joey.openapi.cli import add_parser as add_openapi

    add_openapi(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `joey` script; returns the process exit status."""
    args = _parser().parse_args(argv)
    return _COMMANDS[args.command](args)


def _run(args: argparse.Namespace) -> int:
    from joey.cli.run import run

    return run(args)


def _routes(args: argparse.Namespace) -> int:
    from joey.cli import (
        STARTUP_FAILURE,
        StartupError,
        TargetError,
        build_app,
        load_app,
        resolve_target,
    )
    from joey.cli.routes import as_json, as_table

    try:
        target = resolve_target(args.app, args.app_dir)
        app = load_app(target, args.app_dir)
    except TargetError as exc:
        print(f"joey routes: {exc}", file=sys.stderr)
        return 2
    try:
        build_app(app)
        routes, mounts = app.routes, app.mounts
    except StartupError as exc:
        print(f"joey routes: {target} cannot start: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    except AttributeError:
        print(f"joey routes: {args.app or 'the app'} is not a joey.App (no route model)",
              file=sys.stderr)
        return 2
    print(as_json(routes, mounts) if args.json else as_table(routes, mounts))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from joey.app import App
    from joey.cli import StartupError, build_app
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
        build_app(app)
    except StartupError as exc:  # a bad signature, a route conflict: as a failed startup
        print(f"joey worker: {args.app} cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(run_worker(backend, app=app))
    except asyncio.CancelledError:
        return 1  # a second signal cut the graceful stop short
    except LifespanFailed as exc:
        print(f"joey worker: {exc}", file=sys.stderr)
        return 1
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from joey.tasks.redis import RedisTasks
    from joey.tasks.worker import find_backend, load_target

    sys.path.insert(0, os.path.abspath(args.app_dir))
    try:
        backend = find_backend(load_target(args.app))
    except (ImportError, ValueError, TypeError) as exc:
        print(f"joey tasks: {exc}", file=sys.stderr)
        return 2
    assert isinstance(backend, RedisTasks)  # find_backend accepts nothing else
    if args.action in ("requeue", "drop") and not (args.ids or args.all):
        print(f"joey tasks: {args.action} needs task ids or --all", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_tasks_action(backend, args))
    except Exception as exc:  # TasksUnavailable, a refused connection: say it plainly
        print(f"joey tasks: {exc}", file=sys.stderr)
        return 1


async def _tasks_action(backend: RedisTasks, args: argparse.Namespace) -> int:
    await backend.start(consume=False)
    try:
        if args.action == "metrics":
            sys.stdout.write(await backend.metrics())
            return 0
        if args.action == "show":
            rows = await backend.overview()
            places = ("queued", "running", "scheduled", "dead")
            width = max([len("task"), *map(len, rows)])
            print(f"{'task':<{width}}  " + "  ".join(f"{p:>9}" for p in places))
            for name, row in rows.items():
                print(f"{name:<{width}}  " + "  ".join(f"{row[p]:>9}" for p in places))
            if not rows:
                print("(the queue is empty)")
            return 0
        ids = list(args.ids)
        if args.all:
            ids += [info.id for info in await backend.dead_letters(limit=backend.keep_dead)]
        act = backend.requeue if args.action == "requeue" else backend.drop
        missing = 0
        for task_id in ids:
            if await act(task_id):
                print(f"{args.action}: {task_id}")
            else:
                missing += 1
                print(f"joey tasks: {task_id} is not a dead task", file=sys.stderr)
        return 1 if missing else 0
    finally:
        await backend.stop()


def _openapi(args: argparse.Namespace) -> int:
    from joey.openapi.cli import run

    return run(args)


_COMMANDS = {"run": _run, "routes": _routes, "worker": _worker, "tasks": _tasks,
             "openapi": _openapi}


if __name__ == "__main__":
    sys.exit(main())
