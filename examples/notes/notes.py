"""The notes API: create, list (cursor pagination), read, change, delete, and attach files.

Every route takes the calling user (a 401 without a valid token) and the request's session,
but one: a public note can be read by anyone, with or without a token. A note of another user
that is not public is a 404, as if it did not exist: its id tells nothing. Writes commit,
then notify the owner's sockets (:mod:`examples.notes.live`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.notes.auth import current_user, optional_user
from examples.notes.database import get_session
from examples.notes.live import notify
from examples.notes.models import Attachment, Note, User
from examples.notes.schemas import (
    AttachmentOut,
    Id,
    NoteEvent,
    NoteIn,
    NoteOut,
    NotePage,
    NotePatch,
    attachment_out,
    note_out,
)
from examples.notes.settings import Settings
from joey import (
    BadRequest,
    ContentTooLarge,
    Depends,
    FileResponse,
    FormLimits,
    HTTPConnection,
    JSONResponse,
    NotFound,
    Request,
    Router,
    UnprocessableContent,
    UnsupportedMediaType,
    UploadFile,
)
from joey.channels import Channels
from joey.security import Security

logger = logging.getLogger("notes")

router = Router(prefix="/notes", name="notes", tags=["notes"])

#: the most notes one page may hold (``?limit=``); more is a 422
MAX_PAGE = 100
CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")

User_ = Annotated[User, Security(current_user)]
Session = Annotated[AsyncSession, Depends(get_session)]


def get_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


async def owned_note(note_id: Id, user: User_, session: Session) -> Note:
    """The caller's note ``note_id`` (a path parameter), or a 404."""
    note = await session.get(Note, note_id)
    if note is None or note.owner_id != user.id:
        raise NotFound(f"No note {note_id}.")
    return note


OwnedNote = Annotated[Note, Depends(owned_note)]

#: a created resource's URL, in ``Location`` (and in the API document: clients and fuzzers
#: follow it from the answer to the next request)
LOCATION = {"headers": {"Location": {"required": True, "schema": {"type": "string"}}}}


@router.post("", status_code=201, name="create", responses={201: LOCATION})
async def create_note(data: NoteIn, request: Request, user: User_, session: Session,
                      channels: Channels) -> NoteOut | JSONResponse:
    note = Note(owner_id=user.id, title=data.title, body=data.body, public=data.public,
                attachments=[])
    session.add(note)
    await session.commit()
    await notify(channels, user.id, NoteEvent("note.created", note.id, note.title))
    location = request.url_path_for("notes.read", note_id=note.id)
    return JSONResponse(msgspec.to_builtins(note_out(note, request.url_path_for)), status_code=201,
                        headers={"location": location})


@router.get("", name="list")
async def list_notes(
    request: Request, user: User_, session: Session,
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = 20,
    cursor: Id | None = None,
) -> NotePage:
    """The caller's notes, newest first, ``limit`` at a time. ``next`` is the URL of the
    following page: keyset pagination (``id < cursor``), so a note added meanwhile never
    shifts a page, and a page costs the same however deep it is."""
    query = select(Note).where(Note.owner_id == user.id)
    if cursor is not None:
        query = query.where(Note.id < cursor)
    notes = list(await session.scalars(query.order_by(Note.id.desc()).limit(limit + 1)))
    next_url = None
    if len(notes) > limit:  # one more than asked for: there is a next page
        notes = notes[:limit]
        next_url = (request.url_path_for("notes.list") + "?"
                    + urlencode({"limit": limit, "cursor": notes[-1].id}))
    return NotePage([note_out(note, request.url_path_for) for note in notes], next_url)


@router.get("/{note_id:int}", name="read")
async def read_note(note_id: Id, request: Request, session: Session,
                    user: Annotated[User | None, Security(optional_user)]) -> NoteOut:
    """The caller's note, or anyone's public note (no token needed)."""
    note = await session.get(Note, note_id)
    if note is None or not (note.public or (user is not None and note.owner_id == user.id)):
        raise NotFound(f"No note {note_id}.")
    return note_out(note, request.url_path_for)


