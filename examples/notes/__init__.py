"""A real example service: notes, with users, files and live notifications.

SQLite through SQLAlchemy 2 (async), settings from the environment, bearer tokens,
pagination, a Jinja2 page, uploads, and notifications through :mod:`joey.channels`.
``docs/recipes.md`` walks through it; :mod:`examples.notes.app` says where each part lives.
"""
