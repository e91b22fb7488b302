"""joey.server: the options serve checks, and finding an App's import string. Serving itself
is tested over real processes in tests/integration/test_serve.py. (``log_config=None``: no
logging set up by uvicorn inside the test process.)"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from joey import App
from joey.server import import_string, make_config
from tests.integration import apps


@pytest.fixture
def module_with_app() -> Iterator[tuple[types.ModuleType, App]]:
    module = types.ModuleType("joey_test_served")
    module.app = App()  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module, module.app  # type: ignore[attr-defined]
    del sys.modules[module.__name__]


def test_one_process_takes_the_app_object_itself() -> None:
    config = make_config(apps.streams, port=0, log_config=None)
    assert config.app is apps.streams and config.workers == 1 and not config.reload


@pytest.mark.parametrize("options", [{"workers": 2}, {"reload": True}])
def test_workers_and_reload_get_an_import_string(options: dict[str, object]) -> None:
    config = make_config(apps.streams, port=0, log_config=None, **options)  # type: ignore[arg-type]
    assert config.app == "tests.integration.apps:streams"


def test_a_string_is_passed_through() -> None:
    assert make_config("pkg.mod:app", workers=3, log_config=None).app == "pkg.mod:app"


def test_import_string_prefers_a_named_module_over_main(
    module_with_app: tuple[types.ModuleType, App], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, app = module_with_app
    main = types.ModuleType("__main__")
    main.application = app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert import_string(app) == "joey_test_served:app"
    del module.app  # type: ignore[attr-defined]
    assert import_string(app) == "__main__:application"  # a script: spawned workers load it


def test_import_string_of_a_module_run_with_dash_m(monkeypatch: pytest.MonkeyPatch) -> None:
    app = App()
    main = types.ModuleType("__main__")
    main.app = app  # type: ignore[attr-defined]
    main.__spec__ = types.SimpleNamespace(name="myproject.main")  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert import_string(app) == "myproject.main:app"


def test_an_app_made_in_a_function_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError) as refused:
        make_config(App(), workers=2)
    message = str(refused.value)
    assert "not an attribute of any imported module" in message
    assert 'joey.serve("myproject.main:app", workers=2)' in message
    with pytest.raises(ValueError, match=r"reload=True\)"):
        make_config(App(), reload=True)


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_workers_must_be_a_positive_whole_number(workers: object) -> None:
    with pytest.raises(ValueError, match="workers must be a whole number"):
        make_config("pkg.mod:app", workers=workers)  # type: ignore[arg-type]


def test_reload_and_workers_together_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be combined with workers"):
        make_config("pkg.mod:app", workers=2, reload=True)
