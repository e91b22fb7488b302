"""The FastAPI original: a to-do service with users, OAuth2 password login issuing JWTs,
paginated CRUD, and background work. ``main.py`` puts the routers together."""
