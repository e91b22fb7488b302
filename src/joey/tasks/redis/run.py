"""One delivered run of a task in a Redis worker, as a state machine: its rules, and the table of
states x events -> (action, next state) that the consumer runs. No I/O here: the consumer sends
the scripts and feeds their answers in as events; `Run.handle` says what to do next.

The rules (issue #17's delivery guarantee, with issue #28's less Redis work per task):

1. A run is made from one stream entry this worker read (`read`). A first delivery that carries
   its task, its attempt and its failures so far (`delivered`) runs at once, and sends no start:
   its finish records the start with the outcome, a heartbeat records it for a run still going,
   and until then `status()` reads the task as RUNNING from the group's pending list. An entry
   taken over from a silent worker, or written by an older version (`reclaimed`), runs only once
   its start answers `run`: that is where `max_deliveries` is checked, and where what an old
   entry lacks comes from.
2. The start script answers for each run: `run` (started: its attempt and delivery recorded),
   `skip` (the task is final already or its record expired; the entry was acked), `lost` (a
   reclaimed entry delivered `max_deliveries` times: the script dead-lettered it), `gone` (the
   entry is no longer pending for this worker). Only `run` lets a run begin.
3. The run token is the entry's ownership in the consumer group's pending list: the finish
   script applies only while the entry is pending for this worker. Success or failure, the
   finish goes at once, in the next finish script: one is in flight at a time, covering every
   finish ready meanwhile.
4. A run that `stop()` cancels (past `shutdown_timeout`) is handed back to the stream, its
   attempt not counted. A heartbeat that finds the entry of a running run pending for another
   worker warns, once: the run goes on, but only the new owner records a result. Once the
   finish is on its way, its answer tells (an entry a finish acked looks the same). An entry
   idle past `visibility_timeout` (heartbeats missed) that this worker's own `XAUTOCLAIM`
   takes back (`taken_back`) goes on running here; another worker may have held it meanwhile
   and recorded a start, so its finish reads the record (never lowering `attempts`) and
   records this run's start.
5. Redis unreachable for `commit_timeout` (or a reclaimed run's start failing): nothing is
   recorded here; the entry stays pending and is taken over once idle past
   `visibility_timeout`, by this worker or another.
6. A run leaves the worker's books as it reaches `done`: nothing happens to it after.
7. Any other event is a bug: `Run.handle` raises `IllegalRunEvent`, naming the task, the state
   and the event.

docs/background-tasks.md shows the table (`render_table()`); a test keeps the two equal.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any

from ..attempt import TaskRun

__all__ = [
    "NOTES",
    "TRANSITIONS",
    "Action",
    "IllegalRunEvent",
    "Run",
    "RunEvent",
    "RunState",
    "render_table",
]

# One line per transition at DEBUG, on a logger of its own so it can be turned on alone.
transitions_log = logging.getLogger("joey.tasks.runs")


class RunState(enum.StrEnum):
    """Where one delivered run is, in this worker."""

    READ = "read"
    WAITING = "waiting"
    RUNNING = "running"
    COMMITTING = "committing"
    DONE = "done"


class RunEvent(enum.StrEnum):
    """What can happen to a run."""

    DELIVERED = "delivered"
    RECLAIMED = "reclaimed"
    START_RUN = "start_run"
    START_SKIP = "start_skip"
    START_LOST = "start_lost"
    START_GONE = "start_gone"
    START_FAILED = "start_failed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TAKEN_OVER = "taken_over"
    TAKEN_BACK = "taken_back"
    RECORDED = "recorded"
    REFUSED = "refused"
    GAVE_UP = "gave_up"


class Action(enum.StrEnum):
    """What the worker does on a transition."""

    NOTHING = "nothing"
    RUN_AT_ONCE = "run_at_once"
    START_FIRST = "start_first"
    RUN = "run"
    REPORT_DEAD = "report_dead"
    FINISH = "finish"
    HAND_BACK = "hand_back"
    WARN = "warn"
    READ_AT_FINISH = "read_at_finish"


STATES: dict[RunState, str] = {
    RunState.READ: "read from the stream; nothing done yet",
    RunState.WAITING: "its start is sent, and must answer before it runs",
    RunState.RUNNING: "runs (a first delivery: its start is recorded by its finish, or by a "
    "heartbeat if it is still going)",
    RunState.COMMITTING: "its outcome is being recorded: the finish script (one for every "
    "finish ready at that moment), retried through outages",
    RunState.DONE: "nothing more to do here: recorded or refused, not started, handed back, or "
    "given up",
}

EVENTS: dict[RunEvent, str] = {
    RunEvent.DELIVERED: "a first delivery (`XREADGROUP`) carrying its task, its attempt and its "
    "failures so far",
    RunEvent.RECLAIMED: "taken over from a silent worker (`XAUTOCLAIM`), or an entry an older "
    "version wrote (without its failures, or its id only)",
    RunEvent.START_RUN: "the start answered `run`: started, its attempt and delivery recorded",
    RunEvent.START_SKIP: "the start answered `skip`: the task is final or expired; entry acked",
    RunEvent.START_LOST: "the start answered `lost`: delivered `max_deliveries` times, "
    "dead-lettered",
    RunEvent.START_GONE: "the start answered `gone`: the entry is no longer pending for this "
    "worker",
    RunEvent.START_FAILED: "the start did not reach Redis (an outage), or Redis refused it",
    RunEvent.SUCCEEDED: "the function returned",
    RunEvent.FAILED: "the function raised or timed out, or cannot run here (not registered, "
    "bad payload)",
    RunEvent.CANCELLED: "its asyncio task was cancelled: by `stop()` past `shutdown_timeout`, "
    "or after a revoke",
    RunEvent.TAKEN_OVER: "a heartbeat found its entry pending for another worker",
    RunEvent.TAKEN_BACK: "this worker's own `XAUTOCLAIM` took its entry back (idle past "
    "`visibility_timeout`: heartbeats missed, and maybe taken over meanwhile)",
    RunEvent.RECORDED: "the finish was applied",
    RunEvent.REFUSED: "the finish applied nothing: the entry is no longer this worker's (or was "
    "acked by an earlier try of this finish), or the task was final",
    RunEvent.GAVE_UP: "Redis stayed unreachable for `commit_timeout`",
}

ACTIONS: dict[Action, str] = {
    Action.NOTHING: "nothing",
    Action.RUN_AT_ONCE: "run it now; no start is sent",
    Action.START_FIRST: "send its start and wait for the answer",
    Action.RUN: "run it",
    Action.REPORT_DEAD: "count and log it dead (`WorkerLost`)",
    Action.FINISH: "send the finish (it records the outcome, and the start if missing, and acks "
    "the entry)",
    Action.HAND_BACK: "`stop()` hands the entry back to the stream; the attempt is not counted",
    Action.WARN: "log that its result here will not be recorded",
    Action.READ_AT_FINISH: "its finish reads the record: it records this run's start, and "
    "keeps the attempts another worker's start may have recorded meanwhile",
}

_S, _E, _A = RunState, RunEvent, Action

TRANSITIONS: dict[RunState, dict[RunEvent, tuple[Action, RunState]]] = {
    _S.READ: {
        _E.DELIVERED: (_A.RUN_AT_ONCE, _S.RUNNING),
        _E.RECLAIMED: (_A.START_FIRST, _S.WAITING),
    },
    _S.WAITING: {
        _E.START_RUN: (_A.RUN, _S.RUNNING),
        _E.START_SKIP: (_A.NOTHING, _S.DONE),
        _E.START_LOST: (_A.REPORT_DEAD, _S.DONE),
        _E.START_GONE: (_A.NOTHING, _S.DONE),
        _E.START_FAILED: (_A.NOTHING, _S.DONE),
    },
    _S.RUNNING: {
        _E.SUCCEEDED: (_A.FINISH, _S.COMMITTING),
        _E.FAILED: (_A.FINISH, _S.COMMITTING),
        _E.CANCELLED: (_A.HAND_BACK, _S.DONE),
        _E.TAKEN_OVER: (_A.WARN, _S.RUNNING),
        _E.TAKEN_BACK: (_A.READ_AT_FINISH, _S.RUNNING),
    },
    _S.COMMITTING: {
        _E.RECORDED: (_A.NOTHING, _S.DONE),
        _E.REFUSED: (_A.NOTHING, _S.DONE),
        _E.GAVE_UP: (_A.NOTHING, _S.DONE),
        _E.CANCELLED: (_A.HAND_BACK, _S.DONE),
        _E.TAKEN_OVER: (_A.NOTHING, _S.COMMITTING),
        _E.TAKEN_BACK: (_A.READ_AT_FINISH, _S.COMMITTING),
    },
    _S.DONE: {},
}
"""For each state, the events it accepts: the action the worker takes and the next state."""

NOTES: dict[tuple[RunState, RunEvent], str] = {
    (_S.READ, _E.DELIVERED): "its finish records its start; `status()` reads it RUNNING from "
    "the pending list meanwhile",
    (_S.WAITING, _E.START_SKIP): "the script acked the entry; nothing runs",
    (_S.WAITING, _E.START_GONE): "another worker holds the entry",
    (_S.WAITING, _E.START_FAILED): "the entry stays pending here and is taken over once idle "
    "past `visibility_timeout`; the read loop logs the error and reads again",
    (_S.RUNNING, _E.SUCCEEDED): "at once, beside the finishes ready at that moment",
    (_S.RUNNING, _E.FAILED): "a retry, or dead after its last attempt (the failures so far came "
    "with the entry, or with the start)",
    (_S.COMMITTING, _E.RECORDED): "a success is counted",
    (_S.COMMITTING, _E.REFUSED): "nothing of this run is recorded",
    (_S.COMMITTING, _E.GAVE_UP): "logged; the entry stays pending and is taken over (or "
    "`stop()` hands it back, its attempt and failure counted)",
    (_S.COMMITTING, _E.TAKEN_OVER): "no warning: the finish's answer tells, and to a heartbeat "
    "a finish applied a moment ago (the entry acked) looks the same",
    (_S.COMMITTING, _E.TAKEN_BACK): "from its next try on (a finish is built as it is sent)",
}
"""Why, for the transitions whose action alone does not say it (shown in the docs)."""

class IllegalRunEvent(RuntimeError):
    """An event the table has no transition for in the run's state: a bug in the worker."""


