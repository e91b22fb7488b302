"""Serve an app under uvicorn, with Joey's graceful shutdown, in one or several processes.

Plain ``uvicorn module:app`` works too. The difference is at shutdown: uvicorn closes open
WebSockets itself with code 1012 ("service restart") *before* the app hears about the
shutdown, and waits for open streams forever unless given ``--timeout-graceful-shutdown``.
``joey.serve`` first ends open streams (an SSE stream sends a last event and a ``retry:``
hint) and closes WebSockets with 1001, waiting for their handlers (up to
``app.shutdown_timeout``), then lets uvicorn shut down as usual, shutdown hooks included.
That holds in every process: with ``workers=N`` and under ``reload=True`` too
(see :mod:`joey._serving`).

Worker processes and the reloader's child import the app themselves, so they need to know
where it lives: pass ``"module:attribute"``, or an ``App`` that is a module-level attribute
of an imported module (``serve`` finds it).

Example::

    import joey

    if __name__ == "__main__":
        joey.serve(app, host="127.0.0.1", port=8000, workers=4)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

    from joey.app import App


def serve(
    app: App | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    reload: bool = False,
    **options: Any,
) -> None:
    """Run ``app`` (an App or a ``"module:attribute"`` string) under uvicorn until stopped
    (SIGTERM, or Ctrl+C, which ends quietly).

    ``workers=N`` runs N processes sharing the port; ``reload=True`` restarts the server
    when a file under ``reload_dirs`` (default: the current directory) changes. Extra
    keyword arguments go to ``uvicorn.Config`` (``log_level``, ``http``, ``reload_dirs``,
    ``timeout_graceful_shutdown``...). Exits with status 3 if the app fails to start, or a
    worker does (as when this call is not under ``if __name__ == "__main__":``, which
    workers need: they import the script again). Needs the ``server`` extra
    (``pip install joey[server]``).
    """
    config = make_config(app, host=host, port=port, workers=workers, reload=reload, **options)
    from joey._serving import run

    status = run(config)
    if status:
        sys.exit(status)


def _refuse_unguarded_call() -> None:
    """Stop a worker process that runs into ``serve`` while it imports the main script.

    Worker processes (``workers=N``, the reloader's child) are spawned: each imports the
    script that started the server again, as ``__mp_main__``. A ``serve`` call at the top of
    that script, not under ``if __name__ == "__main__":``, would then start servers of its
    own in every worker, which fail, and their supervisor would start them again. Instead
    the worker says what to change and exits with status 3 (its supervisor then stops: a
    worker that failed to start)."""
    import multiprocessing

    # multiprocessing's own flag for "still importing the parent's main module" (its
    # spawn.py refuses to start processes while it is set, for the same reason)
    if not getattr(multiprocessing.current_process(), "_inheriting", False):
        return
    script = "the script"
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "__mp_main__":
            script = str(frame.f_globals.get("__file__", script))
            break
        frame = frame.f_back  # type: ignore[assignment]
    print(f"joey: the server was started again in a worker process, which imports {script} "
          f"as every worker does: put the joey.serve(...) call under "
          f"`if __name__ == \"__main__\":` in {script}, so that only the process you started "
          f"runs it.", file=sys.stderr, flush=True)
    raise SystemExit(3)


def make_config(
    app: App | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    reload: bool = False,
    **options: Any,
) -> uvicorn.Config:
    """The ``uvicorn.Config`` that :func:`serve` runs, after checking the options (a
    ``ValueError`` says what is wrong). ``joey._serving.run(config)`` serves it."""
    _refuse_unguarded_call()
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError("joey.serve needs uvicorn: pip install 'joey[server]'") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number of processes, 1 or more; "
                         f"got {workers!r}.")
    if reload and workers > 1:
        raise ValueError("reload=True runs one process that restarts on changes; it cannot "
                         "be combined with workers. Use reload while developing, workers "
                         "in production.")
    target: Any = app
    if (workers > 1 or reload) and not isinstance(app, str):
        target = import_string(app, "reload=True" if reload else f"workers={workers}")
    return uvicorn.Config(target, host=host, port=port, workers=workers, reload=reload,
                          **options)


def import_string(app: object, why: str = "workers") -> str:
    """``"module:attribute"`` naming ``app`` in an imported module, for processes that must
    import it themselves. A script run as ``python app.py`` is ``__main__``: worker processes
    are spawned, and a spawned process loads the parent's main script under that name too.

    Raises ``ValueError`` (saying what to pass instead) if ``app`` is nowhere to be found.
    """
    found: list[tuple[bool, str, str]] = []
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or module_name == "__mp_main__":
            continue
        for attribute, value in list(namespace.items()):
            if value is app and attribute.isidentifier():
                found.append((module_name == "__main__", module_name, attribute))
    if not found:
        raise ValueError(
            f"joey.serve({why}) starts processes that import the app themselves, and this "
            f"{type(app).__name__} is not an attribute of any imported module (made in a "
            f"function?). Pass its import string instead, e.g. "
            f"joey.serve(\"myproject.main:app\", {why}), with a module-level `app`."
        )
    _, module_name, attribute = min(found)  # a named module before __main__
    if module_name == "__main__":
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            module_name = spec.name  # `python -m package.module`: import it by name
    return f"{module_name}:{attribute}"


__all__ = [
    "import_string",
    "make_config",
    "serve",
]
