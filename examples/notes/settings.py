"""Settings from the environment, read once when the app is created.

Every setting has a default that works on a laptop; production sets the ``NOTES_*``
variables. A value that does not parse stops the app at creation with the variable's name,
never at the first request that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec

PREFIX = "NOTES_"


class SettingsError(ValueError):
    """An environment variable has a value the app cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """What the notes service needs to know about where it runs.

    Example::

        settings = Settings.from_env({"NOTES_DATABASE_URL": "sqlite+aiosqlite:///notes.db"})
    """

    #: any SQLAlchemy async URL; the file of a SQLite database is created if missing
    database_url: str = "sqlite+aiosqlite:///notes.db"
    #: seconds a query waits for SQLite's lock before the request is answered with a 503
    database_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    #: where uploaded files are kept (created at startup)
    upload_dir: Path = Path("uploads")
    #: the largest upload accepted, in bytes (a larger one is a 413)
    max_upload_size: Annotated[int, msgspec.Meta(ge=1)] = 10 * 1024 * 1024
    #: notifications across worker processes (Redis Streams); unset: in memory, one process
    redis_url: str | None = None
    #: tracebacks in 500 responses: on your machine only
    debug: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``NOTES_<FIELD>`` variables (``NOTES_MAX_UPLOAD_SIZE=1048576``);
        ``environ`` defaults to ``os.environ``. Raises :class:`SettingsError` naming the
        variable whose value does not fit."""
        environ = os.environ if environ is None else environ
        values = {
            name: environ[PREFIX + name.upper()]
            for name in cls.__struct_fields__
            if PREFIX + name.upper() in environ
        }
        try:
            # strict=False: "10" becomes 10, "true" becomes True, as environment values must
            return msgspec.convert(values, cls, strict=False, dec_hook=_decode)
        except msgspec.ValidationError as exc:
            raise SettingsError(_explain(str(exc))) from None


def _decode(type_: type, value: object) -> object:
    if type_ is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot read a {type_.__name__} from {value!r}")


def _explain(message: str) -> str:
    """msgspec says ``... - at `$.max_upload_size```: name the variable instead."""
    text, _, where = message.rpartition(" - at `$.")
    if not where:
        return f"Invalid settings: {message}"
    variable = PREFIX + where.rstrip("`").upper()
    return f"{variable}: {text}"
