"""FileResponse driven directly over ASGI: validators, preconditions, ranges, zero-copy."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from joey.exceptions import NotFound
from joey.files import FileResponse, _parse_ranges, content_disposition
from joey.types import Message

CONTENT = bytes(range(256)) * 40  # 10240 bytes


class Result:
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        start = messages[0]
        self.status: int = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        self.header_names = [k.decode() for k, _ in start["headers"]]
        self.body = b"".join(m.get("body", b"") for m in messages[1:])


async def call(response: FileResponse, method: str = "GET", headers: dict[str, str] | None = None,
               extensions: dict[str, Any] | None = None, disconnect: bool = False) -> Result:
    return await call_raw(response, [(k.lower().encode(), v.encode())
                                     for k, v in (headers or {}).items()],
                          method, extensions, disconnect)


async def call_raw(response: FileResponse, raw_headers: list[tuple[bytes, bytes]],
                   method: str = "GET", extensions: dict[str, Any] | None = None,
                   disconnect: bool = False) -> Result:
    messages: list[Message] = []
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": "/", "headers": raw_headers,
    }
    if extensions is not None:
        scope["extensions"] = extensions

    async def receive() -> Message:
        if disconnect:
            await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        messages.append(message)
        if disconnect and message.get("more_body"):
            await asyncio.sleep(0.02)  # a slow client: the disconnect arrives mid-stream

    await response(scope, receive, send)
    return Result(messages)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


async def test_full_file_with_validators(data_file: Path) -> None:
    result = await call(FileResponse(data_file))
    assert result.status == 200
    assert result.body == CONTENT
    assert result.headers["content-length"] == str(len(CONTENT))
    assert result.headers["content-type"] == "application/octet-stream"
    assert result.headers["accept-ranges"] == "bytes"
    assert result.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert re.fullmatch(r'"[0-9a-f]+-2800"', result.headers["etag"])
    assert "content-disposition" not in result.headers


async def test_chunks_are_bounded_by_chunk_size(data_file: Path) -> None:
    result = await call(FileResponse(data_file, chunk_size=4096))
    sizes = [len(m["body"]) for m in result.messages[1:]]
    assert sizes == [4096, 4096, 2048, 0]
    assert result.messages[-1].get("more_body") is False


async def test_head_sends_headers_only(data_file: Path) -> None:
    result = await call(FileResponse(data_file), method="HEAD")
    assert result.status == 200 and result.body == b""
    assert result.headers["content-length"] == str(len(CONTENT))


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("page.html", "text/html; charset=utf-8"), ("style.css", "text/css; charset=utf-8"),
     ("photo.png", "image/png"), ("archive.tar.gz", "application/gzip"),
     ("x.unknownext", "application/octet-stream")],
)
async def test_content_type_is_guessed(tmp_path: Path, name: str, media_type: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    result = await call(FileResponse(tmp_path / name))
    assert result.headers["content-type"] == media_type


async def test_explicit_media_type_and_user_headers_win(data_file: Path) -> None:
    response = FileResponse(data_file, media_type="text/csv",
                            headers={"etag": '"mine"', "cache-control": "no-store"})
    result = await call(response)
    assert result.headers["content-type"] == "text/csv; charset=utf-8"
    assert result.headers["etag"] == '"mine"'
    assert result.header_names.count("etag") == 1
    assert result.headers["cache-control"] == "no-store"


def test_content_disposition_ascii_and_unicode() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    assert content_disposition("Grüße 2024.txt", "inline") == (
        "inline; filename=\"Gruße 2024.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%202024.txt"
        .replace("Gruße", "Gru_e")
    )
    assert content_disposition('a"b\\c\r\n.txt') == (
        "attachment; filename=\"a_b_c__.txt\"; filename*=UTF-8''a%22b%5Cc%0D%0A.txt"
    )
    assert content_disposition("日本.txt").startswith('attachment; filename="__.txt"')


async def test_filename_sets_content_disposition_and_type(data_file: Path) -> None:
    result = await call(FileResponse(data_file, filename="résumé.pdf"))
    assert result.headers["content-type"] == "application/pdf"
    assert result.headers["content-disposition"] == (
        "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
    )


async def test_missing_file_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        await call(FileResponse(tmp_path / "nope.txt"))
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    with pytest.raises(NotFound):
        await call(FileResponse(tmp_path))  # a directory is not a file


async def test_file_removed_after_stat_raises_not_found(data_file: Path) -> None:
    st = os.stat(data_file)
    os.unlink(data_file)
    with pytest.raises(NotFound):
        await call(FileResponse(data_file, stat_result=st))


# --- conditional requests --------------------------------------------------------------------

async def etag_of(path: Path) -> str:
    etag: str = (await call(FileResponse(path), method="HEAD")).headers["etag"]
    return etag


LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"


async def test_if_none_match_gives_304_with_validators(data_file: Path) -> None:
    etag = await etag_of(data_file)
    response = FileResponse(data_file, headers={"cache-control": "max-age=60"},
                            filename="x.bin")
    result = await call(response, headers={"if-none-match": f'"other", W/{etag}'})
    assert result.status == 304 and result.body == b""
    assert result.headers["etag"] == etag
    assert result.headers["cache-control"] == "max-age=60"
    for absent in ("content-length", "content-type", "content-disposition"):
        assert absent not in result.headers
    assert (await call(FileResponse(data_file), headers={"if-none-match": "*"})).status == 304
    result = await call(FileResponse(data_file), headers={"if-none-match": '"other"'})
    assert result.status == 200


async def test_if_none_match_on_other_methods_is_412(data_file: Path) -> None:
    etag = await etag_of(data_file)
    result = await call(FileResponse(data_file), method="POST", headers={"if-none-match": etag})
    assert result.status == 412


async def test_if_modified_since(data_file: Path) -> None:
    same = await call(FileResponse(data_file), headers={"if-modified-since": LAST_MODIFIED})
    assert same.status == 304
    older = await call(FileResponse(data_file), headers={"if-modified-since": EARLIER})
    assert older.status == 200
    invalid = await call(FileResponse(data_file), headers={"if-modified-since": "yesterday"})
    assert invalid.status == 200


async def test_if_none_match_takes_precedence_over_if_modified_since(data_file: Path) -> None:
    result = await call(FileResponse(data_file), headers={
        "if-none-match": '"other"', "if-modified-since": LAST_MODIFIED,
    })
    assert result.status == 200


async def test_if_match(data_file: Path) -> None:
    etag = await etag_of(data_file)
    assert (await call(FileResponse(data_file), headers={"if-match": etag})).status == 200
    assert (await call(FileResponse(data_file), headers={"if-match": "*"})).status == 200
    failed = await call(FileResponse(data_file), headers={"if-match": '"other"'})
    assert failed.status == 412 and failed.body == b""
    assert failed.headers["content-length"] == "0"
    # Strong comparison: a weak tag never matches.
    weak = await call(FileResponse(data_file), headers={"if-match": f"W/{etag}"})
    assert weak.status == 412


async def test_if_unmodified_since(data_file: Path) -> None:
    ok = await call(FileResponse(data_file), headers={"if-unmodified-since": LAST_MODIFIED})
    assert ok.status == 200
    failed = await call(FileResponse(data_file), headers={"if-unmodified-since": EARLIER})
    assert failed.status == 412


async def test_if_match_takes_precedence_over_if_unmodified_since(data_file: Path) -> None:
    etag = await etag_of(data_file)
    result = await call(FileResponse(data_file), headers={
        "if-match": etag, "if-unmodified-since": EARLIER,
    })
    assert result.status == 200


async def test_if_match_is_checked_before_if_none_match(data_file: Path) -> None:
    etag = await etag_of(data_file)
    result = await call(FileResponse(data_file), headers={
        "if-match": '"other"', "if-none-match": etag,
    })
    assert result.status == 412


@pytest.fixture
def new_york_time() -> Iterator[None]:
    """The process's local time zone is five hours behind GMT (the server's, say)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("new_york_time")
