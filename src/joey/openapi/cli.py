"""``joey openapi module:app [--yaml] [-o FILE]``: write an app's OpenAPI document.

The app's own :class:`~joey.openapi.OpenAPI` (``App(openapi=...)``) says the title, version
and the rest; an app without one gets a document with default ``info``. YAML needs PyYAML.
Exits with 2 for a wrong target, 3 for an app that cannot start (as ``joey run``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from joey.cli import STARTUP_FAILURE, StartupError, build_app
from joey.openapi.routes import OpenAPI


def add_parser(commands: Any) -> None:
    """Add the ``openapi`` command to the ``joey`` command line's subparsers."""
    parser = commands.add_parser(
        "openapi", help="write the app's OpenAPI 3.1 document (JSON, or YAML with --yaml)",
        description="Import the app and write its OpenAPI document to stdout or a file.")
    parser.add_argument("app", help="where the app is, as module:attribute (e.g. main:app)")
    parser.add_argument("--yaml", action="store_true", help="YAML instead of JSON (PyYAML)")
    parser.add_argument("-o", "--output", help="write to this file (default: stdout)")
    parser.add_argument(
        "--app-dir", default=".", help="directory put first on sys.path (default: current)")


def run(args: argparse.Namespace) -> int:
    """The ``openapi`` command; returns the exit status."""
    sys.path.insert(0, os.path.abspath(args.app_dir))
    try:
        app = _load(args.app)
    except Exception as exc:  # a wrong target, or an import error of the app: say it plainly
        print(f"joey openapi: {exc}", file=sys.stderr)
        return 2
    try:
        build_app(app)
    except StartupError as exc:
        print(f"joey openapi: {args.app} cannot start: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    config = getattr(app, "openapi", None)
    if not isinstance(config, OpenAPI):
        config = OpenAPI()
    try:
        document = config.document(app)
    except Exception as exc:  # two security schemes with one name, a type with no schema
        print(f"joey openapi: {exc}", file=sys.stderr)
        return 2
    if args.yaml:
        try:
            import yaml  # type: ignore[import-untyped, unused-ignore]
        except ImportError:
            print("joey openapi: --yaml needs PyYAML (pip install pyyaml)", file=sys.stderr)
            return 2

        class _Dumper(yaml.SafeDumper):  # type: ignore[misc, unused-ignore]
            def ignore_aliases(self, data: Any) -> bool:
                return True  # the document shares dicts; write each out, no &anchors

        text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{target!r} is not module:attribute (e.g. main:app)")
    module = importlib.import_module(module_name)
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attribute!r}") from None
    from joey.app import App

    if not isinstance(app, App):  # (not hasattr(app, "routes"): that builds the app)
        raise ValueError(f"{target} is not a joey App")
    return app


__all__ = [
    "add_parser",
    "run",
]
