"""Forms and uploads: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

:func:`parse_form` reads a request body as a stream of byte chunks and returns a
:class:`FormData` of strings and :class:`UploadFile` objects. The byte-level parsing is done by
``python-multipart`` (the ``joey[forms]`` extra); this module adds the limits, the decoding and
the temporary files.

Memory stays bounded whatever the client sends: non-file fields are capped one by one
(``max_field_size``) and together (``max_total_field_size``), file data beyond
``spool_max_size`` (shared by all files of one form) goes to temporary files on disk, and a
part's header section is capped (``max_header_size``). Everything is counted as it arrives, so
a limit fails the request as soon as it is crossed, not after the whole body was read.

Example::

    @app.post("/avatar")
    async def avatar(request: Request) -> dict[str, int]:
        content_type = request.headers.get("content-type", "")
        form = await parse_form(content_type, request.stream(), FormLimits(max_files=1))
        try:
            avatar = form["avatar"]          # an UploadFile (a plain field is a str)
            if not isinstance(avatar, UploadFile):
                raise BadRequest("avatar must be a file")
            data = await avatar.read()
        finally:
            await form.close()               # deletes the temporary files
        return {"size": len(data)}
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterable
from types import ModuleType
from typing import Any

from joey.datastructures import Headers, MultiDict, unquote_plus
from joey.exceptions import BadRequest, ContentTooLarge, UnsupportedMediaType
from joey.limits import DEFAULT_MAX_BODY_SIZE
from joey.uploads import UploadFile, close_all

__all__ = ["FormData", "FormLimits", "UploadFile", "parse_form"]

KiB = 1024
MiB = 1024 * KiB

# A real Content-Type for a form is well under 200 characters; capping it first keeps the
# parameter parser (quadratic on some quote/semicolon shapes) away from hostile input.
_MAX_CONTENT_TYPE_LENGTH = 1024
# RFC 2046 §5.1.1: 1 to 70 characters from this set, not ending with a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# The parser is fed slices no larger than this, so the data waiting to be written to disk
# after one ``write`` stays small even if a server hands over a huge chunk at once.
_FEED_SIZE = 256 * KiB


@dataclasses.dataclass(frozen=True, slots=True)
class FormLimits:
    """How much of a form body Joey accepts. Over a limit → 413; malformed → 400.

    The defaults suit ordinary HTML forms with a few uploads; set ``max_total_size`` (and
    ``max_part_size``) for routes that take large files.

    * ``max_fields``: number of non-file fields (1000).
    * ``max_files``: number of uploaded files (100).
    * ``max_field_size``: bytes in one non-file field, name included (1 MiB).
    * ``max_total_field_size``: bytes in all non-file fields together, all held in memory
      (4 MiB).
    * ``max_part_size``: bytes in one uploaded file (50 MiB).
    * ``max_total_size``: bytes in the whole body, as sent. ``None`` (the default): the body
      limit of the route that reads the form decides (its ``max_body_size``, else the app's,
      1 MiB by default), so ``FormLimits()`` never changes it; ``parse_form`` on its own
      takes :data:`~joey.limits.DEFAULT_MAX_BODY_SIZE`. A number replaces the app's body
      limit for that read (a route's own ``max_body_size`` still wins).
    * ``max_header_size``: bytes in one part's header section (8 KiB); no real client comes
      near it, so crossing it is treated as malformed input (400).
    * ``spool_max_size``: not a limit but a threshold: uploaded file data is kept in memory up
      to this many bytes *for the whole form*, then written to temporary files (1 MiB).

    Example::

        FormLimits(max_files=1, max_part_size=2 * 1024**3, max_total_size=2 * 1024**3 + 65536)
    """

    max_fields: int = 1000
    max_files: int = 100
    max_field_size: int = 1 * MiB
    max_total_field_size: int = 4 * MiB
    max_part_size: int = 50 * MiB
    max_total_size: int | None = None
    max_header_size: int = 8 * KiB
    spool_max_size: int = 1 * MiB


#: The limits of ``request.form()`` and of a ``Form()`` parameter.
DEFAULT_LIMITS = FormLimits()

FormValue = str | UploadFile


class FormData(MultiDict[FormValue]):
    """A parsed form: a read-only multi-valued mapping of strings and :class:`UploadFile`.

    ``form[name]`` gives the *last* value sent for ``name`` (as :class:`~joey.MultiDict`
    does), ``form.getlist(name)`` all of them in order. ``await form.close()`` (or
    ``async with form:``) closes every upload and deletes the temporary files.

    Example::

        async def chunks() -> AsyncIterator[bytes]:
            yield b"title=Holidays&tag=sea&tag=sun"

        async with await parse_form("application/x-www-form-urlencoded", chunks()) as form:
            assert form["title"] == "Holidays"
            assert form.getlist("tag") == ["sea", "sun"]
    """

    __slots__ = ()

    def files(self) -> list[UploadFile]:
        """Every uploaded file, in order."""
        return [value for _, value in self._items if isinstance(value, UploadFile)]

    async def close(self) -> None:
        """Close every :class:`UploadFile`, deleting its temporary file."""
        await close_all(self.files())

    async def __aenter__(self) -> FormData:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()




def _import_multipart() -> ModuleType:
    try:
        import python_multipart.multipart as multipart
    except ImportError:
        raise RuntimeError(
            "Parsing forms needs python-multipart (Joey's 'forms' extra): "
            "pip install python-multipart"
        ) from None
    return multipart


def _options(multipart: ModuleType, value: str | bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """A header value's type and parameters, both lower-cased: media types, disposition types
    and parameter names are case-insensitive (RFC 9110, RFC 6266). python-multipart lower-cases
    the parameter names, and the type only in its recent releases (0.0.18 keeps the case)."""
    kind, params = multipart.parse_options_header(value)
    return kind.lower(), {name.lower(): param for name, param in params.items()}


async def parse_form(
    content_type: str,
    stream: AsyncIterable[bytes],
    limits: FormLimits | None = None,
) -> FormData:
    """Parse a form body read chunk by chunk from ``stream``.

    ``content_type`` is the request's ``Content-Type`` header. Raises
    :class:`~joey.ContentTooLarge` (413) when a limit is crossed,
    :class:`~joey.BadRequest` (400) for malformed input and
    :class:`~joey.UnsupportedMediaType` (415) for a body that is not a form. On any error the
    temporary files created so far are deleted. The caller owns the returned form and must
    ``await form.close()`` once done (the request does it when it ends).

    Example::

        @app.post("/upload")
        async def upload(request: Request) -> list[str]:
            content_type = request.headers.get("content-type", "")
            async with await parse_form(content_type, request.stream()) as form:
                return [name for name, _ in form.multi_items()]
    """
    limits = limits if limits is not None else DEFAULT_LIMITS
    if limits.max_total_size is None:  # no route to ask: the app's default body limit
        limits = dataclasses.replace(limits, max_total_size=DEFAULT_MAX_BODY_SIZE)
    if len(content_type) > _MAX_CONTENT_TYPE_LENGTH:
        raise BadRequest("The Content-Type header is too long.")
    multipart = _import_multipart()
    try:
        media_type, params = _options(multipart, content_type)
    except (ValueError, UnicodeError):
        raise BadRequest("The Content-Type header is malformed.") from None
    parser: _FormParser
    if media_type == b"application/x-www-form-urlencoded":
        parser = _UrlencodedParser(multipart, limits)
    elif media_type == b"multipart/form-data":
        boundary = params.get(b"boundary", b"").decode("latin-1")
        if not _BOUNDARY.fullmatch(boundary):
            raise BadRequest(
                "A multipart/form-data body needs a boundary parameter of 1 to 70 characters "
                "(RFC 2046) in its Content-Type."
            )
        parser = _MultipartParser(multipart, limits, boundary.encode("latin-1"))
    else:
        raise UnsupportedMediaType(
            "Expected a form: application/x-www-form-urlencoded or multipart/form-data."
        )
    return await parser.run(stream)


class _FormParser:
    """The shared loop: count bytes, feed the parser, do the I/O its callbacks asked for."""

    __slots__ = ("items", "limits", "max_total", "multipart", "parser", "total",
                 "total_field_size")

    def __init__(self, multipart: ModuleType, limits: FormLimits) -> None:
        self.multipart = multipart
        self.limits = limits
        total = limits.max_total_size  # parse_form resolves None before building a parser
        self.max_total = total if total is not None else DEFAULT_MAX_BODY_SIZE
        self.items: list[tuple[str, FormValue]] = []
        self.total = 0
        self.total_field_size = 0
        self.parser: Any = None

    async def run(self, stream: AsyncIterable[bytes]) -> FormData:
        errors = (self.multipart.FormParserError, ValueError)
        try:
            async for chunk in stream:
                self.total += len(chunk)
                if self.total > self.max_total:
                    raise ContentTooLarge(f"The form body is larger than {self.max_total} bytes.")
                for start in range(0, len(chunk), _FEED_SIZE):
                    try:
                        self.parser.write(chunk[start : start + _FEED_SIZE])
                    except errors as error:
                        raise BadRequest(f"Malformed form body: {error}") from None
                    await self.flush()
            try:
                self.parser.finalize()
            except errors as error:
                raise BadRequest(f"Malformed form body: {error}") from None
            self.finish()
        except BaseException:
            # Also on cancellation (the client went away): no temporary file may outlive
            # the request.
            await close_all([v for _, v in self.items if isinstance(v, UploadFile)])
            raise
        return FormData(self.items)

    async def flush(self) -> None:
        """Do the I/O queued by the callbacks during the last ``write``."""

    def finish(self) -> None:
        """Check the body ended properly."""

    def add_field(self, name: bytes, value: bytes) -> None:
        self.items.append((_decode(name, "field name"), _decode(value, "field value")))

    def count_field_bytes(self, size: int, so_far: int) -> None:
        limits = self.limits
        if so_far + size > limits.max_field_size:
            raise ContentTooLarge(
                f"A form field is larger than {limits.max_field_size} bytes; "
                "send large content as a file upload."
            )
        self.total_field_size += size
        if self.total_field_size > limits.max_total_field_size:
            raise ContentTooLarge(
                f"The form fields together are larger than {limits.max_total_field_size} bytes."
            )

    def count_field(self, fields: int) -> None:
        if fields > self.limits.max_fields:
            raise ContentTooLarge(f"The form has more than {self.limits.max_fields} fields.")


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"A form {what} is not valid UTF-8.") from None


class _UrlencodedParser(_FormParser):
    __slots__ = ("fields", "name", "value")

    def __init__(self, multipart: ModuleType, limits: FormLimits) -> None:
        super().__init__(multipart, limits)
        self.name = bytearray()
        self.value = bytearray()
        self.fields = 0
        self.parser = multipart.QuerystringParser({
            "on_field_start": self.on_field_start,
            "on_field_name": self.on_field_name,
            "on_field_data": self.on_field_data,
            "on_field_end": self.on_field_end,
        })

    def on_field_start(self) -> None:
        self.fields += 1
        self.count_field(self.fields)
        self.name.clear()
        self.value.clear()

    def on_field_name(self, data: bytes, start: int, end: int) -> None:
        self.count_field_bytes(end - start, len(self.name) + len(self.value))
        self.name += data[start:end]

    def on_field_data(self, data: bytes, start: int, end: int) -> None:
        self.count_field_bytes(end - start, len(self.name) + len(self.value))
        self.value += data[start:end]

    def on_field_end(self) -> None:
        self.add_field(unquote_plus(self.name), unquote_plus(self.value))


class _MultipartParser(_FormParser):
    __slots__ = (
        "done", "field_name", "field_value", "fields", "files", "header_name", "header_size",
        "header_value", "headers", "memory_used", "pending", "upload",
    )

    def __init__(self, multipart: ModuleType, limits: FormLimits, boundary: bytes) -> None:
        super().__init__(multipart, limits)
        self.fields = 0
        self.files = 0
        self.done = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.header_size = 0
        self.field_name = b""
        self.field_value = bytearray()
        self.upload: UploadFile | None = None
        self.memory_used = 0  # bytes of file data held in memory, across all files
        self.pending: list[tuple[UploadFile, bytes]] = []
        options: dict[str, Any] = {}
        init_names = multipart.MultipartParser.__init__.__code__.co_varnames
        if "max_header_size" in init_names:
            # Newer python-multipart caps each header line itself; let it follow our limit
            # (the whole section is capped below, for every version).
            options["max_header_size"] = limits.max_header_size
        self.parser = multipart.MultipartParser(
            boundary,
            {
                "on_part_begin": self.on_part_begin,
                "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end,
                "on_end": self.on_end,
            },
            **options,
        )

    # The callbacks run synchronously inside ``parser.write``: they check limits and buffer,
    # and queue file data in ``pending`` for ``flush`` to write without blocking the loop.

    def on_part_begin(self) -> None:
        self.headers = []
        self.header_name.clear()
        self.header_value.clear()
        self.header_size = 0
        self.upload = None

    def _count_header_bytes(self, size: int) -> None:
        self.header_size += size
        if self.header_size > self.limits.max_header_size:
            raise BadRequest(
                f"A multipart part's header section is longer than "
                f"{self.limits.max_header_size} bytes."
            )

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self._count_header_bytes(4)  # ": " and CRLF: a flood of empty headers counts too
        self.headers.append((bytes(self.header_name).lower(), bytes(self.header_value).strip()))
        self.header_name.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self.headers if k == b"content-disposition"), None)
        if disposition is None:
            raise BadRequest("A multipart part has no Content-Disposition header.")
        kind, params = _options(self.multipart, disposition)
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise BadRequest('A multipart part needs "Content-Disposition: form-data; name=...".')
        if b"filename" in params:
            self.files += 1
            if self.files > self.limits.max_files:
                raise ContentTooLarge(f"The form has more than {self.limits.max_files} files.")
            upload = UploadFile(
                filename=_decode_lenient(params[b"filename"]),
                headers=Headers(self.headers),
                spool_max_size=self.limits.spool_max_size,
            )
            self.upload = upload
            # Listed at once (not at part end) so an error mid-file still closes it.
            self.items.append((_decode(name, "field name"), upload))
        else:
            self.fields += 1
            self.count_field(self.fields)
            self.field_name = name
            self.field_value = bytearray()
            self.count_field_bytes(len(name), 0)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        upload = self.upload
        if upload is None:
            self.count_field_bytes(size, len(self.field_name) + len(self.field_value))
            self.field_value += data[start:end]
            return
        assert upload.size is not None
        queued = sum(len(chunk) for file, chunk in self.pending if file is upload)
        if upload.size + queued + size > self.limits.max_part_size:
            raise ContentTooLarge(
                f"An uploaded file is larger than {self.limits.max_part_size} bytes."
            )
        self.pending.append((upload, data[start:end]))

    def on_part_end(self) -> None:
        if self.upload is None:
            self.add_field(self.field_name, bytes(self.field_value))
            self.field_value = bytearray()
        self.upload = None

    def on_end(self) -> None:
        self.done = True

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        budget = self.limits.spool_max_size
        for upload, chunk in pending:
            if upload.in_memory:
                if self.memory_used + len(chunk) > budget:
                    # The memory budget is shared by all files of the form, so a hundred
                    # small-but-not-tiny files cannot each keep a megabyte in memory.
                    self.memory_used -= upload.file.tell()
                    await upload.rollover()
                else:
                    self.memory_used += len(chunk)
            await upload.write(chunk)

    def finish(self) -> None:
        if not self.done:
            raise BadRequest("The multipart body ended before its closing boundary.")
        # Hand the files over ready to read from the start.
        for upload in (v for _, v in self.items if isinstance(v, UploadFile)):
            upload.file.seek(0)


def _decode_lenient(raw: bytes) -> str:
    # Browsers send file names as raw UTF-8; a legacy client may send latin-1. A name is only
    # informative, so it is never a reason to refuse the upload.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")

