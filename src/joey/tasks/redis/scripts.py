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
Key layout: see the docstring of `joey.tasks.redis`.
"""

from __future__ import annotations

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

# Releases a task's unique key if it still points at the task (used by the scripts below).
# `declared`: the unique key its stream entry carries, which the caller declared in KEYS;
# `recorded`: the one the task's record names. They differ only for an entry written before
# entries carried their unique key (an older version, on a single Redis): the record's is used.
_RELEASE_UNIQUE = """
local function release_unique(declared, recorded, id)
  if not recorded or recorded == '' then return end
  local key = declared
  if declared ~= recorded then key = recorded end
  if redis.call('GET', key) == id then redis.call('DEL', key) end
end
"""

# Starts, in one round trip, the runs started before they run: entries taken over from a silent
# worker (XAUTOCLAIM: `max_deliveries` is checked here) and entries an older version wrote (the
# record holds what they lack). Idempotent per delivery (the entry id and its delivery count in
# the PEL, recorded as `delivery`): a start re-sent after a blip answers the same. Per entry:
# * {'run', attempts, failures, delivery} - started (or already started by this very delivery,
#   or, for mode 0, by this worker's run of this entry before its own XAUTOCLAIM took it again);
#   with mode 2 or 3 followed by the task's name, payload and options from its hash (an entry
#   written by an older version holds only the id);
# * {'skip'} - the task is already final, or its record expired: the entry is acked;
# * {'lost'} - a reclaimed entry (mode 1, 3 or 5) delivered `max_deliveries` times without any
#   run reporting back (each worker died): dead-lettered here;
# * {'gone'} - the entry is no longer pending for this consumer (taken over, or finished):
#   nothing is changed.
# A reclaimed entry whose first delivery ran without a start (mode 5), its record still QUEUED
# (nothing recorded that run), counts that run too: a delivery and an attempt.
# KEYS: stream, dead list, then per entry its task key and the unique key its entry carries
#       (the task key again when none)
# ARGV: now, consumer, max_deliveries, group, dead_ttl, keep_dead, then per entry its id, the
#       task id and a mode: 0 first delivery, 1 reclaimed, +2 the entry carries only the id,
#       +4 its first delivery ran without a start (the entry carries its failure count)
START = (
    _RELEASE_UNIQUE
    + """
