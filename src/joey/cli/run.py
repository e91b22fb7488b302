"""``joey run``: serve an app, for development (``--reload``) or production (``--workers N``),
under uvicorn (:mod:`joey.server`, the default) or Granian (:mod:`joey.cli.granian`).

The app is imported and built once in the command's own process first, so a wrong target
(status 2) or an app that cannot start (a bad signature, a route conflict: status 3) fails at
once with a clear message instead of in every worker, and so the command can say where the app
listens and where its API docs page is (read from the route model: the routes that
``App(openapi=...)`` adds). The worker processes, and the reloader's, import it again.

Under uvicorn every process runs :class:`joey._serving.JoeyServer`: shutdown ends open
streams and closes WebSockets with 1001 before uvicorn's own shutdown (see
:mod:`joey.server`). ``--reload`` watches the Python files under ``--app-dir`` (default: the
current directory) and restarts the server when one changes.

With ``--workers N`` (N > 1), the workers share one ``PROMETHEUS_MULTIPROC_DIR`` so that a scrape
of an app with ``metrics=`` (:mod:`joey.metrics`) adds up the values of all of them: without
one, the command makes a temporary directory and removes it when it ends; a given directory
(with any number of workers) is emptied of the previous run's files at start. It is set
before the app is imported (by this process too), as prometheus_client requires.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from joey.cli import (
    STARTUP_FAILURE,
    StartupError,
    TargetError,
    build_app,
    load_app,
    resolve_target,
)

#: the docs pages App(openapi=...) can serve, in the order ``joey run`` prefers them
DOCS_ROUTES = ("openapi.swagger_ui", "openapi.scalar", "openapi.redoc")


def add_parser(commands: Any) -> None:
    """The ``run`` subcommand (``commands`` is the parser's subparsers object)."""
    run = commands.add_parser(
        "run",
        help="serve the app: --reload while developing, --workers N in production",
        description="Serve an ASGI app (a joey.App) under uvicorn or Granian. Without a "
                    "target, the `app` of main.py or app.py in --app-dir.",
    )
    run.add_argument("app", nargs="?", default=None,
                     help="where the app is, as module:attribute (default: main:app or "
                          "app:app, whichever file exists)")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on "
                     "(default: 127.0.0.1; 0.0.0.0 for every interface)")
    run.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    run.add_argument("--reload", action="store_true",
                     help="restart when a Python file under --app-dir changes (development)")
    run.add_argument("--workers", type=int, default=1,
                     help="server processes sharing the port, each with the app's lifespan "
                          "(default: 1)")
    run.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn",
                     help="the ASGI server (default: uvicorn; granian needs joey[granian])")
    run.add_argument("--app-dir", default=".",
                     help="directory put first on sys.path and watched by --reload "
                          "(default: current)")
    run.add_argument("--log-level", default="info",
                     choices=("critical", "error", "warning", "info", "debug"),
                     help="server log level (default: info)")
    run.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto",
                     help="uvicorn's HTTP implementation (default: auto)")


def docs_path(app: Any) -> str | None:
    """The path of the app's API docs page, from its route model (``None``: it has none)."""
    routes = getattr(app, "routes", None)
    if not isinstance(routes, list):
        return None
    by_name = {getattr(route, "name", None): route for route in routes}
    for name in DOCS_ROUTES:
        if name in by_name:
            path: str = by_name[name].path
            return path
    return None


def _url(host: str, port: int, path: str = "") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def run(args: argparse.Namespace) -> int:
    """``joey run``: the exit status (2: wrong options or target; 3: the app cannot
    start)."""
    if args.workers < 1:
        print("joey run: --workers must be 1 or more", file=sys.stderr)
        return 2
    if args.reload and args.workers > 1:
        print("joey run: --reload runs one process that restarts on changes; it cannot be "
              "combined with --workers. Use --reload while developing, --workers in "
              "production.", file=sys.stderr)
        return 2
    with _metrics_directory(args.workers):
        return _run(args)


#: prometheus_client's multiprocess mode: where each process writes its values
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the files prometheus_client writes there (counter_<pid>.db, gauge_livesum_<pid>.db...)
_METRIC_FILE_PREFIXES = ("counter_", "gauge_", "histogram_", "summary_")


@contextlib.contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """A ``PROMETHEUS_MULTIPROC_DIR`` shared by the ``workers`` processes (see the module
    docstring): one given is emptied, whatever ``workers``; none is made for one process."""
    given = os.environ.get(MULTIPROC_ENV)
    if not given and workers < 2:
        yield
        return
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):  # a previous run's counts would be added to this one's
            if name.endswith(".db") and name.startswith(_METRIC_FILE_PREFIXES):
                os.remove(os.path.join(given, name))
        yield
        return
    made = tempfile.mkdtemp(prefix="joey-metrics-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(made, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    imported = set(sys.modules)
    try:
        target = resolve_target(args.app, args.app_dir)
        app = load_app(target, args.app_dir)
    except TargetError as exc:
        print(f"joey run: {exc}", file=sys.stderr)
        return 2
    try:
        build_app(app)
    except StartupError as exc:
        print(f"joey run: {target} cannot start: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    mode = "reload" if args.reload else f"{args.workers} worker" + "s" * (args.workers > 1)
    print(f"Joey: serving {target} on {_url(args.host, args.port)} with {args.server} "
          f"({mode})", flush=True)
    docs = docs_path(app)
    if docs is not None:
        print(f"Joey: API docs at {_url(args.host, args.port, docs)}", flush=True)
    if args.server == "granian":
        from joey.cli import granian

        # Granian forks its workers: they would inherit the project's modules as this
        # process imported them, and a reload would serve the old code.
        _forget_modules_under(args.app_dir, imported)
        return granian.serve(target, host=args.host, port=args.port, workers=args.workers,
                             reload=args.reload, app_dir=args.app_dir, log_level=args.log_level)
    return _serve_uvicorn(target, args)


def _forget_modules_under(directory: str, keep: set[str]) -> None:
    """Remove from ``sys.modules`` what was imported from files under ``directory`` since
    ``keep`` was taken."""
    root = os.path.join(os.path.abspath(directory), "")
    for name in set(sys.modules) - keep:
        file = getattr(sys.modules[name], "__file__", None)
        if file and os.path.abspath(file).startswith(root):
            del sys.modules[name]


def _serve_uvicorn(target: str, args: argparse.Namespace) -> int:
    from joey._serving import run as serve
    from joey.server import make_config

    options: dict[str, Any] = {"log_level": args.log_level, "http": args.http}
    if args.reload:
        options["reload_dirs"] = [os.path.abspath(args.app_dir)]
    config = make_config(target, host=args.host, port=args.port, workers=args.workers,
                         reload=args.reload, **options)
    return serve(config)


__all__ = [
    "DOCS_ROUTES",
    "add_parser",
    "docs_path",
    "run",
]
