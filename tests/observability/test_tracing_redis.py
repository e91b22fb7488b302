"""The trace context across Redis, at the storage level: channel messages on Redis Streams (and
not on pub/sub), and task options written by this version and by older ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import msgspec
import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from joey._redis import from_url
from joey.channels import Channels, RedisPubSubBackend, RedisStreamsBackend
from joey.observability.tracing import Tracing
from joey.tasks import Backoff
from joey.tasks.redis.records import Options, decode_options, encode
from tests.redis_server import RedisServer, shared_redis

CARRIER = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture(scope="module")
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A redis-server for the module (the session's Redis Cluster with
    ``JOEY_TEST_REDIS=cluster``: tests/redis_server.py)."""
    with shared_redis(request) as server:
        yield server


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracing(provider: TracerProvider) -> Tracing:
    return Tracing(tracer_provider=provider)


async def test_streams_carry_the_publishers_trace_to_another_process(
    redis_server: RedisServer, tracing: Tracing, provider: TracerProvider
) -> None:
    publisher = Channels(RedisStreamsBackend(redis_server.url, prefix="tr1"))
    publisher.trace_with(tracing)
    subscriber = Channels(RedisStreamsBackend(redis_server.url, prefix="tr1"))
    tracer = provider.get_tracer("test")  # a span to publish from, as a handler's
    async with publisher, subscriber, subscriber.subscribe("room") as subscription:
        with tracer.start_as_current_span("handler") as span:
            await publisher.publish("room", "hi")
        live = await asyncio.wait_for(anext(subscription), 10)
        async with subscriber.subscribe("room", since="0-0") as replay:
            replayed = await asyncio.wait_for(anext(replay), 10)
    trace_id = format(span.get_span_context().trace_id, "032x")
    for message in (live, replayed):  # live from XREAD, and replayed from XRANGE
        assert message.text == "hi"
        assert message.trace is not None and trace_id in message.trace["traceparent"]


async def test_stream_entries_without_or_with_a_bad_trace_field_read_as_before(
    redis_server: RedisServer,
) -> None:
    client: aioredis.Redis = from_url(redis_server.url)
    channels = Channels(RedisStreamsBackend(redis_server.url, prefix="tr2"))
    async with channels, channels.subscribe("room") as subscription:
        await client.xadd("tr2:room", {"d": b"old"})  # an older Joey, or another writer
        await client.xadd("tr2:room", {"d": b"odd", "t": b"not json"})
        old = await asyncio.wait_for(anext(subscription), 10)
        odd = await asyncio.wait_for(anext(subscription), 10)
    await client.aclose()
    assert (old.text, old.trace) == ("old", None)
    assert (odd.text, odd.trace) == ("odd", None)


async def test_pubsub_messages_stay_bare_bytes(
    redis_server: RedisServer, tracing: Tracing, provider: TracerProvider
) -> None:
    channels = Channels(RedisPubSubBackend(redis_server.url, prefix="tr3"))
    channels.trace_with(tracing)
    async with channels, channels.subscribe("room") as subscription:
        with provider.get_tracer("test").start_as_current_span("handler"):
            await channels.publish("room", "hi")
        message = await asyncio.wait_for(anext(subscription), 10)
    assert (message.data, message.trace) == (b"hi", None)


def test_task_options_of_an_older_version_decode_without_a_trace() -> None:
    class OlderOptions(msgspec.Struct, array_like=True):  # the options before issue #27
        timeout: float | None = None
        retries: int | None = None
        backoff: Backoff | None = None

    old = msgspec.msgpack.encode(OlderOptions(timeout=5.0, retries=2))
    assert decode_options(old) == Options(timeout=5.0, retries=2, trace=None)
    # and an older worker reads what this version writes, ignoring the trace
    new = encode(Options(retries=1, trace=CARRIER))
    assert msgspec.msgpack.decode(new, type=OlderOptions) == OlderOptions(retries=1)