@router.patch("/{note_id:int}", name="update")
async def update_note(note: OwnedNote, data: NotePatch, request: Request, session: Session,
                      channels: Channels) -> NoteOut:
    for field in data.__struct_fields__:
        value = getattr(data, field)
        if value is not msgspec.UNSET:
            setattr(note, field, value)
    await session.commit()
    await notify(channels, note.owner_id, NoteEvent("note.updated", note.id, note.title))
    return note_out(note, request.url_path_for)


@router.delete("/{note_id:int}", name="delete")
async def delete_note(note: OwnedNote, session: Session, channels: Channels,
                      settings: Annotated[Settings, Depends(get_settings)]) -> None:
    files = [settings.upload_dir / a.stored_name for a in note.attachments]
    await session.delete(note)
    await session.commit()
    # The rows are gone for good: now the files (a crash here leaves orphans, never a row
    # pointing at a missing file).
    await asyncio.to_thread(_remove, files)
    await notify(channels, note.owner_id, NoteEvent("note.deleted", note.id))


#: the attachment route's body, for the API document: the handler reads the form itself, with
#: limits from the settings, so no parameter describes it
UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "additionalProperties": False,
    "properties": {"file": {"type": "string", "format": "binary",
                            "contentMediaType": "application/octet-stream"}},
}}}}


@router.post("/{note_id:int}/attachments", status_code=201, name="attach",
             raises=[BadRequest, ContentTooLarge, UnsupportedMediaType, UnprocessableContent],
             responses={201: LOCATION}, openapi_extra={"requestBody": UPLOAD_BODY})
async def attach_file(
    note: OwnedNote, request: Request, session: Session, channels: Channels,
    settings: Annotated[Settings, Depends(get_settings)],
) -> AttachmentOut | JSONResponse:
    """Attach one file, sent as the ``file`` field of a multipart form. Larger than
    ``NOTES_MAX_UPLOAD_SIZE``: a 413, as the bytes arrive."""
    limit = settings.max_upload_size
    form = await request.form(FormLimits(max_files=1, max_fields=10, max_part_size=limit,
                                         max_total_size=limit + 64 * 1024))
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise UnprocessableContent("Send the file as the multipart field 'file'.")
    others = sorted({name for name, _ in form.multi_items()} - {"file"})
    if others:  # as documented: a field the service would ignore is a client's mistake
        raise UnprocessableContent(f"Send only the field 'file', not {others}.")
    filename = PurePosixPath((upload.filename or "").replace("\\", "/")).name[:255]
    if not filename:
        raise UnprocessableContent("The file has no name.")
    content_type = upload.content_type or ""
    if not CONTENT_TYPE.match(content_type) or len(content_type) > 100:
        content_type = "application/octet-stream"
    stored_name = uuid.uuid4().hex  # the server's name: never the client's
    path = settings.upload_dir / stored_name
    await upload.seek(0)
    await asyncio.to_thread(_save, upload, path)
    attachment = Attachment(note_id=note.id, filename=filename, content_type=content_type,
                            size=upload.size, stored_name=stored_name)
    session.add(attachment)
    try:
        await session.commit()
    except BaseException:
        await asyncio.to_thread(_remove, [path])  # no row: no file
        raise
    await notify(channels, note.owner_id, NoteEvent("attachment.added", note.id, note.title))
    out = attachment_out(attachment, request.url_path_for)
    return JSONResponse(msgspec.to_builtins(out), status_code=201,
                        headers={"location": out.url})


@router.get("/{note_id:int}/attachments/{attachment_id:int}", name="download")
async def download(note: OwnedNote, attachment_id: Id,
                   settings: Annotated[Settings, Depends(get_settings)]) -> FileResponse:
    attachment = next((a for a in note.attachments if a.id == attachment_id), None)
    if attachment is None:
        raise NotFound(f"No attachment {attachment_id} on note {note.id}.")
    # Always a download, never rendered by the browser: an uploaded HTML page must not run
    # as this site.
    return FileResponse(settings.upload_dir / attachment.stored_name,
                        media_type=attachment.content_type, filename=attachment.filename,
                        content_disposition_type="attachment",
                        headers={"x-content-type-options": "nosniff"})


def _save(upload: UploadFile, path: Path) -> None:
    with path.open("xb") as out:
        shutil.copyfileobj(upload.file, out, 1024 * 1024)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.exception("Could not remove %s", path)
