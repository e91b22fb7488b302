"""Templates: HTML pages rendered with Jinja2 (``pip install 'joey[templates]'``).

``Templates`` builds one Jinja2 environment when it is created (at import time of the app
module, like the routes): autoescaping on, ``url_for`` and ``url_path_for`` as globals, and
synchronous rendering unless asked otherwise. Each request only renders:
``await templates.render(request, name, context)`` returns a :class:`TemplateResponse`,
whose body is complete before the handler returns, so an error in a template is an error of
the handler (a 500, logged with the template's file and line; the debug page in
``App(debug=True)``).

Every template sees ``request``, ``url_path_for(name, **params)`` (the route's path, with the
app's ``root_path``) and ``url_for(name, **params)`` (its absolute URL, as in Starlette),
plus what the context processors return, plus the handler's context.

Rendering is synchronous by default: the handler awaits its data, then the template runs as
plain Python, which is what Jinja2 does fastest. ``Templates(..., enable_async=True)`` (or an
``env=`` created with it) renders asynchronously instead, so that a template may call async
functions and loop over async iterables from its context (Jinja2 awaits them), at about
twice the cost of a synchronous render. A synchronous ``Templates`` refuses a context value
that would need awaiting (a coroutine, an async function or iterable) with a ``TypeError``
that says so, rather than printing ``<coroutine object ...>`` into the page.

The response keeps ``template`` and ``context``; the test client exposes them
(:func:`joey.testing.rendered`), so a test can check what a page was rendered from.

Example::

    from joey import App, Request
    from joey.templating import TemplateResponse, Templates

    app = App()
    templates = Templates("templates")

    @app.get("/items/{id:int}", name="item")
    async def item(request: Request, id: int) -> TemplateResponse:
        return await templates.render(request, "item.html", {"id": id})

This module imports without Jinja2; creating ``Templates`` needs it.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from joey.requests import Request
from joey.responses import BackgroundCallable, HTMLResponse
from joey.types import Receive, Scope, Send

if TYPE_CHECKING:
    import jinja2

__all__ = ["ContextProcessor", "TemplateResponse", "Templates"]

#: ``processor(request) -> mapping``: values every template rendered for ``request`` sees
ContextProcessor = Callable[[Request], Mapping[str, Any]]

# The ASGI extension a test client sets to be told which template a response came from.
_DEBUG_EXTENSION = "http.response.debug"
# Jinja2 rewrites a traceback so that template code shows as frames at the template's file
# and line; those frames (and only those) have this global (jinja2.debug).
_JINJA_FRAME = "__jinja_exception__"


class TemplateResponse(HTMLResponse):
    """An HTML page rendered from a template; made by :meth:`Templates.render`.

    ``template`` (the ``jinja2.Template``) and ``context`` (what it was rendered with) stay on
    the response for middleware and tests; the body is already rendered.
    """

    __slots__ = ("context", "template")

    def __init__(
        self,
        template: jinja2.Template,
        context: dict[str, Any],
        content: str,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundCallable | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, media_type, background)
        self.template = template
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _DEBUG_EXTENSION in scope.get("extensions", ()):
            # Only a test client asks: real servers never see this message.
            await send({"type": _DEBUG_EXTENSION,
                        "info": {"template": self.template, "context": self.context}})
        await super().__call__(scope, receive, send)


class Templates:
    """A directory (or several) of Jinja2 templates and the environment that renders them.

    Args:
        directory: where templates are looked up (a path or a list of paths, searched in
            order); may be omitted when ``loader`` or ``env`` is given.
        context_processors: ``processor(request) -> mapping`` called for every render; what
            they return is in every template's context (the handler's context wins).
        env: a ready ``jinja2.Environment`` to use instead, synchronous or with
            ``enable_async=True`` (it decides how templates render); ``url_for`` and
            ``url_path_for`` are added to its globals.
        **options: more ``jinja2.Environment`` options (``loader``, ``undefined``,
            ``trim_blocks``, ``enable_async``...). ``autoescape`` defaults to on for every
            template except ``.txt`` files; ``enable_async`` to off (synchronous rendering).

    Example::

        templates = Templates("templates", context_processors=[lambda request: {"site": "Joey"}])
        streaming = Templates("templates", enable_async=True)  # templates may await
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        context_processors: Sequence[ContextProcessor] = (),
        env: jinja2.Environment | None = None,
        **options: Any,
    ) -> None:
        jinja = _import_jinja2()
        if env is None:
            if directory is None and "loader" not in options:
                raise TypeError("Templates needs a directory, a loader= or an env=")
            if directory is not None:
                options.setdefault("loader", jinja.FileSystemLoader(directory))
            options.setdefault("autoescape", jinja.select_autoescape(
                disabled_extensions=("txt",), default_for_string=True, default=True))
            env = jinja.Environment(**options)
            env.template_class = _fast_output_template(jinja)
        elif directory is not None or options:
            raise TypeError("Templates(env=...) takes no directory or environment options: "
                            "configure the environment you pass")
        env.globals.setdefault("url_for", _url_for)
        env.globals.setdefault("url_path_for", _url_path_for)
        self.env = env
        self.context_processors = tuple(context_processors)
        # Read once: the environment's mode decides how every render runs.
        self._async = bool(env.is_async)

    @property
    def is_async(self) -> bool:
        """Whether templates render asynchronously (``enable_async=True``) and may await."""
        return self._async

    def get_template(self, name: str) -> jinja2.Template:
        """The template called ``name`` (loaded once, then cached by Jinja2)."""
        try:
            return self.env.get_template(name)
        except Exception as exc:
            _locate(exc)
            raise

    async def render(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundCallable | None = None,
    ) -> TemplateResponse:
        """Render template ``name`` for ``request`` into a :class:`TemplateResponse`.

        The template sees ``request``, ``url_for``, ``url_path_for``, what the context
        processors return and ``context``. An error while loading or rendering it propagates
        with a note naming the template's file and line. Synchronous templates (the default)
        refuse a value that needs awaiting, naming it.
        """
        template = self.get_template(name)
        values: dict[str, Any] = {"request": request}
        for processor in self.context_processors:
            values.update(processor(request))
        if context:
            values.update(context)
        try:
            if self._async:
                content = await template.render_async(values)
            else:
                _refuse_async_values(name, values)
                # perf: Jinja2's synchronous render is plain generator code; its async render
                # pays for an async generator per block and an await per output expression.
                content = template.render(values)
        except Exception as exc:
            _locate(exc)
            if not self._async and isinstance(exc, TypeError) and _ASYNC_HINT.search(str(exc)):
                exc.add_note("these Templates render synchronously: create them with "
                             "Templates(..., enable_async=True) to let templates await")
            raise
        return TemplateResponse(template, values, content, status_code, headers, media_type,
                                background)


