"""An app that tries to declare a route while it serves: under a real server, whose lifespan
startup (or first request, with the lifespan off) has frozen its declarations."""

from __future__ import annotations

from joey import App, LateDeclaration

app = App()


async def more() -> str:
    return "never routed"  # pragma: no cover - refused before it could be


@app.get("/declare")
async def declare() -> dict[str, str]:
    try:
        app.get("/more")(more)
    except LateDeclaration as refused:
        return {"refused": str(refused)}
    return {"refused": ""}