async def test_dates_without_a_zone_are_gmt_whatever_the_local_time_zone(
        data_file: Path) -> None:
    # The asctime form of an HTTP-date has no zone and is GMT (RFC 9110 §5.6.7): one hour
    # before the file's modification, it was read as New York time, five hours later.
    hour_before = "Tue Nov 14 21:13:20 2023"
    modified = await call(FileResponse(data_file), headers={"if-modified-since": hour_before})
    assert modified.status == 200 and modified.body == CONTENT
    changed = await call(FileResponse(data_file), method="PUT",
                         headers={"if-unmodified-since": hour_before})
    assert changed.status == 412
    same = await call(FileResponse(data_file),
                      headers={"if-modified-since": "Tue Nov 14 22:13:20 2023"})
    assert same.status == 304


async def test_a_304_repeats_no_representation_metadata(data_file: Path) -> None:
    etag = await etag_of(data_file)
    response = FileResponse(data_file, media_type="application/gzip", headers={
        "content-encoding": "gzip", "content-language": "de", "content-location": "/x.gz",
        "cache-control": "max-age=60", "vary": "Accept-Encoding"})
    result = await call(response, headers={"if-none-match": etag})
    assert result.status == 304 and result.body == b""
    for absent in ("content-encoding", "content-language", "content-type", "content-length"):
        assert absent not in result.headers
    assert result.headers["content-location"] == "/x.gz"
    assert result.headers["cache-control"] == "max-age=60"
    assert result.headers["vary"] == "Accept-Encoding"
    assert result.headers["etag"] == etag


