"""The Joey port of ``fastapi_app``, module for module (docs/migrating-from-fastapi.md)."""
