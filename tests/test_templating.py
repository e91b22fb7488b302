"""Templates (joey.templating): rendering, context, url_for, escaping, async rendering, errors
that name the template's file and line, the test client's view of what was rendered, and
pages served by a real uvicorn (httptools and h11)."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jinja2
import markupsafe
import pytest

from joey import App, Request
from joey.templating import TemplateResponse, Templates
from joey.testing import RenderedTemplate, TestClient, rendered
from joey.types import Message
from tests.integration.servers import run_server, uvicorn_argv

PAGES = {
    "base.html": "<title>{% block title %}{% endblock %}</title>\n<main>{% block main %}"
                 "{% endblock %}</main>\n",
    "item.html": textwrap.dedent("""\
        {% extends "base.html" %}
        {% block title %}{{ name }}{% endblock %}
        {% block main %}<a href="{{ url_path_for('item', id=id) }}">{{ name }}</a>
        path={{ request.path }} site={{ site }}
        {{ 100 // divisor }}{% endblock %}
        """),
    "feed.html": "{% for entry in entries() %}[{{ entry }}]{% endfor %} {{ title() }}",
    "note.txt": "Hello {{ name }}",
    "broken.html": "<p>\n{% for x in items %}\n{{ x }\n",
    "links.html": "{{ url_for('nowhere') }}",
    "absolute.txt": "{{ url_for('item', id=3) }} {{ url_path_for('item', id=3) }}",
}


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in PAGES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def make_app(directory: Path) -> tuple[App, Templates]:
    app = App()
    templates = Templates(directory, context_processors=[lambda request: {"site": "Joey",
                                                                          "name": "default"}])

    @app.get("/items/{id:int}", name="item")
    async def item(request: Request, id: int, name: str = "box", divisor: int = 1
                   ) -> TemplateResponse:
        return await templates.render(request, "item.html",
                                      {"id": id, "name": name, "divisor": divisor})

    @app.get("/page/{name}")
    async def page(request: Request, name: str) -> TemplateResponse:
        return await templates.render(request, name, {"items": [1], "name": "<b>"},
                                      status_code=203, headers={"x-page": name})

    @app.get("/json")
    async def plain() -> dict[str, int]:
        return {"a": 1}

    return app, templates


def test_renders_with_request_url_for_and_processors(directory: Path) -> None:
    app, _ = make_app(directory)
    with TestClient(app) as client:
        response = client.get("/items/7?name=lamp")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.text == (
        '<title>lamp</title>\n<main><a href="/items/7">lamp</a>\n'
        "path=/items/7 site=Joey\n100</main>"
    )
    page = rendered(response)
    assert isinstance(page, RenderedTemplate) and page.name == "item.html"
    assert repr(page) == "<RenderedTemplate 'item.html'>"
    assert isinstance(page.template, jinja2.Template)
    # The handler's context wins over a processor's ("name"), the request is there.
    assert page.context["name"] == "lamp" and page.context["site"] == "Joey"
    assert page.context["id"] == 7 and isinstance(page.context["request"], Request)


def test_url_path_for_includes_the_root_path(directory: Path) -> None:
    app, _ = make_app(directory)
    with TestClient(app, root_path="/shop") as client:
        response = client.get("/items/3")
    assert '<a href="/shop/items/3">' in response.text


def test_url_for_is_the_absolute_url_as_in_starlette(directory: Path) -> None:
    app, _ = make_app(directory)
    with TestClient(app, root_path="/shop") as client:
        response = client.get("/page/absolute.txt", headers={"host": "example.com:8080"})
    assert response.text == "http://example.com:8080/shop/items/3 /shop/items/3"


def test_autoescaping_is_on_except_for_text_templates(directory: Path) -> None:
    app, _ = make_app(directory)
    attack = '<script>alert("x")</script>'
    with TestClient(app) as client:
        html = client.get("/items/1", params={"name": attack}).text
        text = client.get("/page/note.txt").text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert text == "Hello <b>"


def test_status_headers_and_head(directory: Path) -> None:
    app, _ = make_app(directory)
    with TestClient(app) as client:
        response = client.get("/page/note.txt")
        head = client.head("/page/note.txt")
    assert response.status_code == 203 and response.headers["x-page"] == "note.txt"
    assert head.status_code == 203 and head.content == b""
    assert head.headers["content-length"] == str(len("Hello <b>"))


async def test_async_rendering_awaits_coroutines_and_async_iterables(directory: Path) -> None:
    templates = Templates(directory, enable_async=True)
    assert templates.is_async and templates.env.is_async
    app = App()

    async def entries() -> AsyncIterator[str]:
        for entry in ("a", "b"):
            yield entry

    async def title() -> str:
        return "done"

    @app.get("/feed")
    async def feed(request: Request) -> TemplateResponse:
        return await templates.render(request, "feed.html", {"entries": entries, "title": title})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        response = await client.get("/feed")
    assert response.text == "[a][b] done"


def _async_frames_below_render() -> int:
    """How many coroutine or async-generator frames run between ``Templates.render`` and the
    caller (a function a template calls): none when the template renders synchronously."""
    frame = sys._getframe(1)
    count = 0
    while frame is not None and frame.f_code is not Templates.render.__code__:
        count += bool(frame.f_code.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR))
        frame = frame.f_back  # type: ignore[assignment]
    assert frame is not None, "not called from Templates.render"
    return count


PROBE = {"probe.html": "{% for i in range(2) %}{{ i }}{% endfor %}|{{ probe() }}|{{ name }}"}


@pytest.mark.parametrize("how", ["default", "env", "enable_async=False"])
async def test_templates_render_synchronously_unless_asked(how: str) -> None:
    loader = jinja2.DictLoader(PROBE)
    templates = {
        "default": lambda: Templates(loader=loader),
        "env": lambda: Templates(env=jinja2.Environment(loader=loader, autoescape=True)),
        "enable_async=False": lambda: Templates(loader=loader, enable_async=False),
    }[how]()
    assert not templates.is_async and not templates.env.is_async
    request = _request()
    response = await templates.render(request, "probe.html",
                                      {"probe": _async_frames_below_render, "name": "<b>"})
    assert response.body == b"01|0|&lt;b&gt;"  # no async frame; still escaped
    assert response.context["name"] == "<b>" and response.template.name == "probe.html"
    # An async environment does run the template as async code (the probe sees it).
    streaming = Templates(loader=loader, enable_async=True)
    response = await streaming.render(request, "probe.html",
                                      {"probe": _async_frames_below_render, "name": "b"})
    assert response.body.startswith(b"01|") and response.body != b"01|0|b"


async def test_a_synchronous_template_refuses_what_needs_awaiting(directory: Path) -> None:
    templates = Templates(directory)
    request = _request()

    async def entries() -> AsyncIterator[str]:
        yield "a"

    async def title() -> str:
        return "done"

    with pytest.raises(TypeError, match=r"template 'feed.html' got an async generator function "
                       r"as 'entries', .* render synchronously: await it in the handler .* "
                       r"Templates\(\.\.\., enable_async=True\)"):
        await templates.render(request, "feed.html", {"entries": entries, "title": str})
    with pytest.raises(TypeError, match="got an async function as 'title'"):
        await templates.render(request, "feed.html", {"entries": list, "title": title})
    # A coroutine object is closed when refused: no "never awaited" warning follows (the
    # suite turns warnings into errors).
    with pytest.raises(TypeError, match="got an awaitable as 'title'"):
        await templates.render(request, "feed.html", {"entries": list, "title": title()})
    with pytest.raises(TypeError, match="got an async iterable as 'entries'"):
        await templates.render(request, "feed.html", {"entries": entries(), "title": str})
    by_processor = Templates(directory, context_processors=[lambda r: {"title": title}])
    with pytest.raises(TypeError, match="got an async function as 'title'"):
        await by_processor.render(request, "feed.html", {"entries": list})

    # Reached deeper (a method the template calls), the template's own error says what to do.
    class Feed:
        async def entries(self) -> AsyncIterator[str]:
            yield "a"

    nested = Templates(loader=jinja2.DictLoader({"n.html": "{% for e in feed.entries() %}"
                                                            "{{ e }}{% endfor %}"}))
    with pytest.raises(TypeError, match="'async_generator' object is not iterable") as raised:
        await nested.render(request, "n.html", {"feed": Feed()})
    assert any("enable_async=True" in note for note in raised.value.__notes__)


# Every way a value reaches the page: plain text with each special character, numbers, None,
# a missing name, markup marked safe (a filter, a Markup value, an object with __html__),
# filters that escape, a macro's output, a captured block, an attribute and an item.
TRICKY = textwrap.dedent("""\
    {%- macro cell(v) %}<td>{{ v }}</td>{% endmacro -%}
    {%- set captured %}<i>{{ text }}</i>{% endset -%}
    {{ text }}|{{ number }}|{{ nothing }}|{{ missing }}|{{ markup }}|{{ html_object }}|
    {{ text | safe }}|{{ text | e }}|{{ text | upper }}|{{ [text, markup] | join(",") }}|
    {{ cell(text) }}|{{ captured }}|{{ row.message }}|{{ row["id"] }}|{{ "lit<" ~ text }}|
    {% for t in [text, markup, 3] %}[{{ t }}]{% endfor %}|{{ text if number else markup }}
    """)


class _HTMLObject:
    def __html__(self) -> str:
        return "<b>trusted</b>"


def _tricky_context() -> dict[str, object]:
    return {"text": "<a href=\"x\">Tom & Jerry's</a>", "number": 3.5, "nothing": None,
            "markup": markupsafe.Markup("<em>safe & sound</em>"), "html_object": _HTMLObject(),
            "row": {"message": "<script>alert('x')</script>", "id": 7}}


@pytest.mark.parametrize("enable_async", [False, True])
async def test_output_escaping_is_markupsafes_without_a_markup_per_value(
    enable_async: bool
) -> None:
    loader = jinja2.DictLoader({"tricky.html": TRICKY})
    reference = jinja2.Environment(loader=loader, autoescape=True, enable_async=enable_async)
    expected = await reference.get_template("tricky.html").render_async(_tricky_context()) \
        if enable_async else reference.get_template("tricky.html").render(_tricky_context())
    assert "&lt;a href=&#34;x&#34;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;" in expected

    templates = Templates(loader=loader, enable_async=enable_async)
    template = templates.get_template("tricky.html")
    # Output expressions escape to str: no markupsafe.escape, no Markup built per value...
    assert template.root_render_func.__globals__["escape"] is not markupsafe.escape
    response = await templates.render(_request(), "tricky.html", _tricky_context())
    assert response.body.decode() == expected  # ...and the page is the same, byte for byte


@pytest.mark.parametrize("text", ["", "plain", "<>&'\"", "a&amp;b", "&#39;", "é<ü>ß — 日本",
                                  "\x00<\n>", "<<>>&&''\"\""])
def test_the_python_escaping_is_markupsafes(text: str) -> None:
    # What output expressions use where markupsafe's C speedups are not built.
    from joey.templating import _escape_replacing

    assert _escape_replacing(text) == str(markupsafe.escape(text))


def test_a_given_environment_keeps_its_own_template_class() -> None:
    class Custom(jinja2.Template):
        pass

    env = jinja2.Environment(loader=jinja2.DictLoader({"a.html": "{{ x }}"}), autoescape=True)
    env.template_class = Custom
    templates = Templates(env=env)
    template = templates.get_template("a.html")
    assert type(template) is Custom and template.render(x="<") == "&lt;"


def test_the_response_keeps_template_and_context(directory: Path) -> None:
    app, templates = make_app(directory)
    seen: list[TemplateResponse] = []

    @app.middleware
    async def keep(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        seen.append(response)
        return response

    with TestClient(app) as client:
        client.get("/items/2")
    (response,) = seen
    assert isinstance(response, TemplateResponse)
    assert response.template is templates.get_template("item.html")
    assert response.context["id"] == 2


def test_rendered_refuses_a_response_without_a_template(directory: Path) -> None:
    app, _ = make_app(directory)
    with TestClient(app) as client:
        response = client.get("/json")
    with pytest.raises(AssertionError, match="GET /json answered 200 without rendering"):
        rendered(response)


def _request(app: App | None = None) -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    return Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                    "query_string": b""}, receive, app=app or App())


@pytest.mark.parametrize("enable_async", [False, True])
async def test_a_template_error_names_the_file_and_line(
    directory: Path, enable_async: bool
) -> None:
    templates = Templates(directory, enable_async=enable_async)
    request = _request(make_app(directory)[0])
    with pytest.raises(ZeroDivisionError) as raised:
        await templates.render(request, "item.html", {"id": 1, "divisor": 0})
    assert raised.value.__notes__ == [f"in template: {directory / 'item.html'}, line 5"]
    with pytest.raises(jinja2.TemplateSyntaxError) as syntax:
        await templates.render(request, "broken.html")
    assert syntax.value.__notes__ == [f"in template: {directory / 'broken.html'}, line 3"]
    with pytest.raises(jinja2.TemplateNotFound, match=r"missing\.html"):
        await templates.render(request, "missing.html")
    with pytest.raises(LookupError, match="No route named 'nowhere'") as lookup:
        await templates.render(request, "links.html")
    assert lookup.value.__notes__ == [f"in template: {directory / 'links.html'}, line 1"]


async def test_a_template_error_is_a_logged_500(
    directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(directory)
    # httpx's own transport: the app answers as it would a server (no test-client raising).
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        with caplog.at_level(logging.ERROR, logger="joey"):
            response = await client.get("/items/1?divisor=0")
            broken = await client.get("/page/broken.html")
    assert response.status_code == 500 and broken.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "ZeroDivisionError" not in response.text  # not a debug app
    logged = "\n".join(r.getMessage() + "\n" + (r.exc_text or "") for r in caplog.records)
    assert f"in template: {directory / 'item.html'}, line 5" in logged
    assert f"in template: {directory / 'broken.html'}, line 3" in logged


def test_configuration_errors(directory: Path) -> None:
    with pytest.raises(TypeError, match="needs a directory, a loader= or an env="):
        Templates()
    with pytest.raises(TypeError, match="takes no directory"):
        Templates(directory, env=jinja2.Environment(enable_async=True))


def test_a_given_environment_or_loader(directory: Path) -> None:
    env = jinja2.Environment(enable_async=True, loader=jinja2.DictLoader(
        {"hi.html": "{{ url_for('hi') }} {{ who }}"}))
    app = App()
    from_env = Templates(env=env)
    from_loader = Templates(loader=jinja2.DictLoader({"hi.html": "{{ who }}!"}))
    assert from_env.env is env and env.globals["url_for"] is from_loader.env.globals["url_for"]

    @app.get("/hi", name="hi")
    async def hi(request: Request) -> TemplateResponse:
        return await from_env.render(request, "hi.html", {"who": "<i>"})

    @app.get("/bang")
    async def bang(request: Request) -> TemplateResponse:
        return await from_loader.render(request, "hi.html", {"who": "<i>"})

    with TestClient(app) as client:
        # the given env: autoescape is its choice
        assert client.get("/hi").text == "http://testserver/hi <i>"
        assert client.get("/bang").text == "&lt;i&gt;!"


@pytest.mark.parametrize("enable_async", [False, True])
async def test_url_for_without_a_request_says_how(enable_async: bool) -> None:
    templates = Templates(loader=jinja2.DictLoader({"x.html": "{{ url_for('a') }}"}),
                          enable_async=enable_async)
    template = templates.get_template("x.html")
    with pytest.raises(RuntimeError, match=r"needs the request .* Templates\.render"):
        if enable_async:
            await template.render_async({})
        else:
            template.render({})


def test_importable_without_jinja2() -> None:
    code = textwrap.dedent("""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"jinja2", "markupsafe"}:
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        from joey.templating import TemplateResponse, Templates
        try:
            Templates("templates")
        except ModuleNotFoundError as exc:
            print(exc)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'joey[templates]'" in result.stdout


APP_MODULE = '''
from pathlib import Path

from joey import App, Request
from joey.templating import TemplateResponse, Templates

app = App()
templates = Templates(Path(__file__).parent / "templates")


@app.get("/items/{id:int}", name="item")
async def item(request: Request, id: int, name: str = "box", divisor: int = 1
               ) -> TemplateResponse:
    return await templates.render(request, "item.html",
                                  {"id": id, "name": name, "divisor": divisor, "site": "real"})
'''


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_pages_over_real_http(http: str, directory: Path, tmp_path: Path) -> None:
    (tmp_path / "templated_app.py").write_text(APP_MODULE, encoding="utf-8")
    argv = uvicorn_argv("templated_app:app", "--app-dir", str(tmp_path), "--http", http)
    with run_server(argv, tmp_path, ready_path="/items/1") as server:
        response = httpx.get(server.base_url + "/items/5", params={"name": "<x>"}, timeout=10)
        failed = httpx.get(server.base_url + "/items/5?divisor=0", timeout=10)
        output = server.output
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<a href="/items/5">&lt;x&gt;</a>' in response.text and "site=real" in response.text
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert f"in template: {directory / 'item.html'}, line 5" in output