async def test_a_date_header_sent_twice_is_ignored(data_file: Path) -> None:
    result = await call(FileResponse(data_file), headers={})
    twice = await call_raw(FileResponse(data_file), [
        (b"if-modified-since", LAST_MODIFIED.encode()),
        (b"if-modified-since", LAST_MODIFIED.encode())])
    assert result.status == twice.status == 200


async def test_error_page_ignores_preconditions_and_ranges(data_file: Path) -> None:
    etag = await etag_of(data_file)
    result = await call(FileResponse(data_file, status_code=404),
                        headers={"if-none-match": etag, "range": "bytes=0-1"})
    assert result.status == 404 and result.body == CONTENT


# --- ranges -------------------------------------------------------------------------------

async def test_single_range(data_file: Path) -> None:
    result = await call(FileResponse(data_file), headers={"range": "bytes=100-199"})
    assert result.status == 206
    assert result.body == CONTENT[100:200]
    assert result.headers["content-range"] == "bytes 100-199/10240"
    assert result.headers["content-length"] == "100"


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [("bytes=10240-", None, None), ("bytes=10000-", 10000, 10240), ("bytes=-100", 10140, 10240),
     ("bytes=-999999", 0, 10240), ("bytes=0-999999", 0, 10240), ("BYTES = 5-5", 5, 6),
     ("bytes=5-5,", 5, 6)],
)
async def test_range_edges(data_file: Path, header: str, start: int | None,
                           stop: int | None) -> None:
    result = await call(FileResponse(data_file), headers={"range": header})
    if start is None:
        assert result.status == 416
        assert result.headers["content-range"] == "bytes */10240"
        assert result.body == b""
    else:
        assert stop is not None
        assert result.status == 206
        assert result.body == CONTENT[start:stop]
        assert result.headers["content-range"] == f"bytes {start}-{stop - 1}/10240"


@pytest.mark.parametrize(
    "header",
    ["items=0-1", "bytes=abc", "bytes=5-1", "bytes=-", "bytes=1-2-3", "bytes= 1 - 2",
     "bytes=0x10-", "bytes=" + "9" * 5000 + "-", "bytes=\u0661-\u0662", "bytes"],
)
async def test_invalid_range_is_ignored(data_file: Path, header: str) -> None:
    result = await call(FileResponse(data_file), headers={"range": header})
    assert result.status == 200 and result.body == CONTENT


async def test_range_is_ignored_for_head(data_file: Path) -> None:
    result = await call(FileResponse(data_file), method="HEAD", headers={"range": "bytes=0-9"})
    assert result.status == 200 and result.headers["content-length"] == "10240"


async def test_multiple_ranges_are_multipart_byteranges(data_file: Path) -> None:
    result = await call(FileResponse(data_file, media_type="text/plain"),
                        headers={"range": "bytes=0-9, 100-109, -10"})
    assert result.status == 206
    assert "content-range" not in result.headers
    content_type = result.headers["content-type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=")[1]
    assert int(result.headers["content-length"]) == len(result.body)
    expected = b""
    for start, stop in [(0, 10), (100, 110), (10230, 10240)]:
        expected += (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     f"Content-Range: bytes {start}-{stop - 1}/10240\r\n\r\n").encode()
        expected += CONTENT[start:stop] + b"\r\n"
    expected += f"--{boundary}--\r\n".encode()
    assert result.body == expected


async def test_multipart_byteranges_parse_back_with_httpx(data_file: Path) -> None:
    # The same body through an HTTP client, as a cross-check of the framing.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await FileResponse(data_file)(scope, receive, send)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/", headers={"range": "bytes=1-2,5-6"})
    assert response.status_code == 206
    assert CONTENT[1:3] in response.content and CONTENT[5:7] in response.content


async def test_overlapping_and_adjacent_ranges_are_merged(data_file: Path) -> None:
    # Hostile shape: the same bytes asked for many times must not be sent many times.
    header = "bytes=" + ",".join(["0-5000"] * 10 + ["5001-6000", "6000-7000"])
    result = await call(FileResponse(data_file), headers={"range": header})
    assert result.status == 206
    assert result.headers["content-range"] == "bytes 0-7000/10240"
    assert len(result.body) == 7001


