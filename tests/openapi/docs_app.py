"""The example app with its docs pages' viewers served from a local directory laid out like
``node_modules`` (``JOEY_DOCS_ASSETS``), as an offline or intranet deployment would."""

from __future__ import annotations

import os

from examples.app import app

from joey import StaticFiles
from joey.openapi import Assets

assert app.openapi is not None
app.openapi.assets = Assets.local("/assets")
app.mount("/assets", StaticFiles(directory=os.environ["JOEY_DOCS_ASSETS"]))
