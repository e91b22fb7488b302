"""The Lua scripts of a worker's runs (see `scripts` for the queue's, and for what Redis runs per
task): the start of a reclaimed entry, the batched finish, the heartbeat, the dead-lettering of
entries Joey did not write, and the reaping of dead consumers. Each keeps to the task-state rules
of `state.py`; the run token is the entry's ownership in the consumer group's pending list.
"""

from __future__ import annotations

# Releases a task's unique key if it still points at the task (used by the scripts below).
# `declared`: the unique key its stream entry carries, which the caller declared in KEYS;
# `recorded`: the one the task's record names. They differ only for an entry written before
# entries carried their unique key (an older version, on a single Redis): the record's is used.
# A key holding what Joey did not write (WRONGTYPE) does not point at the task: left alone,
# its error returned (`refused`: the error of a `pcall`, as text) for the caller to report.
_RELEASE_UNIQUE = """
local function refused(reply, what)
  if type(reply) == 'table' and reply.err then return what .. ': ' .. reply.err end
end
local function release_unique(declared, recorded, id)
  if not recorded or recorded == '' then return end
  local key = declared
  if declared ~= recorded then key = recorded end
  local held = redis.pcall('GET', key)
  if held == id then redis.call('DEL', key) end
  return refused(held, 'its unique key')
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
# and the key is deleted again. A finish that reads its record (`read` 1: an entry an older
# version wrote, or a run whose entry came back to this worker after missed heartbeats, which
# another worker may have started meanwhile) applies only while QUEUED or RUNNING, and never
# lowers `attempts`. Each entry stands alone: a call that can fail on a key holding what Joey
# did not write (WRONGTYPE) is a `pcall` whose error is that entry's (Lua rolls nothing back:
# an error raised would leave the finishes before it applied, un-acked). The entry is acked all
# the same, unless its retry could not be scheduled: left pending, it runs again once taken over.
# Returns per entry 1 if applied, else 0; or {1 or 0, error} when Redis refused part of it.
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
-- Returns whether it was applied, whether to ack the entry, and an error (or nil).
local function finish(key, declared, a)
  local id, outcome, attempts, err = ARGV[a + 1], ARGV[a + 2], ARGV[a + 9], nil
  local recorded = declared
  if declared == key then recorded = '' end
  if ARGV[a + 11] == '1' then
    local f = redis.pcall('HMGET', key, 'state', 'unique', 'attempts')
    err = refused(f, 'its record')
    if err or (f[1] ~= 'queued' and f[1] ~= 'running') then return 0, true, err end
    recorded = f[2]
    if tonumber(f[3] or '0') > tonumber(attempts) then attempts = f[3] end
  end
  local fields = {'attempts', attempts, 'max_attempts', ARGV[a + 8], 'entry', '',
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
  local written = redis.pcall('HSET', key, unpack(fields))
  err = refused(written, 'its record')
  if err then return 0, true, err end
  if written == #fields / 2 then
    redis.call('DEL', key)  -- the record was gone: not brought back
    return 0, true
  end
  if outcome == 'retry' then
    err = refused(redis.pcall('ZADD', KEYS[2], ARGV[a + 6], id),
                  'the delayed set (not scheduled: it runs again once taken over)')
    return 1, not err, err
  end
  redis.call('EXPIRE', key, ARGV[a + 3])
  if outcome == 'dead' then
    err = refused(redis.pcall('LPUSH', KEYS[3], id), 'the dead list')
    if not err then redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1) end
  end
  return 1, true, release_unique(declared, recorded, id) or err
end
local out, acked = {}, {}
for i = 0, (#ARGV - 7) / per - 1 do
  local a = 8 + i * per
  out[i + 1] = 0
  if pending[ARGV[a]] then
    local applied, ack, err = finish(KEYS[4 + 2 * i], KEYS[5 + 2 * i], a)
    if ack then acked[#acked + 1] = ARGV[a] end
    out[i + 1] = applied
    if err then out[i + 1] = {applied, err} end
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
return out
"""
)

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
# Only a start still missing (QUEUED), and only while the entry is pending here: a start is
# recorded for an entry that was taken over by nobody (the worker now holding it records its
# own), so the worker marks a run started only by the second list this returns.
# Returns {the entries that were taken over, the entries of the starts it was given that need
# no recording any more: recorded now, or the record is no longer QUEUED}.
# KEYS: stream, then the task key of each run whose start it records
# ARGV: group, consumer, how many entries n, the n entry ids, then per start to record: its
#       entry id, started_at and attempt
HEARTBEAT = """
local lost, mine, started = {}, {}, {}
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
    started[#started + 1] = entry
  end
end
return {lost, started}
"""


__all__ = [
    "FINISH",
    "FOREIGN",
    "HEARTBEAT",
    "REAP",
    "START",
]
