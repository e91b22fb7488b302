"""Joey's built-in ASGI middlewares.

Each is a plain ASGI 3 class, ``Cls(app, **options)``, usable around a Joey app or any ASGI
app. See ``docs/middleware-builtins.md`` for options and the recommended order.
"""

from typing import TYPE_CHECKING

from joey.lazy import lazy_attributes
from joey.middleware.accesslog import AccessLogMiddleware
from joey.middleware.compression import DEFAULT_EXCLUDED_MEDIA_TYPES, CompressionMiddleware
from joey.middleware.cors import CORSMiddleware
from joey.middleware.csrf import CSRFMiddleware, csrf_token
from joey.middleware.httpsredirect import HTTPSRedirectMiddleware
from joey.middleware.requestid import RequestIDLogFilter, RequestIDMiddleware, get_request_id
from joey.middleware.security import SecurityHeadersMiddleware
from joey.middleware.trustedhost import TrustedHostMiddleware

if TYPE_CHECKING:
    from joey.middleware.session_data import Session
    from joey.middleware.session_stores import (
        MemoryStore,
        RedisStore,
        SessionStore,
        SessionStoreError,
    )
    from joey.middleware.sessions import SessionMiddleware

# The session middleware needs itsdangerous (the ``sessions`` extra): loaded on first use, so
# every other middleware imports with only its own extras (the session mapping and the stores
# need no extra).
_LAZY = {
    "MemoryStore": "joey.middleware.session_stores",
    "RedisStore": "joey.middleware.session_stores",
    "SessionStore": "joey.middleware.session_stores",
    "SessionStoreError": "joey.middleware.session_stores",
    "Session": "joey.middleware.session_data",
    "SessionMiddleware": "joey.middleware.sessions",
}


__getattr__ = lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "DEFAULT_EXCLUDED_MEDIA_TYPES",
    "AccessLogMiddleware",
    "CORSMiddleware",
    "CSRFMiddleware",
    "CompressionMiddleware",
    "HTTPSRedirectMiddleware",
    "MemoryStore",
    "RedisStore",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "SecurityHeadersMiddleware",
    "Session",
    "SessionMiddleware",
    "SessionStore",
    "SessionStoreError",
    "TrustedHostMiddleware",
    "csrf_token",
    "get_request_id",
]
