"""Conditional requests (RFC 9110 §13): validators, preconditions, and what a 304 carries.

One evaluation for everything Joey answers with validators: routes that declare
:class:`~joey.caching.Caching` (an ``ETag`` hashed from the body, or the current
:class:`Validators` of the resource) and files (:class:`~joey.FileResponse`, and so
:class:`~joey.staticfiles.StaticFiles`).

The order in which a request's preconditions are evaluated (RFC 9110 §13.2.2):

1. ``If-Match`` present and no listed tag matches (strong comparison) → 412.
2. Otherwise ``If-Unmodified-Since`` present and the resource is newer → 412.
3. ``If-None-Match`` present and a listed tag matches (weak comparison) → 304 for GET/HEAD,
   412 for other methods.
4. Otherwise, for GET/HEAD, ``If-Modified-Since`` present and the resource is not newer → 304.

A date that is not a valid HTTP-date, or a date header sent more than once, is ignored
(RFC 9110 §13.1.3); dates without a zone (the obsolete asctime form) are GMT, as HTTP says,
whatever the server's time zone. A 304 repeats the headers a cache updates its copy with
(``ETag``, ``Last-Modified``, ``Cache-Control``, ``Vary``, ``Expires``...) and none of the
representation's own metadata (``Content-Type``, ``Content-Length``...: RFC 9110 §15.4.5).

Example::

    from joey.caching import Validators, evaluate_preconditions
    from joey.datastructures import Headers

    current = Validators(etag="v7")
    asked = Headers([(b"if-none-match", b'W/"v7"')])
    assert evaluate_preconditions("GET", asked, current) == 304
    assert evaluate_preconditions("PUT", asked, current) == 412
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime

from joey.datastructures import Headers, RawHeaders
from joey.exceptions import HTTPError

__all__ = [
    "PreconditionFailed",
    "Validators",
    "entity_tags",
    "etag_for",
    "evaluate_preconditions",
    "http_date",
    "not_modified_headers",
]

_ENTITY_TAG = re.compile(r'\s*((?:W/)?"[^"]*")\s*(?:,|$)')
_OPAQUE_TAG = re.compile(r'[\x21\x23-\x7e\x80-\xff]*')  # etagc (RFC 9110 §8.8.3)
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Representation metadata: not repeated by a 304 (Content-Location is, RFC 9110 §15.4.5).
_REPRESENTATION = frozenset({
    b"content-type", b"content-length", b"content-encoding", b"content-language",
    b"content-range", b"content-disposition", b"transfer-encoding"})


class PreconditionFailed(HTTPError):
    """412: a precondition of the request (``If-Match``, ``If-Unmodified-Since``,
    ``If-None-Match`` on an unsafe method) does not hold for the resource's current state."""

    status_code = 412

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(412, detail)


class Validators:
    """The current validators of a resource: its entity tag and when it last changed.

    ``etag`` is the opaque tag, quoted or not (``"v7"`` and ``'"v7"'`` are the same strong
    tag; ``'W/"v7"'`` is weak); ``last_modified`` a :class:`~datetime.datetime` (naive means
    UTC) or seconds since the epoch. Either may be omitted.

    Example::

        from datetime import UTC, datetime

        current = Validators(etag="v7", last_modified=datetime(2024, 5, 1, tzinfo=UTC))
        assert current.etag == '"v7"'
        assert current.headers() == [(b"etag", b'"v7"'),
                                     (b"last-modified", b"Wed, 01 May 2024 00:00:00 GMT")]
    """

    __slots__ = ("etag", "last_modified")

    def __init__(self, etag: str | None = None,
                 last_modified: datetime | float | None = None) -> None:
        self.etag = _quoted(etag) if etag is not None else None
        if isinstance(last_modified, datetime):
            if last_modified.tzinfo is None:
                last_modified = last_modified.replace(tzinfo=UTC)
            last_modified = last_modified.timestamp()
        #: whole seconds since the epoch (HTTP dates have no finer precision)
        self.last_modified = int(last_modified) if last_modified is not None else None

    def headers(self) -> RawHeaders:
        """``ETag`` and ``Last-Modified`` as raw response headers."""
        raw: RawHeaders = []
        if self.etag is not None:
            raw.append((b"etag", self.etag.encode("latin-1")))
        if self.last_modified is not None:
            raw.append((b"last-modified",
                        formatdate(self.last_modified, usegmt=True).encode("latin-1")))
        return raw

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Validators) and other.etag == self.etag
                and other.last_modified == self.last_modified)

    def __hash__(self) -> int:
        return hash((self.etag, self.last_modified))

    def __repr__(self) -> str:
        return f"Validators(etag={self.etag!r}, last_modified={self.last_modified!r})"


