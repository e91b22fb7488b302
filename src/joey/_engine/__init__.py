"""The engine: what serves an app, compiled from its declarations. Private to Joey.

* :mod:`~joey._engine.compiler`: declarations in, an :class:`~joey._engine.http.Engine` out;
* :mod:`~joey._engine.http`: the HTTP path (routing, 404/405/400, mounts, send, cleanups);
* :mod:`~joey._engine.websocket`: the WebSocket path;
* :mod:`~joey._engine.lifespan`: the lifespan protocol;
* :mod:`~joey._engine.lifecycle`: startup and shutdown, and what lives as long as the app;
* :mod:`~joey._engine.errors`: the exception policy;
* :mod:`~joey._engine.connections`: open WebSockets and streams, ended at shutdown;
* :mod:`~joey._engine.tree`: the route tree; :mod:`~joey._engine.mount`: mounted apps.
"""