async def test_too_many_ranges_sends_the_whole_file_once(data_file: Path) -> None:
    header = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(1000))
    result = await call(FileResponse(data_file), headers={"range": header})
    assert result.status == 200 and result.body == CONTENT
    sixteen = "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(16))
    result = await call(FileResponse(data_file), headers={"range": sixteen})
    assert result.status == 206 and result.headers["content-type"].startswith("multipart/")


def test_parse_ranges_directly() -> None:
    assert _parse_ranges("bytes=0-0,-1", 0, 16) == []
    assert _parse_ranges("bytes=0-1,3-4", 10, 16) == [(0, 2), (3, 5)]
    assert _parse_ranges("bytes=3-4,0-1,1-3", 10, 16) == [(0, 5)]
    assert _parse_ranges("bytes=0-9,2-3", 10, 16) == [(0, 10)]


async def test_if_range(data_file: Path) -> None:
    etag = await etag_of(data_file)
    cases = {etag: 206, '"stale"': 200, f"W/{etag}": 200, LAST_MODIFIED: 206, EARLIER: 200}
    for value, status in cases.items():
        result = await call(FileResponse(data_file),
                            headers={"range": "bytes=0-0", "if-range": value})
        assert result.status == status, value


# --- sending -----------------------------------------------------------------------------

async def test_zero_copy_send_when_the_server_offers_it(data_file: Path) -> None:
    extensions: dict[str, Any] = {"http.response.zerocopysend": {}}
    result = await call(FileResponse(data_file), extensions=extensions)
    kinds = [m["type"] for m in result.messages]
    assert kinds == ["http.response.start", "http.response.zerocopysend", "http.response.body"]
    zero_copy = result.messages[1]
    assert (zero_copy["offset"], zero_copy["count"]) == (0, len(CONTENT))
    assert zero_copy["more_body"] is True
    assert zero_copy["file"].closed  # closed once the response is done

    multi = await call(FileResponse(data_file), headers={"range": "bytes=0-1,4-5"},
                       extensions=extensions)
    sends = [(m["offset"], m["count"]) for m in multi.messages
             if m["type"] == "http.response.zerocopysend"]
    assert sends == [(0, 2), (4, 2)]


async def test_stops_reading_when_the_client_disconnects(data_file: Path) -> None:
    ran: list[str] = []

    async def background() -> None:
        ran.append("background")  # pragma: no cover - must not run

    response = FileResponse(data_file, chunk_size=100, background=background)
    result = await call(response, disconnect=True)
    sent = sum(len(m.get("body", b"")) for m in result.messages[1:])
    assert 0 < sent < len(CONTENT)
    assert ran == []


async def test_background_runs_after_a_complete_send(data_file: Path) -> None:
    ran: list[str] = []

    async def background() -> None:
        ran.append("done")

    await call(FileResponse(data_file, background=background))
    await call(FileResponse(data_file, background=background),
               headers={"range": "bytes=0-0,2-2"})
    assert ran == ["done", "done"]


async def test_send_error_other_than_oserror_propagates(data_file: Path) -> None:
    async def receive() -> Message:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise RuntimeError("server bug")

    scope = {"type": "http", "method": "GET", "headers": []}
    with pytest.raises(RuntimeError, match="server bug"):
        await FileResponse(data_file)(scope, receive, send)


async def test_file_shrinking_while_sent_does_not_spin(data_file: Path) -> None:
    st = os.stat(data_file)
    with open(data_file, "r+b") as file:  # noqa: ASYNC230 - test setup
        file.truncate(100)
    result = await call(FileResponse(data_file, stat_result=st))
    assert result.headers["content-length"] == str(len(CONTENT))
    assert result.body == CONTENT[:100]


def test_last_modified_format(data_file: Path) -> None:
    assert formatdate(data_file.stat().st_mtime, usegmt=True) == LAST_MODIFIED


@pytest.mark.parametrize("header", ["if-modified-since", "if-unmodified-since"])
async def test_a_date_too_large_for_a_timestamp_is_ignored(data_file: Path, header: str) -> None:
    # Found by atheris (target "conditional_headers"): a year of 30 digits parsed, then
    # overflowed converting to a timestamp: a 500 for any static file.
    value = "Mon, 01 Jan " + "7" * 30 + " 00:00:00 GMT"
    response = await call(FileResponse(data_file), headers={header: value})
    assert response.status == 200
