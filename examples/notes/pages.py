"""The HTML side: ``GET /``, the public notes of every user, newest first, rendered with
:mod:`joey.templating` (Jinja2, autoescaping on: a note titled ``<script>`` shows as text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import jinja2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.notes.database import get_session
from examples.notes.models import Note, User
from examples.notes.schemas import Id, utc
from joey import Depends, HTTPConnection, Request, Router
from joey.templating import TemplateResponse, Templates

PAGE_SIZE = 20

router = Router(tags=["pages"])


def make_templates() -> Templates:
    """The app's templates, built once when the app is created (Jinja2 compiles each
    template on first use and keeps it)."""
    # StrictUndefined: a misspelt variable is an error, not an empty string
    return Templates(Path(__file__).parent / "templates", undefined=jinja2.StrictUndefined)


def get_templates(connection: HTTPConnection) -> Templates:
    templates: Templates = connection.app.state.templates
    return templates


@router.get("/", name="home")
async def home(
    request: Request,
    session: Annotated[AsyncSession, Depends(get_session)],
    templates: Annotated[Templates, Depends(get_templates)],
    cursor: Id | None = None,
) -> TemplateResponse:
    query = select(Note, User.name).join(User).where(Note.public)
    if cursor is not None:
        query = query.where(Note.id < cursor)
    rows = (await session.execute(query.order_by(Note.id.desc()).limit(PAGE_SIZE + 1))).all()
    older = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        older = rows[-1][0].id
    notes = [{"title": note.title, "body": note.body, "author": author,
              "created_at": utc(note.created_at)} for note, author in rows]
    return await templates.render(request, "home.html", {"notes": notes, "older": older})
