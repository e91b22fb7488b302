"""Joey: a fast, typed ASGI web framework.

Example::

    from joey import App

    app = App()

    @app.get("/hello/{name}")
    async def hello(name: str) -> dict[str, str]:
        return {"hello": name}
"""

from typing import TYPE_CHECKING

from joey import status
from joey.app import App, CallNext, Middleware
from joey.background import BackgroundTasks
from joey.datastructures import URL, Headers, MultiDict, MutableHeaders, QueryParams, State
from joey.declarations import LateDeclaration
from joey.exceptions import (
    BadRequest,
    Conflict,
    ContentTooLarge,
    Forbidden,
    Gone,
    HTTPError,
    InternalServerError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
    WebSocketDisconnect,
)
from joey.lazy import lazy_attributes
from joey.params import Body, Cookie, Depends, Form, Header, ParamInfo, Path, Query
from joey.params.issues import RequestValidationError, ValidationIssue
from joey.params.markers import Security
from joey.requests import HTTPConnection, Request
from joey.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    ProblemResponse,
    RedirectResponse,
    Response,
)
from joey.routing import Route, RouteConflict, Router
from joey.streaming import StreamingResponse
from joey.websockets import WebSocket, WebSocketState

if TYPE_CHECKING:
    from joey.channels import Channels
    from joey.files import FileResponse
    from joey.forms import FormData, FormLimits
    from joey.routeinfo import DependencyInfo, MountInfo, RouteInfo
    from joey.server import serve
    from joey.sse import EventSourceResponse, ServerSentEvent
    from joey.staticfiles import StaticFiles
    from joey.tasks import Backoff, InMemoryTasks, QueueFull, TaskBackend, TaskInfo, TaskState
    from joey.uploads import UploadFile

__version__ = "0.1.0"

# perf: optional parts load on first use, so `import joey` stays small (see benchmarks/).
_LAZY = {
    **dict.fromkeys(("DependencyInfo", "MountInfo", "RouteInfo"), "joey.routeinfo"),
    "Channels": "joey.channels",
    "FileResponse": "joey.files",
    "FormData": "joey.forms",
    "FormLimits": "joey.forms",
    "UploadFile": "joey.uploads",
    "serve": "joey.server",
    "EventSourceResponse": "joey.sse",
    "ServerSentEvent": "joey.sse",
    "StaticFiles": "joey.staticfiles",
    "Backoff": "joey.tasks",
    "InMemoryTasks": "joey.tasks",
    "QueueFull": "joey.tasks",
    "TaskBackend": "joey.tasks",
    "TaskInfo": "joey.tasks",
    "TaskState": "joey.tasks",
}

# Old names, kept as aliases that warn when used (see docs/errors.md, "Deprecated names").
_DEPRECATED = {"PayloadTooLarge": "ContentTooLarge", "TextResponse": "PlainTextResponse"}

if TYPE_CHECKING:  # so that code using an old name still type-checks while it migrates
    PayloadTooLarge = ContentTooLarge
    TextResponse = PlainTextResponse

__getattr__ = lazy_attributes(__name__, globals(), _LAZY, deprecated=_DEPRECATED)

__all__ = [
    "URL",
    "App",
    "BackgroundTasks",
    "Backoff",
    "BadRequest",
    "Body",
    "CallNext",
    "Channels",
    "Conflict",
    "ContentTooLarge",
    "Cookie",
    "DependencyInfo",
    "Depends",
    "EventSourceResponse",
    "FileResponse",
    "Forbidden",
    "Form",
    "FormData",
    "FormLimits",
    "Gone",
    "HTMLResponse",
    "HTTPConnection",
    "HTTPError",
    "Header",
    "Headers",
    "InMemoryTasks",
    "InternalServerError",
    "JSONResponse",
    "LateDeclaration",
    "MethodNotAllowed",
    "Middleware",
    "MountInfo",
    "MultiDict",
    "MutableHeaders",
    "NotAcceptable",
    "NotFound",
    "ParamInfo",
    "Path",
    "PlainTextResponse",
    "ProblemResponse",
    "Query",
    "QueryParams",
    "QueueFull",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "Route",
    "RouteConflict",
    "RouteInfo",
    "Router",
    "Security",
    "ServerSentEvent",
    "ServiceUnavailable",
    "State",
    "StaticFiles",
    "StreamingResponse",
    "TaskBackend",
    "TaskInfo",
    "TaskState",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableContent",
    "UnsupportedMediaType",
    "UploadFile",
    "ValidationIssue",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "serve",
    "status",
]
