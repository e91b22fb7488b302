"""What every Redis-backed component shares: a URL or a ready client, who closes it, and key
names that keep the keys of one operation in one hash slot on a Redis Cluster.

* A component given a URL creates its client and closes it when it stops; one given a client
  (``redis.asyncio.Redis``, ``redis.asyncio.RedisCluster``, a Sentinel master from
  ``Sentinel(...).master_for(...)``) uses it as it is and never closes it: the client, and its
  connection pool, belong to whoever created them.
* A URL names one Redis (``redis://``, ``rediss://``, ``unix://``) or, with ``+cluster`` in
  its scheme (``redis+cluster://host:7000``, ``rediss+cluster://...``), a Redis Cluster
  reached through that node (any node: redis-py finds the others). So a deployment can say
  which topology it runs on in one setting, an environment variable, as it says which host.
* On a cluster, a component's keys carry a hash tag (``{joey:tasks}:stream``): each script and
  multi-key command then runs on one shard, and different prefixes (queues, limits...) land on
  different shards. On a single Redis (or a Sentinel master) the names stay what they were, so
  an upgrade finds the keys it left.

redis-py is an optional dependency: it is imported here only inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

    RedisClient: TypeAlias = "Redis | RedisCluster"
else:
    RedisClient: TypeAlias = Any


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a ``redis.asyncio.RedisCluster``."""
    try:
        from redis.asyncio.cluster import RedisCluster
    except ImportError:  # pragma: no cover - redis-py without cluster support
        return False
    return isinstance(client, RedisCluster)


#: the schemes of a Redis Cluster's URL, and the scheme redis-py reads in their place
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(url: str) -> str | None:
    """The URL redis-py's ``RedisCluster.from_url`` reads, when ``url`` names a cluster
    (``redis+cluster://``...); ``None`` for any other URL."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    return None if plain is None else f"{plain}://{rest}"


def names_cluster(target: object) -> bool:
    """Whether ``target`` (a client, or a URL) is a Redis Cluster."""
    if isinstance(target, str):
        return cluster_url(target) is not None
    return is_cluster(target)


def from_url(url: str, **options: Any) -> RedisClient:
    """A new client for ``url``, with redis-py's connection ``options``: a
    ``redis.asyncio.RedisCluster`` for a cluster's URL, a ``redis.asyncio.Redis`` otherwise.
    Neither connects before its first command.

    Example::

        client = from_url("redis+cluster://127.0.0.1:7000", socket_connect_timeout=1)
        assert type(client).__name__ == "RedisCluster"
        assert type(from_url("redis://127.0.0.1:6379/0")).__name__ == "Redis"
    """
    plain = cluster_url(url)
    if plain is None:
        from redis.asyncio import Redis

        return Redis.from_url(url, **options)
    from redis.asyncio import RedisCluster

    return RedisCluster.from_url(plain, **options)


def has_hash_tag(name: str) -> bool:
    """Whether Redis Cluster hashes ``name`` by a tag: a ``{`` followed later by a ``}`` with
    something between them (the first such pair counts)."""
    start = name.find("{")
    return start >= 0 and name.find("}", start + 1) > start + 1


def slot_prefix(prefix: str, client: object) -> str:
    """``prefix`` as the common part of keys that must share a slot: ``{prefix}`` on a cluster
    (a cluster client, or a cluster's URL; unless it holds a hash tag already), unchanged
    elsewhere."""
    if not names_cluster(client) or has_hash_tag(prefix):
        return prefix
    return "{" + prefix + "}"


def client_kwargs(client: Any) -> dict[str, Any]:
    """The connection options of a client, single or cluster (``{}`` when it has none)."""
    getter = getattr(client, "get_connection_kwargs", None)
    if getter is None:  # pragma: no cover - not a redis-py client
        return {}
    found: dict[str, Any] = getter()
    return found


def describe(client: Any) -> str:
    """A short name for logs: where the client connects."""
    if is_cluster(client):
        nodes = client.get_nodes() if hasattr(client, "get_nodes") else []
        return f"Redis Cluster ({len(nodes)} nodes)" if nodes else "Redis Cluster"
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    service = getattr(pool, "service_name", None)
    if service is not None:
        return f"Redis (Sentinel service {service!r})"
    host, port = kwargs.get("host"), kwargs.get("port")
    if host is not None:
        return f"Redis at {host}:{port}"
    return "Redis"


class Script:
    """A Lua script run by its SHA (``EVALSHA``), and by its text (``EVAL``) where the node
    that owns the keys does not know it: after a failover or a resharding the new owner has
    never seen the script, and some redis-py releases (5.0, the lowest supported) load it
    again on another node of a cluster than the one the keys are on."""

    def __init__(self, client: Any, source: str) -> None:
        self._client = client
        self._source = source
        self._script = client.register_script(source)

    async def __call__(self, keys: Any = (), args: Any = ()) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await self._script(keys=keys, args=args)
        except NoScriptError:
            return await self._client.eval(self._source, len(keys), *keys, *args)

    async def confirmed(
        self, keys: list[Any], args: list[Any], replicas: int, wait_seconds: float
    ) -> tuple[Any, int]:
        """Run the script, then ``WAIT`` until `replicas` replicas have its writes (or
        `wait_seconds` pass): its reply, and how many replicas confirmed.

        ``WAIT`` counts the writes of its own connection, so both go in one pipeline: one
        connection on a single Redis; on a cluster, the connection to the primary of the
        first key's slot. If that slot moved meanwhile (a failover: redis-py sent the script
        again elsewhere), the count (or the refusal of a node that is a replica now) says
        nothing about this write, and 0 is returned."""
        from redis.exceptions import NoScriptError

        client = self._client
        cluster = is_cluster(client)
        node: Any = client.get_node_from_key(keys[0]) if cluster else None
        routing = {"target_nodes": [node]} if cluster else {}
        wait = ("WAIT", replicas, max(1, round(wait_seconds * 1000)))
        for command in (("EVALSHA", self._script.sha), ("EVAL", self._source)):
            async with client.pipeline(transaction=False) as pipe:
                pipe.execute_command(*command, len(keys), *keys, *args)
                pipe.execute_command(*wait, **routing)
                reply, confirmed = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):
                continue  # a node that has not seen the script: sent again as its text
            if isinstance(reply, Exception):
                raise reply
            if cluster and client.get_node_from_key(keys[0]).name != node.name:
                # the slot moved (the script was redirected): the WAIT went to the old owner,
                # now perhaps a replica that refuses it, and says nothing about this write
                return reply, 0
            if isinstance(confirmed, Exception):
                raise confirmed
            return reply, int(confirmed)
        raise AssertionError("EVAL never answers NOSCRIPT")  # pragma: no cover