def _escape_replacing(text: str) -> str:
    """markupsafe's escaping of a ``str``, as five replacements (where its C speedup is not
    built)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&#39;").replace('"', "&#34;"))


def _output_escaper() -> Callable[[Any], str]:
    """``escape_output(value)``: what an autoescaped ``{{ value }}`` writes, the same text as
    ``markupsafe.escape(value)`` (an object's ``__html__`` is trusted, anything else is
    ``str()``-ed and escaped) as a plain ``str``: in output position the result is only ever
    joined into the page, so the ``Markup`` object is not needed."""
    import markupsafe

    inner = getattr(markupsafe, "_escape_inner", None)  # its str -> str core (C when built)
    escape_text: Callable[[str], str] = inner if callable(inner) else _escape_replacing

    def escape_output(value: Any) -> str:
        if type(value) is str:
            return escape_text(value)
        if hasattr(value, "__html__"):
            return str(value.__html__())
        return escape_text(str(value))

    return escape_output


def _fast_output_template(jinja: Any) -> type[jinja2.Template]:
    """A ``jinja2.Template`` class whose compiled templates escape their output with
    :func:`_output_escaper`'s function.

    perf: under autoescaping Jinja2 compiles ``{{ value }}`` to ``escape(value)``, and
    ``markupsafe.escape`` builds a ``Markup`` per value (a Python-level ``__new__``): most
    of the rendering time of a page that prints many values. In a compiled template the name
    ``escape`` serves output expressions only (filters and ``Markup`` import markupsafe's
    own), so rebinding it in the template's namespace changes the speed, not a byte of the
    page.
    """
    escape_output = _output_escaper()

    class FastOutputTemplate(jinja.Template):  # type: ignore[misc]
        @classmethod
        def from_code(cls, environment: Any, code: Any, globals: Any,
                      uptodate: Any = None) -> Any:
            template = super().from_code(environment, code, globals, uptodate)
            template.root_render_func.__globals__["escape"] = escape_output
            return template

    return FastOutputTemplate


# What Python says when synchronous code meets an awaitable: "'coroutine' object is not
# iterable", "'async_generator' object is not iterable"...
_ASYNC_HINT = re.compile(r"'(coroutine|async_generator)' object")
# Context values that are never awaitable: the common case skips the inspection.
_PLAIN = frozenset({str, int, float, bool, type(None), list, tuple, dict, set, bytes})


def _needs_await(value: Any) -> str | None:
    """What ``value`` is if a template would have to await it (else None)."""
    if type(value) in _PLAIN:
        return None
    if inspect.iscoroutinefunction(value):
        return "an async function"
    if inspect.isasyncgenfunction(value):
        return "an async generator function"
    if inspect.isawaitable(value):
        return "an awaitable"
    if isinstance(value, AsyncIterable):
        return "an async iterable"
    return None


def _refuse_async_values(name: str, values: Mapping[str, Any]) -> None:
    """Raise a ``TypeError`` naming the first value a synchronous template cannot await."""
    for key, value in values.items():
        if key != "request" and (kind := _needs_await(value)) is not None:
            if inspect.iscoroutine(value):
                value.close()  # never awaited: no "coroutine was never awaited" warning later
            raise TypeError(
                f"template {name!r} got {kind} as {key!r}, but these Templates render "
                "synchronously: await it in the handler and pass the result, or create "
                "Templates(..., enable_async=True) to let templates await"
            )


def _request_of(context: Mapping[str, Any], function: str) -> Request:
    request = context.get("request")
    if not isinstance(request, Request):
        raise RuntimeError(f"{function}() in a template needs the request in its context: "
                           "render it with Templates.render(request, ...)")
    return request


def _url_for(context: Mapping[str, Any], name: str, /, **params: Any) -> str:
    return str(_request_of(context, "url_for").url_for(name, **params))


def _url_path_for(context: Mapping[str, Any], name: str, /, **params: Any) -> str:
    return _request_of(context, "url_path_for").url_path_for(name, **params)


def _import_jinja2() -> Any:
    try:
        import jinja2
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "joey.templating needs Jinja2: pip install 'joey[templates]' (or pip install jinja2)",
            name=exc.name,
        ) from exc
    # Marked once here rather than decorated at import time, so this module loads without it.
    for function in (_url_for, _url_path_for):
        if not getattr(function, "jinja_pass_arg", None):
            jinja2.pass_context(function)
    return jinja2


def _locate(exc: BaseException) -> None:
    """Add a note to ``exc`` naming the template file and line it came from, if any (a
    missing template's message already names the search path)."""
    import jinja2

    where: str | None = None
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.lineno:
        where = f"{exc.filename or exc.name}, line {exc.lineno}"
    else:
        tb: TracebackType | None = exc.__traceback__
        while tb is not None:
            if _JINJA_FRAME in tb.tb_frame.f_globals:
                where = f"{tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno}"
            tb = tb.tb_next
    if where is not None:
        note = f"in template: {where}"
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
