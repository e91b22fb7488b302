"""The notes service as a server runs it: ``uvicorn examples.notes.main:app`` or
``python -m examples.notes.main`` (``HOST``/``PORT``). Settings come from ``NOTES_*``
environment variables, read here, once."""

from __future__ import annotations

import os

from examples.notes.app import create_app
from joey import serve

app = create_app()

if __name__ == "__main__":
    serve(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
