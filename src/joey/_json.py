"""JSON from the outside world, decoded at any nesting depth.

msgspec decodes recursively and gives up at the interpreter's recursion limit: about 1,000
levels, fewer when the stack is already deep (a server, middleware, the handler's plan). It
raises ``RecursionError`` then, not the ``msgspec.DecodeError`` every caller handles for bad
input, so a few kilobytes of ``[[[[`` became a 500 wherever the RecursionError was forgotten.
:func:`decode_json` raises :class:`JSONTooDeep`, a ``DecodeError``, instead: too deep is bad
input at every site that reads JSON, answered as that site answers invalid JSON (a 400, a
WebSocket closed with 1007, no session) or told apart where it says more. A string that is not
UTF-8 is a ``DecodeError`` too (msgspec 0.18 raised ``UnicodeDecodeError``).

Example::

    try:
        value = decode_json(b"[" * 100_000)
    except JSONTooDeep:
        ...  # caught by `except msgspec.DecodeError` too
"""

from __future__ import annotations

from typing import Any

import msgspec


class JSONTooDeep(msgspec.DecodeError):
    """JSON nested deeper than it can be decoded (a :class:`msgspec.DecodeError`)."""


def decode_json(data: bytes | str) -> Any:
    """``data`` decoded untyped; invalid JSON (invalid UTF-8 included) raises
    ``msgspec.DecodeError``, JSON nested too deeply :class:`JSONTooDeep` (never
    ``RecursionError`` nor ``UnicodeError``)."""
    try:
        return msgspec.json.decode(data)
    except RecursionError:
        raise JSONTooDeep("JSON is nested too deeply") from None
    except UnicodeError:
        raise msgspec.DecodeError(INVALID_UTF8) from None


#: What msgspec says of a string that is not UTF-8. msgspec 0.18 raises ``UnicodeDecodeError``
#: for one instead of a ``DecodeError`` (and every version ``UnicodeEncodeError`` for a ``str``
#: holding a lone surrogate): invalid input too, so every decode site turns it into this.
INVALID_UTF8 = "Invalid UTF-8 encoded string"
