"""Handler parameters: the signature is read once at startup into a plan; requests run it.

Where a parameter's value comes from, in order of precedence:

* its type: ``Request``, ``WebSocket``, ``BackgroundTasks`` and ``Channels`` are injected;
* a marker in ``Annotated[...]`` (or as the default, FastAPI's spelling): ``Query()``,
  ``Header()``, ``Cookie()``, ``Path()``, ``Body()``, ``Form()``, ``Depends(fn)``;
* its name matching a path parameter of the route;
* its type: a structured type (msgspec ``Struct``, dataclass, ``TypedDict``, pydantic model,
  ``dict``, a list of structured values, ``bytes``) is the request body;
* otherwise, the query string (``q: str``, ``limit: int = 10``, ``tags: list[str]``).

A request runs the plan in phases, always in this order: security dependencies first; then
every other value is extracted and validated, with no user code running, and every failure is
collected (the client gets one 422 that lists them all); then the other dependencies are
called in order (each at most once per request), the handler, and the conversion of its result.

The package, one concept a module:

* :mod:`~joey.params.markers`: ``Query``, ``Header``, ``Cookie``, ``Body``, ``Form``,
  ``Depends``: what users write;
* :mod:`~joey.params.typeinfo`: questions about annotations (is this a body type?);
* :mod:`~joey.params.constraints`: constraints (markers' keywords, ``annotated_types``,
  pydantic ``Field``) as the ``msgspec.Meta`` that validation and the API document read;
* :mod:`~joey.params.info`: :class:`ParamInfo`, one parameter as the plan reads it (the route
  model shows these);
* :mod:`~joey.params.extract`: extractors and validation (phase one);
* :mod:`~joey.params.plan`: :class:`~joey.params.plan.PlanBuilder`, signatures into plans;
* :mod:`~joey.params.phases`: how a handler is called, as data: its phases and their steps,
  and the shape of runner that runs them;
* :mod:`~joey.params.run`: the runners, dependencies, teardown, app scope;
* :mod:`~joey.params.returns`: return annotations that convert what a handler returns.

Example::

    import msgspec
    from msgspec import Meta

    class Item(msgspec.Struct):
        id: int

    class Database:
        async def item(self, item_id: int) -> Item:
            return Item(id=item_id)

    def get_db() -> Database:
        return Database()

    @app.get("/items/{item_id:int}")
    async def read_item(
        item_id: int,
        db: Annotated[Database, Depends(get_db)],
        q: str | None = None,
        limit: Annotated[int, Meta(ge=1, le=100)] = 10,
        token: Annotated[str, Header("x-token")] = "",
    ) -> Item:
        return await db.item(item_id)
"""

from joey.params.info import ParamInfo, Source
from joey.params.markers import Body, Cookie, Depends, Form, Header, ParamMarker, Path, Query
from joey.params.typeinfo import MISSING

__all__ = [
    "MISSING", "Body", "Cookie", "Depends", "Form", "Header", "ParamInfo", "ParamMarker", "Path",
    "Query", "Source",
]
