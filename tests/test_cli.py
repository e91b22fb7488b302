"""The `joey` command's shared parts: finding the app (``joey.cli``) and ``joey run``'s own
checks, before any server starts. Serving is proven over real processes in
tests/integration/test_run.py."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from joey import App, Router
from joey.__main__ import main
from joey.cli import TargetError, load_app, resolve_target
from joey.cli.run import docs_path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project directory as the cwd; sys.path and imported modules restored."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def _module(directory: Path, source: str) -> str:
    name = f"cli_app_{uuid.uuid4().hex[:8]}"
    (directory / f"{name}.py").write_text(source)
    return name


def test_a_module_alone_means_its_app(project: Path) -> None:
    assert resolve_target("myproject.main") == "myproject.main:app"
    assert resolve_target("myproject.main:api") == "myproject.main:api"


def test_without_a_target_main_py_then_app_py(project: Path) -> None:
    with pytest.raises(TargetError, match=r"neither main\.py nor app\.py is in"):
        resolve_target(None, str(project))
    (project / "app.py").write_text("")
    assert resolve_target(None, str(project)) == "app:app"
    (project / "main.py").write_text("")
    assert resolve_target(None, str(project)) == "main:app"


@pytest.mark.parametrize(("target", "message"), [
    ("main.py", r"is a file name; pass a module: main:app"),
    ("src/main.py:api", r"pass a module: src\.main:api"),
    ("not a module", r"is not module:attribute"),
    (":app", r"is not module:attribute"),
    ("main:1app", r"is not an attribute name"),
])
def test_malformed_targets(project: Path, target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        resolve_target(target)


def test_missing_module(project: Path) -> None:
    with pytest.raises(TargetError, match=r"No module named 'nothing_here' \(looked in "):
        load_app("nothing_here:app", str(project))


def test_a_failing_import_inside_the_module_is_not_called_missing(project: Path) -> None:
    name = _module(project, "import not_installed_anywhere\n")
    with pytest.raises(TargetError, match=rf"Importing '{name}' failed: ModuleNotFoundError: "
                                          r"No module named 'not_installed_anywhere'"):
        load_app(f"{name}:app", str(project))
    broken = _module(project, "raise RuntimeError('settings missing')\n")
    with pytest.raises(TargetError, match=r"failed: RuntimeError: settings missing"):
        load_app(f"{broken}:app", str(project))


def test_missing_attribute_names_the_apps_there(project: Path) -> None:
    name = _module(project, "from joey import App\napi = App()\nadmin = App()\n")
    with pytest.raises(TargetError, match=rf"has no attribute 'app'\. Apps in it: "
                                          rf"{name}:api, {name}:admin\."):
        load_app(f"{name}:app", str(project))
    empty = _module(project, "x = 1\n")
    with pytest.raises(TargetError, match=r"It defines no joey\.App at module level"):
        load_app(f"{empty}:app", str(project))


def test_not_an_asgi_app(project: Path) -> None:
    name = _module(project, "from joey import App\napp = 42\nApp_class = App\n")
    with pytest.raises(TargetError, match=r"is int 42, not an ASGI app"):
        load_app(f"{name}:app", str(project))
    with pytest.raises(TargetError, match=r"is type .*, not an ASGI app"):
        load_app(f"{name}:App_class", str(project))


def test_dotted_attribute_and_app_dir(project: Path, tmp_path_factory: pytest.TempPathFactory
                                      ) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    name = _module(elsewhere, "from joey import App\nclass holder:\n    app = App()\n")
    assert isinstance(load_app(f"{name}:holder.app", str(elsewhere)), App)


def _with_pages(*pages: tuple[str, str]) -> App:
    """An app with the routes App(openapi=...) adds: a router named "openapi"."""
    app = App()
    openapi = Router(name="openapi")
    for path, name in pages:
        openapi.get(path, name=name)(lambda: "page")
    app.include_router(openapi)
    return app


def test_docs_path_comes_from_the_route_model() -> None:
    assert docs_path(App()) is None
    assert docs_path(_with_pages(("/openapi.json", "document"))) is None
    assert docs_path(_with_pages(("/redoc", "redoc"), ("/docs", "swagger_ui"))) == "/docs"
    assert docs_path(_with_pages(("/redoc", "redoc"), ("/api/ui", "scalar"))) == "/api/ui"
    assert docs_path(object()) is None  # a plain ASGI app has no route model


def test_run_refuses_bad_options_before_importing(project: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "x:app", "--workers", "0"]) == 2
    assert "--workers must be 1 or more" in capsys.readouterr().err
    assert main(["run", "x:app", "--workers", "2", "--reload"]) == 2
    assert "cannot be combined with --workers" in capsys.readouterr().err


def test_run_with_a_wrong_target_says_so(project: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "joey run: No app given, and neither main.py nor app.py" in capsys.readouterr().err
    assert main(["run", "missing_mod:app"]) == 2
    assert "joey run: No module named 'missing_mod'" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "status"), [
    (["routes"], 3), (["openapi"], 3), (["worker"], 1)])
def test_commands_say_in_a_line_that_the_app_cannot_start(
    project: Path, capsys: pytest.CaptureFixture[str], command: list[str], status: int,
) -> None:
    """An app that cannot be built (here a bad signature) is one line naming the handler
    and its file:line, not a traceback through the command (issue #23). ``joey worker``
    keeps the status of its other failed startups."""
    name = _module(project, textwrap.dedent("""
        from joey import App
        from joey.tasks.redis import RedisTasks

        app = App(tasks=RedisTasks("redis://127.0.0.1:1/0"))  # never connected


        @app.get("/items")
        async def items(*names: str) -> list[str]:
            return list(names)
    """))
    assert main([*command, f"{name}:app"]) == status
    err = capsys.readouterr().err
    assert err.startswith(f"joey {command[0]}: {name}:app cannot start: TypeError: "), err
    assert f"{name}.items ({project / name}.py:" in err and "has *args/**kwargs" in err
    assert len(err.splitlines()) == 1, err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "run" in out and "routes" in out and "worker" in out


async def test_granian_worker_signal_drains_the_app_before_granian_stops() -> None:
    import asyncio
    import os
    import signal

    from joey.cli.granian import _drain_first

    calls: list[tuple[object, ...]] = []

    class Drains:
        shutdown_timeout = 3.0

        async def close_streams(self, timeout: float) -> None:  # noqa: ASYNC109
            calls.append(("streams", timeout))

        async def close_websockets(self, code: int, timeout: float) -> None:  # noqa: ASYNC109
            await asyncio.sleep(0.05)
            calls.append(("websockets", code, timeout))

    class GranianEvent:
        def __init__(self) -> None:
            self.sets: list[int] = []

        def set(self) -> None:
            self.sets.append(len(calls))  # how much of the drain had happened

    loop = asyncio.get_running_loop()
    event = GranianEvent()
    assert _drain_first(loop, Drains(), lambda _: event) is event
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal while draining changes nothing
        for _ in range(100):
            if event.sets:
                break
            await asyncio.sleep(0.01)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
    assert calls == [("streams", 3.0), ("websockets", 1001, 3.0)]
    assert event.sets == [2]  # Granian heard of the signal once, after the app drained
