"""One service written twice, for docs/migrating-from-fastapi.md: ``fastapi_app`` as FastAPI's
"Bigger Applications" tutorial lays one out, and ``joey_app``, its port to Joey, module for
module. ``tests/examples/test_fastapi_port.py`` runs one set of tests against both."""