def _quoted(etag: str) -> str:
    weak = etag.startswith('W/"')
    opaque = etag[2:] if weak else etag
    if len(opaque) >= 2 and opaque[0] == opaque[-1] == '"':
        opaque = opaque[1:-1]
    if not _OPAQUE_TAG.fullmatch(opaque):
        raise ValueError(f"Invalid entity tag {etag!r}: no quotes, spaces or control "
                         "characters inside the tag")
    return f'{"W/" if weak else ""}"{opaque}"'


def etag_for(body: bytes) -> str:
    """A strong entity tag for ``body``: a hash of the bytes, nothing else.

    Example::

        assert etag_for(b"hello") == etag_for(b"hello") != etag_for(b"hello!")
    """
    # perf: SHA-1 runs on the CPU's SHA extensions (several times blake2b's speed on large
    # bodies); a validator needs to tell versions apart, not to resist a forger.
    digest = hashlib.sha1(body, usedforsecurity=False).digest()
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'


def entity_tags(value: str) -> list[str] | None:
    """The tags of an ``If-Match`` / ``If-None-Match`` value; ``None`` for ``*``."""
    if value.strip() == "*":
        return None
    return _ENTITY_TAG.findall(value)


def http_date(value: str | None) -> int | None:
    """Seconds since the epoch of an HTTP-date, any of its three forms; ``None`` when
    ``value`` is missing or not a date. A date without a zone is GMT (RFC 9110 §5.6.7).

    Example::

        assert http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
        assert http_date("Sun Nov  6 08:49:37 1994") == 784111777     # asctime: GMT too
        assert http_date("yesterday") is None
    """
    if value is None:
        return None
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):  # a year of 30 digits too
        return None  # an invalid date is ignored (RFC 9110 §13.1.3)


def _one_date(headers: Headers, name: str) -> int | None:
    values = headers.getlist(name)
    return http_date(values[0]) if len(values) == 1 else None


def evaluate_preconditions(method: str, headers: Headers, current: Validators | None,
                           ) -> int | None:
    """304 or 412 when the request's preconditions say so, else ``None`` (see the module
    docstring for the order). ``current`` is what the resource has now; ``None`` means it
    has no current representation (``If-Match`` fails, ``If-None-Match: *`` holds).

    A 412 for an unsafe method must be decided before the method changes anything: the
    route option ``Caching(validators=...)`` does that (see :mod:`joey.caching`).
    """
    etag = current.etag if current is not None else None
    last_modified = current.last_modified if current is not None else None
    if_match = headers.getlist("if-match")
    if if_match:
        tags = entity_tags(", ".join(if_match))
        if current is None or (tags is not None and (
                etag is None or etag.startswith("W/") or etag not in tags)):
            return 412  # strong comparison: a weak tag matches nothing
    elif last_modified is not None:
        since = _one_date(headers, "if-unmodified-since")
        if since is not None and last_modified > since:
            return 412
    safe = method in SAFE_METHODS
    if_none_match = headers.getlist("if-none-match")
    if if_none_match:
        if current is None:
            return None
        tags = entity_tags(", ".join(if_none_match))
        if tags is None or (etag is not None and etag.removeprefix("W/") in (
                tag.removeprefix("W/") for tag in tags)):
            return 304 if safe else 412
    elif safe and last_modified is not None:
        since = _one_date(headers, "if-modified-since")
        if since is not None and last_modified <= since:
            return 304
    return None


def not_modified_headers(headers: RawHeaders) -> RawHeaders:
    """What a 304 repeats of the 200 it stands for: every header but the representation's
    own metadata (``Content-Type``, ``Content-Length``, ``Content-Encoding``...)."""
    return [item for item in headers if item[0] not in _REPRESENTATION]
