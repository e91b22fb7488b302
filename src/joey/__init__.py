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
    Forbidden,
    Gone,
    HTTPError,
    InternalServerError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
    WebSocketDisconnect,
)
from joey.lazy import lazy_attributes
from joey.params import Body, Cookie, Depends, Form, Header, ParamInfo, Path, Query
from joey.requests import Request
from joey.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    ProblemResponse,
    RedirectResponse,
    Response,
    TextResponse,
)
from joey.routing import Route, RouteConflict, Router
from joey.streaming import StreamingResponse
from joey.websockets import WebSocket, WebSocketState

if TYPE_CHECKING:
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


__getattr__ = lazy_attributes(__name__, globals(), _LAZY)

__all__ = [
    "URL",
    "App",
    "BackgroundTasks",
    "Backoff",
    "BadRequest",
    "Body",
    "CallNext",
    "Conflict",
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
    "PayloadTooLarge",
    "PlainTextResponse",
    "ProblemResponse",
    "Query",
    "QueryParams",
    "QueueFull",
    "RedirectResponse",
    "Request",
    "Response",
    "Route",
    "RouteConflict",
    "RouteInfo",
    "Router",
    "ServerSentEvent",
    "ServiceUnavailable",
    "State",
    "StaticFiles",
    "StreamingResponse",
    "TaskBackend",
    "TaskInfo",
    "TaskState",
    "TextResponse",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableContent",
    "UnsupportedMediaType",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "serve",
    "status",
]
