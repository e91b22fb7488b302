"""Joey: a fast, typed ASGI web framework.

Example::

    from joey import App

    app = App()

    @app.get("/hello/{name}")
    async def hello(name: str) -> dict[str, str]:
        return {"hello": name}
"""

from joey import status
from joey.app import App, Middleware
from joey.background import BackgroundTasks
from joey.datastructures import URL, Headers, MultiDict, MutableHeaders, QueryParams, State
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
from joey.files import FileResponse
from joey.forms import FormData, FormLimits, UploadFile
from joey.params import Body, Cookie, Depends, Form, Header, Query
from joey.requests import Request
from joey.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    ProblemResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
    TextResponse,
)
from joey.routing import Route, RouteConflict, Router
from joey.server import serve
from joey.sse import EventSourceResponse, ServerSentEvent
from joey.staticfiles import StaticFiles
from joey.tasks import Backoff, InMemoryTasks, QueueFull, TaskBackend, TaskInfo, TaskState
from joey.websockets import WebSocket, WebSocketState

__version__ = "0.1.0"

__all__ = [
    "URL",
    "App",
    "BackgroundTasks",
    "Backoff",
    "BadRequest",
    "Body",
    "Conflict",
    "Cookie",
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
    "MethodNotAllowed",
    "Middleware",
    "MultiDict",
    "MutableHeaders",
    "NotAcceptable",
    "NotFound",
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
