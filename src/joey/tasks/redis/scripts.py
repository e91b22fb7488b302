"""The Lua scripts of the Redis backend: every state change is one atomic script.

Each script keeps to the task-state rules of `state.py`. A worker's *run token* is the stream
entry's ownership in the consumer group's pending list (PEL): the finish script applies a result
only while the entry is pending for this worker's consumer. XAUTOCLAIM by another worker moves
the ownership, and an applied finish acks the entry, so a commit retried after a Redis blip (that
may have been applied already) or one from a worker whose task was taken over is a no-op. The
PEL is persisted (AOF/RDB) with the hashes.

What Redis runs per task (issue #28: the work a shared Redis does is the capacity limit):

* ENQUEUE: XLEN + ZCARD (the `max_queue` check), XADD, HSET.
* A first delivery (XREADGROUP, shared by what one read brings) sends no start: the entry
  carries the attempt and the failures so far, the run begins at once, and `status()` reads a
  QUEUED task whose entry is pending in the group as RUNNING (STATUS). A run still going at a
  heartbeat has its start recorded there (once).
* FINISH: one script for every finish ready at that moment: one XPENDING, one XACK and one
  XDEL for the batch; per task one HSET (its start, outcome and counters, computed from what the
  entry carried: no read, no HINCRBY) and EXPIRE (or ZADD for a retry).

A reclaimed entry (XAUTOCLAIM) is still started before it runs (START: `max_deliveries` is
checked there), as is an entry an older version wrote (its record says what the entry lacks).
Key layout: see the docstring of `joey.tasks.redis`. The scripts of a worker's runs (START,
FINISH, HEARTBEAT, FOREIGN, REAP) are in `run_scripts`, and found here by name with the others;
the queue's (enqueue, status, delayed tasks, hand back, dead letters, periodic ticks) are below.
"""

from __future__ import annotations

from .run_scripts import FINISH, FOREIGN, HEARTBEAT, REAP, START

# Adds a task's stream entry; it carries the task's unique key (when it has one), so that the
# worker declares that key to the scripts that release it, and which attempt it starts and the
# failures before it: a worker runs it and records its outcome without reading the record.
_ADD_ENTRY = """
local function add_entry(stream, id, name, payload, options, unique, attempt, failures)
  local fields = {'id', id, 'name', name, 'payload', payload, 'options', options,
                  'attempt', attempt, 'failures', failures}
  if unique and unique ~= '' then
    table.insert(fields, 'unique')
    table.insert(fields, unique)
  end
  return redis.call('XADD', stream, '*', unpack(fields))
end
"""

# Adds a task. Returns {1, id} (added), {0} (the queue holds `max_queue` tasks) or {2, id} (a
# task with the same unique key is queued or running: its id). With a unique key in 'replace'
# mode, a task with that key that has not started yet is cancelled and this one takes its place.
# A task whose entry a worker has read counts as started, RUNNING or not yet: its run begins
# before its start is recorded.
# Every key is declared (cluster-correct): the caller reads the unique key first and passes the
# record of the task it names; {3} says the unique key changed since (read it again).
# KEYS: task, stream, delayed, unique (the task key again when there is none), the record of
#       the task the unique key named when read (the task key again when none)
# ARGV: id, limit, run_at ('' = now), name, payload, options, unique mode ('', keep, replace),
#       the id the unique key held when read ('' none), now, max_attempts, ttl of a replaced
#       task's record, group
ENQUEUE = (
    _ADD_ENTRY
    + """
local id = ARGV[1]
local old, old_state
if ARGV[7] ~= '' then
  old = redis.call('GET', KEYS[4])
  if (old or '') ~= ARGV[8] then return {3} end
  if old then old_state = redis.call('HGET', KEYS[5], 'state') end
  if old_state == 'queued' then
    -- A worker that read the entry runs it already (its start follows the run): running.
    local e = redis.call('HGET', KEYS[5], 'entry')
    if e and e ~= '' then
      local p = redis.pcall('XPENDING', KEYS[2], ARGV[12], e, e, 1)
      if type(p) == 'table' and p[1] then old_state = 'running' end
    end
  end
  if old_state == 'queued' or old_state == 'running' or old_state == 'failed' then
    if ARGV[7] == 'keep' then return {2, old} end
  else
    old = nil
  end
end
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) >= limit then
  return {0}
end
if old and old_state ~= 'running' then
  local okey = KEYS[5]
  local entry = redis.call('HGET', okey, 'entry')
  if entry and entry ~= '' then redis.call('XDEL', KEYS[2], entry) end
  redis.call('ZREM', KEYS[3], old)
  redis.call('HSET', okey, 'state', 'cancelled', 'error', 'Replaced: by task ' .. id,
             'finished_at', ARGV[9], 'run_at', '')
  redis.call('EXPIRE', okey, ARGV[11])
end
local unique = ''
if ARGV[7] ~= '' then
  unique = KEYS[4]
  redis.call('SET', unique, id)
end
local entry = ''
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[3], id)
else
  entry = add_entry(KEYS[2], id, ARGV[4], ARGV[5], ARGV[6], unique, 1, 0)
end
redis.call('HSET', KEYS[1], 'name', ARGV[4], 'payload', ARGV[5], 'options', ARGV[6],
           'state', 'queued', 'attempts', 0, 'failures', 0, 'deliveries', 0,
           'max_attempts', ARGV[10], 'enqueued_at', ARGV[9], 'run_at', ARGV[3],
           'unique', unique, 'entry', entry)
return {1, id}
"""
)

