"""What a route's caching adds to its API document: the response headers of its success
answer (``Cache-Control``, ``Vary``, ``ETag``, ``Last-Modified``, ``Age``, ``Cache-Status``),
and the 304 and 412 it can answer. The route model carries it (``RouteInfo.responses``), so
the document shows it without knowing about caching."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from joey.caching.conditional import SAFE_METHODS, PreconditionFailed
from joey.caching.policy import Caching

__all__ = ["caching_responses"]


def _header(description: str, example: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if example is not None:
        schema["examples"] = [example]
    return {"description": description, "schema": schema}


def caching_responses(caching: Caching, methods: Sequence[str], status: int,
                      ) -> dict[int, Any]:
    """OpenAPI response objects (status → object, or an exception class for the 412) for a
    route with ``caching`` answering ``methods`` with ``status``."""
    safe = any(method in SAFE_METHODS for method in methods)
    headers: dict[str, Any] = {}
    if caching.cache_control is not None:
        headers["Cache-Control"] = _header("How clients and shared caches may keep the answer.",
                                           caching.cache_control)
    if caching.vary:
        headers["Vary"] = _header("The request headers the answer depends on.",
                                  ", ".join(caching.vary))
    if safe and (caching.etag or caching.validators is not None):
        headers["ETag"] = _header("The entity tag of the representation: send it back in "
                                  "If-None-Match to get a 304 while it is current.")
    if safe and caching.validators is not None:
        headers["Last-Modified"] = _header("When the resource last changed, if known.")
    if safe and caching.store is not None:
        headers["Age"] = _header("Seconds the answer has been in the server's cache.")
        if caching.store.status_header:
            headers["Cache-Status"] = _header("What the server's cache did (RFC 9211).",
                                              "joey; hit; ttl=42")
    responses: dict[int, Any] = {}
    if headers:
        responses[status] = {"headers": headers}
    if safe and (caching.etag or caching.validators is not None):
        responses[304] = {"description": "Not Modified: the representation the client has "
                                         "(If-None-Match, If-Modified-Since) is current."}
    if caching.validators is not None and any(m not in SAFE_METHODS for m in methods):
        responses[412] = PreconditionFailed
    return responses
