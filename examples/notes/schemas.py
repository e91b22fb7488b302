"""What goes over the wire: request bodies (validated by Joey into these Structs, every
problem in one 422) and response bodies. Kept apart from the tables, so a column added to
the database is not published by accident."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from examples.notes.models import Attachment, Note

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$",
                                   description="lower-case letters, digits and _")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
#: a row id, in a path or a cursor: what the database's integer column can hold (SQLite's is
#: 64 bits: a larger number would reach the driver and fail there, a 500, not a 422)
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class SignupIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


class SignupOut(msgspec.Struct):
    id: int
    name: str
    #: shown once: only its hash is stored
    token: str


class UserOut(msgspec.Struct):
    id: int
    name: str


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    body: Text = ""
    public: bool = False


class NotePatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    body: Text | msgspec.UnsetType = msgspec.UNSET
    public: bool | msgspec.UnsetType = msgspec.UNSET


class AttachmentOut(msgspec.Struct):
    id: int
    filename: str
    content_type: str
    size: int
    url: str


class NoteOut(msgspec.Struct):
    id: int
    title: str
    body: str
    public: bool
    created_at: datetime
    updated_at: datetime
    attachments: list[AttachmentOut]


class NotePage(msgspec.Struct):
    items: list[NoteOut]
    #: the URL of the next (older) page, or None on the last page
    next: str | None


class NoteEvent(msgspec.Struct):
    """A notification: ``note.created``, ``note.updated``, ``note.deleted``,
    ``attachment.added``."""

    event: str
    note_id: int
    title: str | None = None


def utc(moment: datetime) -> datetime:
    """SQLite gives times back without their zone: they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


#: ``request.url_path_for``: the path of a named route, as the client must request it
UrlFor = Callable[..., str]


def attachment_out(attachment: Attachment, url_for: UrlFor) -> AttachmentOut:
    url = url_for("notes.download", note_id=attachment.note_id, attachment_id=attachment.id)
    return AttachmentOut(attachment.id, attachment.filename, attachment.content_type,
                         attachment.size, url)


def note_out(note: Note, url_for: UrlFor) -> NoteOut:
    return NoteOut(
        note.id, note.title, note.body, note.public, utc(note.created_at),
        utc(note.updated_at), [attachment_out(a, url_for) for a in note.attachments],
    )
