"""How a task is written to Redis and read back: per-call options, arguments, results, and the
`TaskInfo` built from a task's hash. Everything crosses process boundaries as MessagePack.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec

from ..definition import Backoff
from ..state import TaskInfo, TaskState


class Options(msgspec.Struct, array_like=True):
    """Per-call overrides stored with the task; None keeps the worker's registered default.

    And the enqueue's trace context (``traceparent``...; with tracing on), which every run of
    the task continues. Fields are only ever added at the end, with a default: a record an
    older version wrote decodes (the new fields take their default), and an older worker
    ignores the fields it does not know.
    """

    timeout: float | None = None
    retries: int | None = None
    backoff: Backoff | None = None
    trace: dict[str, str] | None = None


encode = msgspec.msgpack.Encoder().encode
decode_payload = msgspec.msgpack.Decoder(tuple[list[Any], dict[str, Any]]).decode
decode_options = msgspec.msgpack.Decoder(Options).decode
_decode_any = msgspec.msgpack.Decoder().decode
NO_OPTIONS = encode(Options())
# A payload too deep for msgspec raises RecursionError, not a DecodeError, and a string that is
# not UTF-8 UnicodeDecodeError under msgspec 0.18: all are bad input.
BAD_PAYLOAD = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError)


def encode_payload(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    try:
        return encode((args, kwargs))
    except RecursionError:
        raise TypeError(
            f"task {name}: its arguments are nested too deeply to send through Redis "
            "(msgspec's limit is about 1,000 levels): pass a flatter structure, or an id "
            "the task can load the data by"
        ) from None
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(
            f"task {name}: RedisTasks sends arguments through Redis encoded with msgspec, "
            f"and these cannot be encoded: {exc}"
        ) from exc


def foreign_reason(fields: dict[bytes, bytes]) -> str | None:
    """Why a stream entry cannot be one Joey wrote, or None if it can be: every entry Joey
    writes holds its task's id (the older ones nothing else), and its name, as text."""
    task_id = fields.get(b"id")
    if not task_id:
        return "it holds no task id"
    try:
        task_id.decode()
        fields.get(b"name", b"").decode()
    except UnicodeDecodeError:
        return "its task id or name is not UTF-8 text"
    return None


def describe_entry(fields: dict[bytes, bytes], limit: int = 500) -> str:
    """A stream entry's fields for an error message, cut at `limit` characters."""
    text = ", ".join(f"{key!r}: {value!r}" for key, value in fields.items())
    return text if len(text) <= limit else text[:limit] + "..."


def _float(raw: bytes | None) -> float | None:
    return float(raw) if raw else None


def task_info(task_id: str, raw: dict[bytes, bytes]) -> TaskInfo:
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    payload = raw.get(b"payload")
    if payload:
        # A payload the worker could not decode either (too deep, corrupt) shows as no
        # arguments; the task's `error` says why. status() itself must not fail on it.
        with contextlib.suppress(*BAD_PAYLOAD):
            decoded_args, kwargs = decode_payload(payload)
            args = tuple(decoded_args)
    result: Any = None
    raw_result = raw.get(b"result")
    if raw_result:
        with contextlib.suppress(*BAD_PAYLOAD):
            result = _decode_any(raw_result)
    return TaskInfo(
        id=task_id,
        name=raw.get(b"name", b"").decode(),
        state=TaskState(raw.get(b"state", b"queued").decode()),
        attempts=int(raw.get(b"attempts", 0)),
        max_attempts=int(raw.get(b"max_attempts", 0)) or 1,
        error=raw.get(b"error", b"").decode() or None,
        result=result,
        args=args,
        kwargs=kwargs,
        enqueued_at=_float(raw.get(b"enqueued_at")) or 0.0,
        started_at=_float(raw.get(b"started_at")),
        finished_at=_float(raw.get(b"finished_at")),
        run_at=_float(raw.get(b"run_at")),
    )


__all__ = [
    "BAD_PAYLOAD",
    "NO_OPTIONS",
    "Options",
    "decode_options",
    "decode_payload",
    "describe_entry",
    "encode",
    "encode_payload",
    "foreign_reason",
    "task_info",
]