# What `status()` reads: the task's record, and whether a worker holds its entry. A QUEUED task
# whose entry is pending in the group has begun (a first delivery records nothing as it runs):
# the entry's idle ms say since when (until a heartbeat, which records the start), else -1.
# KEYS: task, stream. ARGV: group
STATUS = """
local raw = redis.call('HGETALL', KEYS[1])
local state, entry
for i = 1, #raw, 2 do
  if raw[i] == 'state' then state = raw[i + 1] elseif raw[i] == 'entry' then entry = raw[i + 1] end
end
local idle = -1
if state == 'queued' and entry and entry ~= '' then
  local p = redis.pcall('XPENDING', KEYS[2], ARGV[1], entry, entry, 1)
  if type(p) == 'table' and p[1] then idle = p[1][3] end
end
return {raw, idle}
"""

# Moves due tasks from the delayed set to the stream, their payload with them: the tasks the
# caller read as due (ZRANGE), each moved only if still in the set (ZREM: of two promoters, one
# moves it). Returns how many moved and the score of the next task in the set ('' if none), so
# the caller knows how long it may sleep. KEYS: delayed, stream, a task key per id. ARGV: ids
PROMOTE = (
    _ADD_ENTRY
    + """
local moved = 0
for i = 3, #KEYS do
  local id = ARGV[i - 2]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    moved = moved + 1
    local f = redis.call('HMGET', KEYS[i], 'state', 'name', 'payload', 'options', 'unique',
                         'attempts', 'failures')
    if f[1] == 'queued' or f[1] == 'failed' then
      local entry = add_entry(KEYS[2], id, f[2], f[3], f[4], f[5], tonumber(f[6] or '0') + 1,
                              tonumber(f[7] or '0'))
      redis.call('HSET', KEYS[i], 'state', 'queued', 'run_at', '', 'entry', entry)
    end
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {moved, nxt[2] or ''}
"""
)

# Returns an entry this worker holds to the stream for another worker (used by stop()). An
# attempt stop() cancelled (ARGV[4] == '1') is not counted: if its start was recorded (RUNNING),
# its attempt and delivery are taken back; a first delivery's run has recorded nothing. A run
# that ended here but whose finish gave up (Redis unreachable for commit_timeout: ARGV[4] '2',
# or '3' when it failed) counts: its attempt and delivery when no start recorded them (QUEUED),
# and its failure, toward `retries`.
# KEYS: stream, task. ARGV: group, entry id, task id, how it ran here: '0' not at all (read,
#       never handed to a run), '1' cancelled, '2' its finish gave up, '3' the same, failed
HAND_BACK = (
    _ADD_ENTRY
    + """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local f = redis.call('HMGET', KEYS[2], 'state', 'name', 'payload', 'options', 'unique',
                     'attempts', 'failures', 'deliveries')
if f[1] == 'running' or f[1] == 'queued' then
  local attempts, deliveries = tonumber(f[6] or '0'), tonumber(f[8] or '0')
  local failures = tonumber(f[7] or '0')
  if ARGV[4] == '1' and f[1] == 'running' then
    attempts, deliveries = attempts - 1, deliveries - 1
  elseif (ARGV[4] == '2' or ARGV[4] == '3') and f[1] == 'queued' then
    attempts, deliveries = attempts + 1, deliveries + 1
  end
  if ARGV[4] == '3' then failures = failures + 1 end
  local entry = add_entry(KEYS[1], ARGV[3], f[2], f[3], f[4], f[5], attempts + 1, failures)
  redis.call('HSET', KEYS[2], 'state', 'queued', 'worker', '', 'entry', entry,
             'attempts', attempts, 'deliveries', deliveries, 'failures', failures)
  return 1
end
return 0
"""
)

# Gives a dead task a fresh set of attempts. KEYS: dead list, task, stream. ARGV: id
REQUEUE = (
    _ADD_ENTRY
    + """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('PERSIST', KEYS[2])
local f = redis.call('HMGET', KEYS[2], 'name', 'payload', 'options', 'unique')
local entry = add_entry(KEYS[3], ARGV[1], f[1], f[2], f[3], f[4], 1, 0)
redis.call('HSET', KEYS[2], 'state', 'queued', 'attempts', 0, 'failures', 0, 'deliveries', 0,
           'finished_at', '', 'error', '', 'entry', entry)
return 1
"""
)

# Removes a dead task for good. KEYS: dead list, task. ARGV: id
DROP = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
return 1
"""

# Claims one tick of a periodic task and enqueues its run, atomically: of any number of
# workers asking for the same tick, exactly one gets 1. The run's record keeps its tick.
# KEYS: periodic hash, task, stream.
# ARGV: task name, tick (Unix seconds), id, payload, options, now, max_attempts
TICK = """
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) <= last then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local entry = redis.call('XADD', KEYS[3], '*', 'id', ARGV[3], 'name', ARGV[1],
                         'payload', ARGV[4], 'options', ARGV[5], 'attempt', 1, 'failures', 0)
redis.call('HSET', KEYS[2], 'name', ARGV[1], 'payload', ARGV[4], 'options', ARGV[5],
           'state', 'queued', 'attempts', 0, 'failures', 0, 'deliveries', 0,
           'max_attempts', ARGV[7], 'enqueued_at', ARGV[6], 'run_at', '', 'unique', '',
           'entry', entry, 'tick', ARGV[2])
return 1
"""


__all__ = [
    "DROP",
    "ENQUEUE",
    "FINISH",
    "FOREIGN",
    "HAND_BACK",
    "HEARTBEAT",
    "PROMOTE",
    "REAP",
    "REQUEUE",
    "START",
    "STATUS",
    "TICK",
]
