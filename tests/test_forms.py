"""Form parsing in memory: shapes a browser sends, and shapes an attacker sends."""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any

import pytest

from joey.exceptions import BadRequest, ContentTooLarge, UnsupportedMediaType
from joey.forms import FormData, FormLimits, UploadFile, parse_form

URLENCODED = "application/x-www-form-urlencoded"
BOUNDARY = "----joeyBoundary7MA4YWxk"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


# A total far above what the tests send, so that the limit under test is the one that acts
# (parse_form alone otherwise takes the default body limit, 1 MiB).
ROOMY_TOTAL = 100 * 1024 * 1024
ROOMY = FormLimits(max_total_size=ROOMY_TOTAL)

async def chunks(*parts: bytes, size: int | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        if size is None:
            yield part
        else:
            for start in range(0, len(part), size):
                yield part[start : start + size]


def multipart_body(parts: Iterable[tuple[str, str | tuple[str, bytes, str]]],
                   boundary: str = BOUNDARY, close: bool = True) -> bytes:
    out = bytearray()
    for name, value in parts:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, str):
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode()
        else:
            filename, content, content_type = value
            out += (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {content_type}\r\n\r\n").encode()
            out += content
        out += b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return bytes(out)


class Recorder:
    """Counts what a generator produced, to prove a limit stops reading early."""

    def __init__(self) -> None:
        self.produced = 0

    async def endless(self, head: bytes, filler: bytes) -> AsyncIterator[bytes]:
        yield head
        while True:
            self.produced += len(filler)
            yield filler


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every SpooledTemporaryFile the parser creates, to check they all get closed."""
    created: list[Any] = []
    original = tempfile.SpooledTemporaryFile

    def factory(*args: Any, **kwargs: Any) -> Any:
        file = original(*args, **kwargs)
        created.append(file)
        return file

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", factory)
    return created


# --- urlencoded ---------------------------------------------------------------------------

async def test_urlencoded_fields_repeats_and_decoding() -> None:
    form = await parse_form(URLENCODED, chunks(b"a=1&b=h%C3%A9+x&a=2&empty=&flag&&"))
    assert form.multi_items() == [("a", "1"), ("b", "hé x"), ("a", "2"), ("empty", ""),
                                  ("flag", "")]
    assert form["a"] == "2"
    assert form.getlist("a") == ["1", "2"]
    assert form.getlist("missing") == []


async def test_urlencoded_split_at_every_byte() -> None:
    body = b"name=J%C3%B6rg+M&x=%26%3D"
    form = await parse_form(URLENCODED, chunks(body, size=1))
    assert dict(form) == {"name": "Jörg M", "x": "&="}


async def test_urlencoded_charset_parameter_and_empty_body() -> None:
    form = await parse_form(f"{URLENCODED}; charset=UTF-8", chunks())
    assert len(form) == 0


async def test_urlencoded_invalid_utf8_is_400() -> None:
    with pytest.raises(BadRequest, match="UTF-8"):
        await parse_form(URLENCODED, chunks(b"a=%FF%FE"))


async def test_urlencoded_thousands_of_tiny_fields_is_413_early() -> None:
    recorder = Recorder()
    with pytest.raises(ContentTooLarge, match="more than 1000 fields"):
        await parse_form(URLENCODED, recorder.endless(b"", b"a=1&" * 100))
    assert recorder.produced < 10_000


async def test_urlencoded_huge_value_is_413_early() -> None:
    recorder = Recorder()
    with pytest.raises(ContentTooLarge, match="A form field is larger"):
        await parse_form(URLENCODED, recorder.endless(b"a=", b"x" * 65536),
                         FormLimits(max_field_size=100_000))
    assert recorder.produced < 200_000


async def test_urlencoded_total_field_size() -> None:
    body = b"&".join(b"f%d=%s" % (i, b"x" * 900) for i in range(10))
    with pytest.raises(ContentTooLarge, match="together"):
        await parse_form(URLENCODED, chunks(body), FormLimits(max_total_field_size=5000))


async def test_total_size_limit() -> None:
    with pytest.raises(ContentTooLarge, match="larger than 1000 bytes"):
        await parse_form(URLENCODED, chunks(b"a=" + b"x" * 2000, size=100),
                         FormLimits(max_total_size=1000))


# --- content type --------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
async def test_not_a_form_is_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        await parse_form(content_type, chunks(b"{}"))


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; boundary=" + "a" * 71,
        "multipart/form-data; boundary=bad\x00byte",
        "multipart/form-data; boundary=tab\there",
        "multipart/form-data; boundary=ends-with-space ",
    ],
)
async def test_missing_or_bad_boundary_is_400(content_type: str) -> None:
    with pytest.raises(BadRequest, match="boundary"):
        await parse_form(content_type, chunks(b"--x--\r\n"))


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; " + "a=b; " * 50_000,
        'multipart/form-data; boundary="' + ";" * 100_000,
        "multipart/form-data; boundary=" + '"\\' * 50_000,
        "x" * 1_000_000,
    ],
)
async def test_pathological_content_type_is_400_fast(content_type: str) -> None:
    started = time.perf_counter()
    with pytest.raises(BadRequest):
        await parse_form(content_type, chunks(b""))
    assert time.perf_counter() - started < 0.5


async def test_content_type_beyond_latin1_is_400() -> None:
    with pytest.raises(BadRequest, match="malformed"):
        await parse_form("multipart/form-data; boundary=\u20ac", chunks(b""))


async def test_quoted_boundary_and_extra_parameters() -> None:
    body = multipart_body([("a", "1")], boundary="b:=?c")
    form = await parse_form('Multipart/Form-Data; charset=utf-8; boundary="b:=?c"', chunks(body))
    assert form["a"] == "1"


async def test_media_and_disposition_types_are_case_insensitive() -> None:
    # RFC 9110 and RFC 6266; python-multipart 0.0.18 lower-cases neither type.
    body = multipart_body([("a", "1")]).replace(b"form-data;", b"Form-Data;")
    form = await parse_form(f"MULTIPART/Form-Data; Boundary={BOUNDARY}", chunks(body))
    assert form["a"] == "1"
    urlencoded = await parse_form("Application/X-WWW-Form-Urlencoded", chunks(b"b=2"))
    assert urlencoded["b"] == "2"


# --- multipart -----------------------------------------------------------------------------

async def test_multipart_fields_and_files() -> None:
    body = multipart_body([
        ("title", "Holidays ☀"),
        ("photo", ("beach.jpg", b"\xff\xd8jpeg-bytes", "image/jpeg")),
        ("photo", ("Grüße.txt", b"", "text/plain")),
        ("title", "second"),
    ])
    async with await parse_form(MULTIPART, chunks(body)) as form:
        assert form["title"] == "second"
        assert form.getlist("title") == ["Holidays ☀", "second"]
        first, second = form.getlist("photo")
        assert isinstance(first, UploadFile) and isinstance(second, UploadFile)
        assert first.filename == "beach.jpg"
        assert first.content_type == "image/jpeg"
        assert first.headers["content-type"] == "image/jpeg"
        assert first.size == len(b"\xff\xd8jpeg-bytes")
        assert await first.read() == b"\xff\xd8jpeg-bytes"
        assert second.filename == "Grüße.txt" and second.size == 0
        assert form.files() == [first, second]
        assert "photo" in form and len(form) == 2 and list(form) == ["title", "photo"]
    assert first.closed and second.closed


async def test_multipart_split_at_every_byte_gives_the_same_form() -> None:
    body = multipart_body([("a", "x\r\n--not-the-boundary\r\n"),
                           ("f", ("f.bin", bytes(range(256)) * 4, "application/octet-stream"))])
    whole = await parse_form(MULTIPART, chunks(body))
    bytewise = await parse_form(MULTIPART, chunks(body, size=1))
    assert whole["a"] == bytewise["a"] == "x\r\n--not-the-boundary\r\n"
    for form in (whole, bytewise):
        upload = form["f"]
        assert isinstance(upload, UploadFile)
        assert await upload.read() == bytes(range(256)) * 4
        await form.close()


async def test_preamble_epilogue_and_leading_newlines_are_ignored() -> None:
    body = b"\r\n" + multipart_body([("a", "1")]) + b"epilogue text"
    form = await parse_form(MULTIPART, chunks(body))
    assert form["a"] == "1"


async def test_large_file_rolls_to_disk_and_small_stays_in_memory(spooled: list[Any]) -> None:
    big = b"0123456789abcdef" * 80_000  # 1.25 MiB
    body = multipart_body([("small", ("s.txt", b"tiny", "text/plain")),
                           ("big", ("b.bin", big, "application/octet-stream"))])
    form = await parse_form(MULTIPART, chunks(body, size=65536), ROOMY)
    small, large = form["small"], form["big"]
    assert isinstance(small, UploadFile) and isinstance(large, UploadFile)
    assert small.in_memory and not large.in_memory
    assert await large.read(16) == b"0123456789abcdef"
    assert await large.seek(0) == 0
    assert await large.read() == big
    await form.close()
    assert len(spooled) == 2 and all(file.closed for file in spooled)


async def test_memory_budget_is_shared_by_all_files() -> None:
    payload = b"z" * 600_000
    body = multipart_body([(f"f{i}", (f"{i}.bin", payload, "application/octet-stream"))
                           for i in range(3)])
    form = await parse_form(MULTIPART, chunks(body, size=65536), ROOMY)
    uploads = form.files()
    # 1 MiB of memory for the whole form: the first file fits, the next ones go to disk.
    assert [upload.in_memory for upload in uploads] == [True, False, False]
    for upload in uploads:
        assert await upload.read() == payload
    await form.close()


async def test_thousands_of_tiny_multipart_fields_is_413() -> None:
    body = multipart_body([(f"f{i}", "x") for i in range(5000)])
    with pytest.raises(ContentTooLarge, match="more than 1000 fields"):
        await parse_form(MULTIPART, chunks(body, size=65536))


async def test_too_many_files_is_413_and_closes_the_others(spooled: list[Any]) -> None:
    body = multipart_body([(f"f{i}", (f"{i}.txt", b"data", "text/plain")) for i in range(5)])
    with pytest.raises(ContentTooLarge, match="more than 3 files"):
        await parse_form(MULTIPART, chunks(body), FormLimits(max_files=3))
    assert len(spooled) == 3 and all(file.closed for file in spooled)


async def test_huge_field_without_filename_is_413_early() -> None:
    recorder = Recorder()
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"essay\"\r\n\r\n").encode()
    with pytest.raises(ContentTooLarge, match="send large content as a file"):
        await parse_form(MULTIPART, recorder.endless(head, b"x" * 65536), ROOMY)
    assert recorder.produced <= 2 * 1024 * 1024


async def test_file_over_part_size_is_413_and_temp_file_closed(spooled: list[Any]) -> None:
    recorder = Recorder()
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n"
            "\r\n").encode()
    with pytest.raises(ContentTooLarge, match="uploaded file is larger than 2000000"):
        await parse_form(MULTIPART, recorder.endless(head, b"y" * 65536),
                         FormLimits(max_part_size=2_000_000, max_total_size=ROOMY_TOTAL))
    assert recorder.produced < 2_000_000 + 3 * 65536
    assert len(spooled) == 1 and spooled[0].closed


async def test_endless_header_section_is_400_early() -> None:
    recorder = Recorder()
    head = f"--{BOUNDARY}\r\n".encode()
    with pytest.raises(BadRequest, match=r"[Hh]eader"):
        await parse_form(MULTIPART, recorder.endless(head, b"X-A: b\r\n"))
    assert recorder.produced < 16_384


async def test_header_section_limit_counts_the_whole_section() -> None:
    head = f"--{BOUNDARY}\r\n".encode()
    lines = b"X-Long-Header-Name: some value here\r\n" * 4
    with pytest.raises(BadRequest, match="header section is longer than 100 bytes"):
        await parse_form(MULTIPART, chunks(head, lines), FormLimits(max_header_size=100))


async def test_endless_header_line_is_400_early() -> None:
    recorder = Recorder()
    head = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a".encode()
    with pytest.raises(BadRequest):
        await parse_form(MULTIPART, recorder.endless(head, b"a" * 1000))
    assert recorder.produced < 16_384


async def test_endless_header_name_without_colon_is_400_early() -> None:
    recorder = Recorder()
    with pytest.raises(BadRequest):
        await parse_form(MULTIPART, recorder.endless(f"--{BOUNDARY}\r\n".encode(), b"A" * 999))
    assert recorder.produced < 16_384


async def test_unterminated_boundary_is_400_and_temp_files_closed(spooled: list[Any]) -> None:
    body = multipart_body([("a", "1"), ("f", ("f.txt", b"content", "text/plain"))], close=False)
    with pytest.raises(BadRequest, match="ended before its closing boundary"):
        await parse_form(MULTIPART, chunks(body))
    assert len(spooled) == 1 and spooled[0].closed


async def test_body_cut_inside_a_file_is_400_and_disk_file_closed(spooled: list[Any]) -> None:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n"
            "\r\n").encode()
    with pytest.raises(BadRequest):
        await parse_form(MULTIPART, chunks(head, b"q" * 3_000_000, size=65536), ROOMY)
    assert len(spooled) == 1 and spooled[0].closed and spooled[0]._rolled


async def test_cancellation_closes_temp_files(spooled: list[Any]) -> None:
    started = asyncio.Event()
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n"
            "\r\n").encode()

    async def stalled() -> AsyncIterator[bytes]:
        yield head + b"partial"
        started.set()
        await asyncio.sleep(3600)
        yield b""  # pragma: no cover

    task = asyncio.ensure_future(parse_form(MULTIPART, stalled()))
    await started.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(spooled) == 1 and spooled[0].closed


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"garbage before\r\n--" + BOUNDARY.encode() + b"--\r\n", "Malformed"),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--"
         + BOUNDARY.encode() + b"--\r\n", "no Content-Disposition"),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n--"
         + BOUNDARY.encode() + b"--\r\n", "name="),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--"
         + BOUNDARY.encode() + b"--\r\n", "name="),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=a\r\n\r\n\xff\r\n--"
         + BOUNDARY.encode() + b"--\r\n", "UTF-8"),
        (b"", "closing boundary"),
    ],
)
async def test_malformed_multipart_is_400(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        await parse_form(MULTIPART, chunks(body))


async def test_latin1_filename_is_kept_not_refused() -> None:
    body = (b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="f"; '
            b'filename="caf\xe9.txt"\r\n\r\nx\r\n--' + BOUNDARY.encode() + b"--\r\n")
    form = await parse_form(MULTIPART, chunks(body))
    upload = form["f"]
    assert isinstance(upload, UploadFile) and upload.filename == "café.txt"
    await form.close()


async def test_missing_python_multipart_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_multipart.multipart", None)
    with pytest.raises(RuntimeError, match=r"pip install python-multipart"):
        await parse_form(URLENCODED, chunks(b"a=1"))


# --- UploadFile and FormData ---------------------------------------------------------------

async def test_upload_file_api_in_memory_and_on_disk() -> None:
    upload = UploadFile(filename="notes.txt", spool_max_size=10)
    assert upload.in_memory and upload.size == 0 and upload.content_type is None
    await upload.write(b"hello")
    assert upload.in_memory
    await upload.write(b" world, long enough to roll")
    assert not upload.in_memory
    assert upload.size == 32
    await upload.seek(6)
    assert await upload.read(5) == b"world"
    await upload.rollover()  # already on disk: nothing to do
    await upload.close()
    await upload.close()  # twice is fine
    assert upload.closed
    assert repr(upload) == "UploadFile(filename='notes.txt', content_type=None, size=32)"


async def test_upload_file_over_any_file_object() -> None:
    memory = UploadFile(io.BytesIO(b"abc"), filename="a", content_type="text/plain")
    assert memory.in_memory and memory.size is None
    assert await memory.read() == b"abc"
    await memory.write(b"d")
    with tempfile.TemporaryFile() as raw:
        on_disk = UploadFile(raw)
        assert not on_disk.in_memory
        await on_disk.write(b"xyz")
        await on_disk.seek(0)
        assert await on_disk.read() == b"xyz"


async def test_form_data_mapping_behaviour() -> None:
    upload = UploadFile(filename="f")
    form = FormData([("a", "1"), ("f", upload), ("a", "2")])
    assert form == FormData([("a", "1"), ("f", upload), ("a", "2")])
    assert form != FormData([("a", "1")])
    assert form == {"a": "2", "f": upload}
    assert "missing" not in form and form.get("missing") is None
    assert repr(FormData([("a", "1")])) == "FormData([('a', '1')])"
    await form.close()
    assert upload.closed


async def test_close_reports_a_failure_after_closing_the_rest() -> None:
    class Broken(io.BytesIO):
        def close(self) -> None:
            if not self.closed:  # fails once: its finalizer closes it again, silently
                super().close()
                raise OSError("disk on fire")

    good = UploadFile(filename="good")
    form = FormData([("a", UploadFile(Broken())), ("b", good)])
    with pytest.raises(OSError, match="disk on fire"):
        await form.close()
    assert good.closed


# -- issue #12.10: the form limits a handler passes decide the body limit of its form read ----

_BIG = FormLimits(max_files=1, max_part_size=2 * 1024**3, max_total_size=2 * 1024**3 + 65536)


def _upload_app(**route_options: Any) -> Any:
    from joey import App, Request

    app = App()

    @app.post("/videos", **route_options)
    async def upload(request: Request) -> dict[str, int]:
        form = await request.form(_BIG)
        video = form["video"]
        assert isinstance(video, UploadFile)
        return {"size": video.size}

    @app.post("/default")
    async def default(request: Request) -> dict[str, int]:
        return {"fields": len(await request.form())}

    return app


def test_explicit_form_limits_set_the_body_limit_of_the_route() -> None:
    from joey.testing import TestClient

    three_mib = b"x" * (3 * 1024 * 1024)
    with TestClient(_upload_app()) as client:
        r = client.post("/videos", files={"video": ("v.mp4", three_mib, "video/mp4")})
        assert r.status_code == 200, r.text
        assert r.json() == {"size": len(three_mib)}
        # Without explicit form limits, the app's body limit (1 MiB) still applies.
        r = client.post("/default", files={"video": ("v.mp4", three_mib, "video/mp4")})
        assert r.status_code == 413
    # A route's own max_body_size wins over the form limits.
    with TestClient(_upload_app(max_body_size=2 * 1024 * 1024)) as client:
        r = client.post("/videos", files={"video": ("v.mp4", three_mib, "video/mp4")})
        assert r.status_code == 413
        assert "2097152" in r.json()["detail"]


def test_form_limits_still_bound_the_body() -> None:
    from joey import App, Request
    from joey.testing import TestClient

    app = App()

    @app.post("/small")
    async def small(request: Request) -> int:
        return len(await request.form(FormLimits(max_total_size=1000)))

    with TestClient(app) as client:
        r = client.post("/small", data={"a": "x" * 2000})
        assert r.status_code == 413


# -- issue #26: FormLimits() (the defaults) and the body limit are one fact ---------------------


def _limits_app(**app_options: Any) -> Any:
    from joey import App, Form, Request

    app = App(**app_options)

    @app.post("/defaults")
    async def defaults(request: Request) -> dict[str, int]:
        form = await request.form(FormLimits())  # the defaults: the body limit stays as it is
        return {"fields": len(form)}

    @app.post("/fewer-files")
    async def fewer_files(request: Request) -> dict[str, int]:
        return {"fields": len(await request.form(FormLimits(max_files=1)))}

    @app.post("/field")
    async def field(name: Annotated[str, Form()]) -> dict[str, int]:
        return {"size": len(name)}

    @app.post("/unlimited", max_body_size=None)
    async def unlimited(request: Request) -> dict[str, int]:
        return {"fields": len(await request.form(FormLimits()))}

    return app


def test_default_form_limits_keep_the_apps_body_limit() -> None:
    from joey.testing import TestClient

    two_mib = b"x" * (2 * 1024 * 1024)
    with TestClient(_limits_app()) as client:
        for path in ("/defaults", "/fewer-files"):
            r = client.post(path, files={"f": ("f.bin", two_mib, "application/octet-stream")})
            assert r.status_code == 413, (path, r.text)  # 1 MiB, not FormLimits' own total
            assert "1048576" in r.json()["detail"]
        r = client.post("/field", data={"name": "x" * (2 * 1024 * 1024)})
        assert r.status_code == 413
        small = client.post("/defaults", files={"f": ("f.bin", b"x" * 1000, "text/plain")})
        assert small.json() == {"fields": 1}
        # a route without a body limit: the form has none either (the other limits hold)
        r = client.post("/unlimited", files={"f": ("f.bin", two_mib, "application/octet-stream")})
        assert r.json() == {"fields": 1}
    # the app's own body limit is the one the defaults follow, up as well as down
    with TestClient(_limits_app(max_body_size=4 * 1024 * 1024)) as client:
        r = client.post("/defaults", files={"f": ("f.bin", two_mib, "application/octet-stream")})
        assert r.json() == {"fields": 1}
        r = client.post("/defaults", files={"f": ("f.bin", two_mib * 3, "text/plain")})
        assert r.status_code == 413 and "4194304" in r.json()["detail"]


async def test_parse_form_alone_takes_the_default_body_limit() -> None:
    from joey.limits import DEFAULT_MAX_BODY_SIZE

    assert FormLimits().max_total_size is None
    body = multipart_body([("f", ("f.bin", b"x" * DEFAULT_MAX_BODY_SIZE, "text/plain"))], "b")
    with pytest.raises(ContentTooLarge, match=f"larger than {DEFAULT_MAX_BODY_SIZE} bytes"):
        await parse_form("multipart/form-data; boundary=b", chunks(body))


def test_a_file_where_text_is_wanted_and_text_where_a_file_is_are_a_422() -> None:
    # Found by make fuzz: a part sent with a filename reached a str parameter as an
    # UploadFile (a 500 when the handler used it as text); a text field reached UploadFile.

    from joey import App, Form
    from joey.testing import TestClient

    app = App()

    @app.post("/text")
    async def text(name: Annotated[str, Form()], age: Annotated[int, Form()] = 0,
                   tags: Annotated[list[str], Form()] = []) -> list[object]:  # noqa: B006
        return [name, age, tags]

    @app.post("/file")
    async def file(upload: UploadFile) -> str:
        return (await upload.read()).decode()

    with TestClient(app) as client:
        for field in ("name", "age", "tags"):
            sent = client.post("/text", data={"name": "ann"} if field != "name" else {},
                               files={field: ("x.txt", b"", "text/plain")})
            assert sent.status_code == 422, sent.text
            [issue] = sent.json()["errors"]
            assert (issue["loc"], issue["name"], issue["message"]) == (
                "form", field, "Expected a text field, got a file")
        assert client.post("/text", data={"name": "ann", "tags": ["a", "b"]}).json() == [
            "ann", 0, ["a", "b"]]
        wrong = client.post("/file", data={"upload": "not a file"})
        assert wrong.status_code == 422
        assert wrong.json()["errors"][0]["message"] == "Expected a file, got a text field"
        assert client.post("/file", files={"upload": ("a.txt", b"data")}).text == "data"