class Run:
    """One delivered run of a task: what the stream entry carried, what its start answered, and
    where it is (`state`). Moved only by `handle` (and `answer`, for a start's reply)."""

    __slots__ = (
        "attempts", "began", "carries", "delivery", "entry_id", "failures", "fields",
        "max_attempts", "name", "started", "state", "taken_back", "task", "task_id", "task_run",
    )  # fmt: skip

    def __init__(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        self.entry_id = entry_id
        self.fields = fields
        self.task_id = fields[b"id"].decode()
        self.name = fields.get(b"name", b"").decode()
        self.state = RunState.READ
        attempt, failures = fields.get(b"attempt", b""), fields.get(b"failures", b"")
        # Whether the entry carries all a run needs (this version's entries do): its task, which
        # attempt it starts and the failures before it. Else its start brings them.
        self.carries = b"name" in fields and attempt.isdigit() and failures.isdigit()
        self.attempts = int(attempt) if self.carries else 0
        self.failures = int(failures) if self.carries else 0  # failed attempts before this one
        self.max_attempts = 1  # set once the task's options are known
        self.delivery: bytes | None = None  # the delivery its start recorded
        self.began = repr(time.time())  # its start time, which its finish records
        self.started = False  # whether a start (script or heartbeat) recorded it
        self.taken_back = False  # its entry came back after missed heartbeats: finish reads
        self.task: asyncio.Task[None] | None = None  # the run, once it runs
        self.task_run: TaskRun | None = None  # what its code sees as `current_task()`

    def handle(self, event: RunEvent) -> Action:
        """Move by `event`; the action to take. Raises `IllegalRunEvent` if the table has no
        transition for it in this state."""
        try:
            action, new = TRANSITIONS[self.state][event]
        except KeyError:
            raise IllegalRunEvent(
                f"task {self.name or '?'} {self.task_id} (entry {self.entry_id.decode()}): "
                f"no transition for {event} in state {self.state} (joey/tasks/redis/run.py)"
            ) from None
        if transitions_log.isEnabledFor(logging.DEBUG):
            transitions_log.debug(
                "task %s %s: %s --%s--> %s (%s)",
                self.name or "?", self.task_id, self.state, event, new, action,
            )  # fmt: skip
        self.state = new
        return action

    def answer(self, reply: list[Any]) -> Action:
        """Take the start script's reply for this run (see `run_scripts.START`)."""
        kind = reply[0]
        if kind == b"run":
            self.attempts, self.failures, self.delivery = int(reply[1]), int(reply[2]), reply[3]
            self.started = True
            if len(reply) > 4:  # an entry of an older version: the task's fields, from its hash
                self.fields = {b"name": reply[4], b"payload": reply[5], b"options": reply[6]}
                self.name = reply[4].decode()
            return self.handle(RunEvent.START_RUN)
        return self.handle(_ANSWERS[kind])


_ANSWERS = {
    b"skip": RunEvent.START_SKIP, b"lost": RunEvent.START_LOST, b"gone": RunEvent.START_GONE,
}  # fmt: skip


def render_table() -> str:
    """The states, events and transitions as Markdown tables, for the docs."""
    lines = ["| state | meaning |", "|---|---|"]
    lines += [f"| `{state}` | {meaning} |" for state, meaning in STATES.items()]
    lines += ["", "| event | meaning |", "|---|---|"]
    lines += [f"| `{event}` | {meaning} |" for event, meaning in EVENTS.items()]
    lines += ["", "| state | event | the worker | next state |", "|---|---|---|---|"]
    for state, moves in TRANSITIONS.items():
        for event, (action, new) in moves.items():
            what = [] if action is Action.NOTHING else [ACTIONS[action]]
            if (state, event) in NOTES:
                what.append(NOTES[state, event])
            lines.append(f"| `{state}` | `{event}` | {'; '.join(what) or '—'} | `{new}` |")
    return "\n".join(lines) + "\n"
