"""The Redis task backend: one durable queue shared by web processes and worker processes.

Built directly on Redis Streams with a consumer group (see docs/background-tasks.md for why not
saq, arq or taskiq). Keys, all under `prefix` (default ``joey:tasks``; on a Redis Cluster
``{joey:tasks}``, a hash tag: every key of a queue in one slot, each script on one shard):

```text
{prefix}:stream      stream of ready tasks, one entry per delivery: id, name, payload, options
                     (and the task's unique key, if any: the scripts that free it declare it)
{prefix}:delayed     sorted set: task id -> Unix time it is due (delays and retry backoffs)
{prefix}:dead        list of dead task ids, newest first, trimmed to `keep_dead`
{prefix}:task:<id>   hash: name, encoded arguments, per-call options, state, attempts, ...
{prefix}:unique:<k>  the id of the queued or running task enqueued with unique key <k>
{prefix}:periodic    hash: periodic task name -> the last tick claimed
{prefix}:stats       hash: counters per task name (succeeded, failed, dead, run seconds)
```

A task's life in Redis, one Lua script per step (`scripts.py`):

1. *enqueue* writes the hash and adds a stream entry carrying the payload (or a delayed entry);
2. a consuming process reads entries with XREADGROUP (a blocking read: new tasks wake it at
   once) and runs them at once, with no start sent: the entry carries the attempt and the
   failures so far, and `status()` reads a task whose entry a worker holds as running (a
   reclaimed entry, or one an older version wrote, is *started* by a script before it runs);
3. it runs the function and *finishes*: one script for every finish ready at that moment
   records each outcome with its start and acks the entries, each provided the entry is still
   pending for this worker (the run token).

While a task runs, its worker re-claims the entry every `visibility_timeout / 3` (a heartbeat),
so only a worker that is gone - killed, frozen, cut off - lets an entry sit idle past
`visibility_timeout`; any other worker then takes it over with XAUTOCLAIM and runs it again.
Delivery is at least once: a worker's death is not the task's failure, so the extra run does
not count toward `retries`, but a task is delivered at most `max_deliveries` times per attempt.

Every state change after a run is retried through Redis outages (bounded by `commit_timeout`)
and is idempotent (the start per delivery, the finish per entry), so a blip neither loses a
result nor runs a completed task again. Entries of older versions carry only the id (or no
failure count): the start script returns what they lack from the hash. The
worker's client has no socket timeout (which would put every command through `wait_for`);
each blocking read and each commit is bounded by one `asyncio.timeout` instead.

The modules, by concept: `backend` (`RedisTasks`, the public API: start and stop, enqueue,
status, dead letters), `consumer` (the worker side: read, start, reclaim, hand-back at
shutdown), `run` (one delivered run as a state machine: the rules and the table the consumer
runs), `runner` (running one and committing its outcome), `upkeep` (the loops beside it:
heartbeat, delayed and periodic tasks, counters), `common` (options, key names, the client,
outages), `records` (how arguments, options and results are encoded, and the `TaskInfo` read
back), `scripts` (the Lua scripts), `operations` (counts per task name and place, the
Prometheus text).
"""

from __future__ import annotations

from .backend import RedisTasks

__all__ = ["RedisTasks"]