local out = {}
local max = tonumber(ARGV[3])
for i = 3, #KEYS, 2 do
  local key = KEYS[i]
  local at = 7 + (i - 3) / 2 * 3
  local entry, id, mode = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  local p = redis.call('XPENDING', KEYS[1], ARGV[4], entry, entry, 1, ARGV[2])
  local answer
  if #p == 0 then
    answer = {'gone'}
  else
    local count = tonumber(p[1][4])
    local delivery = entry .. '/' .. count
    local f = redis.call('HMGET', key, 'state', 'attempts', 'failures', 'deliveries', 'unique',
                         'delivery', 'name', 'payload', 'options', 'worker')
    local st = f[1]
    -- The same run's start again: the same delivery, or (mode 0, a run that is going on here)
    -- the same entry under this worker after its own XAUTOCLAIM bumped the delivery count.
    if st == 'running' and (f[6] == delivery or (mode == 0 and f[10] == ARGV[2] and f[6]
        and string.sub(f[6], 1, #entry + 1) == entry .. '/')) then
      answer = {'run', tonumber(f[2]), tonumber(f[3] or '0'), f[6]}
    elseif not st or st == 'succeeded' or st == 'dead' or st == 'cancelled' then
      redis.call('XACK', KEYS[1], ARGV[4], entry)
      redis.call('XDEL', KEYS[1], entry)
      answer = {'skip'}
    else
      local begun = 1
      if mode >= 4 and st == 'queued' then begun = 2 end
      local deliveries = tonumber(f[4] or '0') + begun
      if mode % 2 == 1 and deliveries > max then
        redis.call('HSET', key, 'state', 'dead', 'finished_at', ARGV[1], 'run_at', '',
                   'attempts', tonumber(f[2] or '0') + begun - 1, 'deliveries', deliveries - 1,
                   'error', 'WorkerLost: delivered ' .. max .. ' times, and each time its ' ..
                   'worker stopped responding before the run ended (max_deliveries)')
        redis.call('EXPIRE', key, ARGV[5])
        redis.call('LPUSH', KEYS[2], id)
        redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
        redis.call('XACK', KEYS[1], ARGV[4], entry)
        redis.call('XDEL', KEYS[1], entry)
        release_unique(KEYS[i + 1], f[5], id)
        answer = {'lost'}
      else
        local attempts = tonumber(f[2] or '0') + begun
        redis.call('HSET', key, 'state', 'running', 'started_at', ARGV[1], 'worker', ARGV[2],
                   'run_at', '', 'attempts', attempts, 'deliveries', deliveries,
                   'delivery', delivery)
        answer = {'run', attempts, tonumber(f[3] or '0'), delivery}
      end
    end
    if answer[1] == 'run' and mode % 4 >= 2 then
      answer[5] = f[7] or ''
      answer[6] = f[8] or ''
      answer[7] = f[9] or ''
    end
  end
  out[#out + 1] = answer
end
return out
"""
)

# Dead-letters stream entries Joey did not write (no task id, or one that is not text): each
# becomes a dead task record of its own, whose error says what the entry held, and the entry is
# acked and deleted, so nothing runs it and nothing delivers it again. Only while the entry is
# pending for this consumer (each entry once, whichever worker holds it). Returns per entry 1
# if dead-lettered here, else 0.
# KEYS: stream, dead list, then one new task key per entry
# ARGV: group, consumer, now, dead_ttl, keep_dead, then per entry its id, the new task id, a
#       name and the error
FOREIGN = """
local out = {}
for i = 3, #KEYS do
  local at = 6 + (i - 3) * 4
  local entry, id = ARGV[at], ARGV[at + 1]
  out[#out + 1] = 0
  if #redis.call('XPENDING', KEYS[1], ARGV[1], entry, entry, 1, ARGV[2]) > 0 then
    redis.call('HSET', KEYS[i], 'name', ARGV[at + 2], 'payload', '', 'options', '',
               'state', 'dead', 'attempts', 0, 'failures', 0, 'deliveries', 0,
               'max_attempts', 1, 'enqueued_at', ARGV[3], 'finished_at', ARGV[3],
               'error', ARGV[at + 3], 'run_at', '', 'unique', '', 'entry', '')
    redis.call('EXPIRE', KEYS[i], ARGV[4])
    redis.call('LPUSH', KEYS[2], id)
    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
    redis.call('XACK', KEYS[1], ARGV[1], entry)
    redis.call('XDEL', KEYS[1], entry)
    out[#out] = 1
  end
end
return out
"""

# Records how runs ended and releases their stream entries: every finish ready at that moment,
# in one call, atomically and idempotently. Per entry, outcome 'ok' -> SUCCEEDED, 'retry' ->
# FAILED (due again at run_at), 'dead' -> DEAD. The run token is the entry's ownership: applied
# only while the entry is pending for this consumer (XAUTOCLAIM by another worker moves it; a
# finish that was applied acked it, so a replay is a no-op). One XPENDING over the batch's ids,
# one XACK and one XDEL. Per task one HSET of what the worker knows from the entry (attempts,
# failures, its start time when no start recorded it): nothing read or incremented. A record
# that is gone (expired, deleted) is not brought back: only then is every field HSET wrote new,
# and the key is deleted again. An entry an older version wrote (`read` 1) reads its record:
# applied only while QUEUED or RUNNING. Returns per entry 1 if applied, else 0.
# KEYS: stream, delayed, dead list, then per entry its task key and the unique key its entry
#       carries (the task key again when none)
# ARGV: group, consumer, now, keep_dead, the lowest and the highest of the entry ids, how many
#       entries to look for in the PEL between them, then per entry: its id, the task id,
#       outcome, ttl, error, result, run_at, failures (of 'retry' and 'dead'), max_attempts,
#       attempts, started_at ('' when a start recorded it), read
FINISH = (
    _RELEASE_UNIQUE
    + """
local per = 12
local pending = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[5], ARGV[6], ARGV[7],
                              ARGV[2])) do
  pending[p[1]] = true
end
local function finish(key, declared, a)
  local id, outcome = ARGV[a + 1], ARGV[a + 2]
  local recorded = declared
  if declared == key then recorded = '' end
  if ARGV[a + 11] == '1' then
    local f = redis.call('HMGET', key, 'state', 'unique')
    if f[1] ~= 'queued' and f[1] ~= 'running' then return 0 end
    recorded = f[2]
  end
  local fields = {'attempts', ARGV[a + 9], 'max_attempts', ARGV[a + 8], 'entry', '',
                  'error', ARGV[a + 4]}
  if ARGV[a + 10] ~= '' then
    table.insert(fields, 'started_at')
    table.insert(fields, ARGV[a + 10])
    table.insert(fields, 'worker')
    table.insert(fields, ARGV[2])
  end
  local more
  if outcome == 'ok' then
    more = {'state', 'succeeded', 'result', ARGV[a + 5], 'finished_at', ARGV[3]}
  elseif outcome == 'retry' then
    more = {'state', 'failed', 'run_at', ARGV[a + 6], 'failures', ARGV[a + 7], 'deliveries', 0}
  else
    more = {'state', 'dead', 'finished_at', ARGV[3], 'failures', ARGV[a + 7]}
  end
  for _, v in ipairs(more) do table.insert(fields, v) end
  if redis.call('HSET', key, unpack(fields)) == #fields / 2 then
    redis.call('DEL', key)  -- the record was gone: not brought back
    return 0
  end
  if outcome == 'retry' then
    redis.call('ZADD', KEYS[2], ARGV[a + 6], id)
    return 1
  end
  redis.call('EXPIRE', key, ARGV[a + 3])
  if outcome == 'dead' then
    redis.call('LPUSH', KEYS[3], id)
    redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
  end
  release_unique(declared, recorded, id)
  return 1
end
local out, acked = {}, {}
for i = 0, (#ARGV - 7) / per - 1 do
  local a = 8 + i * per
  out[i + 1] = 0
  if pending[ARGV[a]] then
    acked[#acked + 1] = ARGV[a]
    out[i + 1] = finish(KEYS[4 + 2 * i], KEYS[5 + 2 * i], a)
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
return out
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
# its attempt and delivery are taken back; a first delivery's run has recorded nothing.
# KEYS: stream, task. ARGV: group, entry id, task id, cancelled
HAND_BACK = (
    _ADD_ENTRY
    + """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local f = redis.call('HMGET', KEYS[2], 'state', 'name', 'payload', 'options', 'unique',
                     'attempts', 'failures', 'deliveries')
if f[1] == 'running' or f[1] == 'queued' then
  local attempts, deliveries = tonumber(f[6] or '0'), tonumber(f[8] or '0')
  if ARGV[4] == '1' and f[1] == 'running' then
    attempts, deliveries = attempts - 1, deliveries - 1
  end
  local entry = add_entry(KEYS[1], ARGV[3], f[2], f[3], f[4], f[5], attempts + 1,
                          tonumber(f[7] or '0'))
  redis.call('HSET', KEYS[2], 'state', 'queued', 'worker', '', 'entry', entry,
             'attempts', attempts, 'deliveries', deliveries)
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

# Removes the group's consumers that hold nothing and were idle longer than ARGV[2] ms: the
# consumers of workers that were killed (their entries were taken over meanwhile). Atomic, so
# an entry cannot be delivered to a consumer between the check and its removal.
# KEYS: stream. ARGV: group, idle ms, this worker's consumer (never removed)
REAP = """
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"""

# The heartbeat: re-claims the entries this worker runs, resetting their idle time (JUSTID:
# without counting a delivery) so XAUTOCLAIM elsewhere leaves them alone. Only those still
# pending for this consumer: one another worker took over after missed beats stays with it
# (claiming it back would steal the run token from the worker now running it). Returns the
# entries that were taken over.
# It records the start of each first delivery still running (once: a run that ends before a
# heartbeat needs none), since its re-claim resets the idle time `status()` read the start from.
# Only a start still missing (QUEUED), and only while the entry is pending here.
# KEYS: stream, then the task key of each run whose start it records
# ARGV: group, consumer, how many entries n, the n entry ids, then per start to record: its
#       entry id, started_at and attempt
HEARTBEAT = """
local lost, mine = {}, {}
local n = tonumber(ARGV[3])
for i = 4, 3 + n do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    mine[ARGV[i]] = p[1][4]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
for j = 2, #KEYS do
  local a = 4 + n + (j - 2) * 3
  local entry = ARGV[a]
  local count = mine[entry]
  if count then
    local f = redis.call('HMGET', KEYS[j], 'state', 'deliveries')
    if f[1] == 'queued' then
      redis.call('HSET', KEYS[j], 'state', 'running', 'started_at', ARGV[a + 1],
                 'worker', ARGV[2], 'run_at', '', 'attempts', ARGV[a + 2],
                 'deliveries', tonumber(f[2] or '0') + 1, 'delivery', entry .. '/' .. count)
    end
  end
end
return lost
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
