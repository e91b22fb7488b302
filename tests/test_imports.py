"""The public import surface: what `joey` exports, and what imports with which extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import joey
from joey import App, CallNext, Request, Response
from joey.testing import TestClient


def test_call_next_is_exported_for_handler_middleware() -> None:
    assert "CallNext" in joey.__all__
    app = App()

    @app.middleware
    async def tag(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        response.headers["x-tag"] = "1"
        return response

    @app.get("/")
    async def index() -> str:
        return "ok"

    with TestClient(app) as client:
        assert client.get("/").headers["x-tag"] == "1"


# Runs in a fresh interpreter where the optional packages cannot be imported, as after a
# plain `pip install joey` (only msgspec).
_WITHOUT_EXTRAS = """
import importlib.abc, sys

BLOCKED = {"itsdangerous", "brotli", "zstandard", "redis", "multipart", "python_multipart",
           "uvicorn", "httpx", "jwt", "opentelemetry"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""


def _run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60,
    )


def test_each_middleware_imports_without_other_extras() -> None:
    result = _run_without_extras("""
        from joey.middleware import (
            DEFAULT_EXCLUDED_MEDIA_TYPES, AccessLogMiddleware, CompressionMiddleware,
            CORSMiddleware, HTTPSRedirectMiddleware, RequestIDLogFilter, RequestIDMiddleware,
            SecurityHeadersMiddleware, TrustedHostMiddleware, get_request_id,
        )
        import joey
        CORSMiddleware(joey.App(), allow_origins=["https://example.com"])
        assert "joey.middleware.sessions" not in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_tracing_without_opentelemetry_names_the_extra_and_logs_still_work() -> None:
    result = _run_without_extras("""
        import io, json, logging
        import joey
        from joey.observability.logs import JSONFormatter

        app = joey.App()  # no tracing: nothing of OpenTelemetry is needed

        @app.get("/")
        async def index() -> str:
            return "ok"

        app.freeze()
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JSONFormatter())
        logging.getLogger("plain").addHandler(handler)
        logging.getLogger("plain").warning("hello")
        line = json.loads(stream.getvalue())
        assert line["message"] == "hello" and "trace_id" not in line
        print("ok")
        from joey.observability.tracing import Tracing
    """)
    assert result.returncode == 1
    assert result.stdout.strip() == "ok"
    assert "pip install 'joey[otel]'" in result.stderr


def test_sessions_without_itsdangerous_names_the_extra() -> None:
    result = _run_without_extras("""
        from joey.middleware import SessionMiddleware
    """)
    assert result.returncode == 1
    assert "pip install itsdangerous" in result.stderr


def test_session_mapping_and_stores_import_without_itsdangerous() -> None:
    """Issue 24: the session module split; a custom store needs no signing library."""
    result = _run_without_extras("""
        from joey.middleware import MemoryStore, Session, SessionStore, SessionStoreError
        assert isinstance(MemoryStore(), SessionStore)
        assert "joey.middleware.sessions" not in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_sessions_names_resolve_lazily() -> None:
    import joey.middleware as middleware
    from joey.middleware import sessions

    assert middleware.SessionMiddleware is sessions.SessionMiddleware
    assert middleware.SessionStoreError is sessions.SessionStoreError
    try:
        middleware.Nope  # noqa: B018
    except AttributeError as exc:
        assert "Nope" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")


def test_connection_security_and_channels_are_exported_from_joey() -> None:
    from joey.channels import Channels
    from joey.params.markers import Security
    from joey.requests import HTTPConnection

    assert (joey.HTTPConnection, joey.Security, joey.Channels) == (
        HTTPConnection, Security, Channels)
    assert {"HTTPConnection", "Security", "Channels"} <= set(joey.__all__)


def test_jwt_bearer_imports_from_joey_security_and_joey_needs_no_pyjwt() -> None:
    import joey.security
    from joey.security.jwt import JWTBearer, JWTCredentials

    assert (joey.security.JWTBearer, joey.security.JWTCredentials) == (JWTBearer,
                                                                      JWTCredentials)
    result = _run_without_extras("""
        import joey, joey.security
        from joey import App, Channels, HTTPConnection, Security
        from joey.security import HTTPBearer
        assert "jwt" not in sys.modules and "joey.security.jwt" not in sys.modules
        try:
            joey.security.JWTBearer
        except ModuleNotFoundError as exc:
            print("needs", exc.name)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "needs jwt"


def test_validation_error_and_csrf_import_from_where_users_look() -> None:
    import joey.middleware
    from joey.middleware.csrf import CSRFMiddleware, csrf_token
    from joey.params.issues import RequestValidationError, ValidationIssue

    # from joey (not joey.exceptions: the validation it reports imports that module)
    assert (joey.RequestValidationError, joey.ValidationIssue) == (RequestValidationError,
                                                                  ValidationIssue)
    assert (joey.middleware.CSRFMiddleware, joey.middleware.csrf_token) == (CSRFMiddleware,
                                                                           csrf_token)
