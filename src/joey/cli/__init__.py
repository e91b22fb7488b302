"""The `joey` command's own commands (``joey run``, ``joey routes``) and what they share:
finding the app a command is pointed at.

A target is ``module:attribute`` (``myproject.main:app``), or ``module`` alone (its ``app``).
Without one, the app is the ``app`` of ``main.py`` or ``app.py`` in the app directory, as
``fastapi dev`` and ``litestar run`` look for it. A wrong target is a :class:`TargetError`
that says what was looked for, where, and what to pass instead. A target that is found but
cannot be built (a bad handler signature, a route conflict) is a :class:`StartupError`
(:func:`build_app`): the command says so in a line and exits with :data:`STARTUP_FAILURE`.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

#: the modules tried, in order, when no target is given
DEFAULT_MODULES = ("main", "app")


#: the exit status of a command whose app cannot start (uvicorn's, and ``joey.serve``'s)
STARTUP_FAILURE = 3


class TargetError(Exception):
    """The command's target cannot be found or is not an app (the message says why)."""


class StartupError(Exception):
    """The command's app was found but cannot be built (the message says why)."""


def resolve_target(target: str | None, app_dir: str = ".") -> str:
    """The ``module:attribute`` a command serves: ``target`` completed (``module`` alone
    means its ``app``), or the ``app`` of ``main.py``/``app.py`` in ``app_dir``."""
    if target:
        module, _, attribute = target.partition(":")
        if module.endswith(".py"):
            raise TargetError(
                f"{target!r} is a file name; pass a module: "
                f"{module[:-3].replace('/', '.').replace(os.sep, '.')}:{attribute or 'app'}")
        if not module or not all(part.isidentifier() for part in module.split(".")):
            raise TargetError(f"{target!r} is not module:attribute (e.g. myproject.main:app)")
        if attribute and not all(part.isidentifier() for part in attribute.split(".")):
            raise TargetError(f"{attribute!r} in {target!r} is not an attribute name")
        return f"{module}:{attribute or 'app'}"
    directory = Path(app_dir).resolve()
    for module in DEFAULT_MODULES:
        if (directory / f"{module}.py").is_file():
            return f"{module}:app"
    raise TargetError(
        f"No app given, and neither main.py nor app.py is in {directory}. Pass where the "
        f"app is, as module:attribute (e.g. joey run myproject.main:app), or --app-dir.")


def load_app(target: str, app_dir: str = ".") -> Any:
    """Import ``module:attribute`` with ``app_dir`` first on ``sys.path``; the object must
    be an ASGI app (a :class:`joey.App` or any ASGI callable)."""
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise TargetError(f"No module named {module_name!r} (looked in {directory} and "
                              f"the installed packages).") from None
        raise TargetError(f"Importing {module_name!r} failed: {type(exc).__name__}: "
                          f"{exc}") from exc
    except Exception as exc:
        raise TargetError(f"Importing {module_name!r} failed: {type(exc).__name__}: "
                          f"{exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            apps = _apps_in(module)
            hint = (f" Apps in it: {', '.join(apps)}." if apps else
                    " It defines no joey.App at module level.")
            raise TargetError(f"Module {module_name!r} ({module.__file__}) has no attribute "
                              f"{attribute!r}.{hint}")
        obj = getattr(obj, part)
    if not callable(obj) or isinstance(obj, type):
        raise TargetError(f"{target} is {type(obj).__name__} {obj!r:.60}, not an ASGI app "
                          f"(a joey.App, or an async callable taking scope, receive, send).")
    return obj


def _apps_in(module: Any) -> list[str]:
    from joey.app import App

    return [f"{module.__name__}:{name}" for name, value in vars(module).items()
            if isinstance(value, App)]


def build_app(app: Any) -> None:
    """Build ``app`` as its startup would, so that an app that cannot start fails here, in
    the command's own process: a :class:`StartupError` with Joey's message (which names the
    handler and its file:line), not a traceback through the command. A plain ASGI app has
    nothing to build."""
    from joey.app import App

    if not isinstance(app, App):
        return
    try:
        app.routes  # noqa: B018 - compiles the routes and the handler plans
    except Exception as exc:
        raise StartupError(f"{type(exc).__name__}: {exc}") from exc


__all__ = [
    "DEFAULT_MODULES",
    "STARTUP_FAILURE",
    "StartupError",
    "TargetError",
    "build_app",
    "load_app",
    "resolve_target",
]
