"""A Redis worker's run as a state machine (joey/tasks/redis/run.py): the table is whole, the
consumer handles every action it gives, an event it has no transition for is a loud error, the
docs show the table as it is, and every transition is driven by a test against a real
redis-server (marked ``@pytest.mark.transitions(...)``, checked by tests/tasks/conftest.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from joey.tasks.redis.run import (
    ACTIONS,
    EVENTS,
    NOTES,
    STATES,
    TRANSITIONS,
    Action,
    IllegalRunEvent,
    Run,
    RunEvent,
    RunState,
    render_table,
)

HERE = Path(__file__).parent
DOCS = HERE.parents[1] / "docs" / "background-tasks.md"
BEGIN = "<!-- run-table: begin"
END = "<!-- run-table: end -->"
ROWS = [f"{state}:{event}" for state, moves in TRANSITIONS.items() for event in moves]

S, E, A = RunState, RunEvent, Action

# What the consumer does with the action of each event, where it sends the event: a row whose
# action is not here would be taken and then ignored.
HANDLED: dict[RunEvent, set[Action]] = {
    E.DELIVERED: {A.RUN_AT_ONCE},  # the read loop
    E.RECLAIMED: {A.START_FIRST},
    E.START_RUN: {A.RUN},  # the read loop
    E.START_SKIP: {A.NOTHING},
    E.START_GONE: {A.NOTHING},
    E.START_LOST: {A.REPORT_DEAD},
    E.START_FAILED: {A.NOTHING},
    E.SUCCEEDED: {A.FINISH},
    E.FAILED: {A.FINISH},
    E.CANCELLED: {A.HAND_BACK, A.NOTHING},
    E.TAKEN_OVER: {A.WARN, A.NOTHING},
    E.TAKEN_BACK: {A.READ_AT_FINISH},  # the read loop (its own XAUTOCLAIM)
    E.RECORDED: {A.NOTHING},
    E.REFUSED: {A.NOTHING},
    E.GAVE_UP: {A.NOTHING},
}


def a_run(name: str = "job") -> Run:
    return Run(b"1-0", {b"id": b"abc", b"name": name.encode(), b"payload": b"", b"options": b"",
                        b"attempt": b"3", b"failures": b"2"})


def test_every_state_is_reached_from_a_read_and_every_run_can_end() -> None:
    assert set(TRANSITIONS) == set(RunState)
    reached, todo = {S.READ}, [S.READ]
    while todo:
        for _, new in TRANSITIONS[todo.pop()].values():
            if new not in reached:
                reached.add(new)
                todo.append(new)
    assert reached == set(RunState)
    for state in set(RunState) - {S.DONE}:
        ends, seen = False, {state}
        todo = [state]
        while todo and not ends:
            for _, new in TRANSITIONS[todo.pop()].values():
                ends = ends or new is S.DONE
                if new not in seen:
                    seen.add(new)
                    todo.append(new)
        assert ends, f"a run in {state} can never end"
    # Once done, a run is out of the worker's books: nothing reaches it any more.
    assert TRANSITIONS[S.DONE] == {}


def test_every_state_event_and_action_is_used_and_explained() -> None:
    assert set(STATES) == set(RunState)
    assert set(EVENTS) == set(RunEvent) == {e for moves in TRANSITIONS.values() for e in moves}
    assert set(ACTIONS) == set(Action)
    assert {a for moves in TRANSITIONS.values() for a, _ in moves.values()} == set(Action)
    assert set(NOTES) <= {(state, event) for state, moves in TRANSITIONS.items() for event in moves}


def test_the_consumer_handles_every_action_the_table_gives() -> None:
    assert set(HANDLED) == set(RunEvent)
    for state, moves in TRANSITIONS.items():
        for event, (action, _) in moves.items():
            assert action in HANDLED[event], f"{state} + {event} -> {action}"


def test_a_first_delivery_knows_its_attempt_and_failures_from_its_entry() -> None:
    run = a_run()
    assert (run.carries, run.attempts, run.failures, run.started) == (True, 3, 2, False)
    assert run.handle(E.DELIVERED) is A.RUN_AT_ONCE and run.state is S.RUNNING
    # An entry an older version wrote lacks the failure count (or all but the id): its start
    # brings what it lacks, before it runs.
    for fields in ({b"id": b"x", b"name": b"n", b"attempt": b"1"}, {b"id": b"x"}):
        old = Run(b"2-0", fields)
        assert (old.carries, old.attempts, old.failures) == (False, 0, 0)

def test_an_event_the_table_has_no_transition_for_is_a_loud_error() -> None:
    run = a_run("reports.build")
    with pytest.raises(
        IllegalRunEvent,
        match=r"^task reports\.build abc \(entry 1-0\): no transition for succeeded in state "
        r"read \(joey/tasks/redis/run\.py\)$",
    ):
        run.handle(E.SUCCEEDED)
    assert run.state is S.READ  # not moved
    # A first delivery sends no start: a start's answer for one is a bug.
    first = a_run()
    assert first.handle(E.DELIVERED) is A.RUN_AT_ONCE
    with pytest.raises(IllegalRunEvent, match="no transition for start_lost in state running"):
        first.answer([b"lost"])
    assert first.state is S.RUNNING


def test_a_start_answer_is_taken_with_what_it_carries() -> None:
    run = a_run()
    run.handle(E.RECLAIMED)
    assert run.answer([b"run", 4, 2, b"1-0/2"]) is A.RUN
    assert (run.state, run.attempts, run.failures, run.delivery, run.started) == (
        S.RUNNING, 4, 2, b"1-0/2", True
    )
    # An entry an older version wrote holds the id only: the start brings the task's fields.
    old = Run(b"2-0", {b"id": b"old"})
    assert (old.name, old.handle(E.RECLAIMED)) == ("", A.START_FIRST)
    assert old.answer([b"run", 1, 0, b"2-0/1", b"add", b"payload", b"options"]) is A.RUN
    assert (old.name, old.fields) == (
        "add", {b"name": b"add", b"payload": b"payload", b"options": b"options"}
    )
    for reply, action in [([b"skip"], A.NOTHING), ([b"lost"], A.REPORT_DEAD),
                          ([b"gone"], A.NOTHING)]:  # fmt: skip
        waiting = Run(b"3-0", {b"id": b"x", b"name": b"n"})
        waiting.handle(E.RECLAIMED)
        assert (waiting.answer(reply), waiting.state) == (action, S.DONE)


def test_the_docs_show_the_table_as_it_is() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{DOCS}: one {BEGIN} ... {END}"
    block = text[text.index(BEGIN) :]
    block = block[block.index("-->") + 4 : block.index(END)].strip("\n") + "\n"
    assert block == render_table(), (
        f"{DOCS} shows another table than joey/tasks/redis/run.py: paste the output of\n"
        "  python -c 'from joey.tasks.redis.run import render_table; print(render_table())'\n"
        f"between its {BEGIN} and {END} lines"
    )


def driven() -> dict[str, list[str]]:
    """Each transition's tests: the `transitions` marks of every test of tests/tasks."""
    found: dict[str, list[str]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        module = importlib.import_module(f"tests.tasks.{path.stem}")
        for name, test in vars(module).items():
            marks = getattr(test, "pytestmark", []) if name.startswith("test_") else []
            params = [
                param for mark in marks if mark.name == "parametrize"
                for param in mark.args[1] if hasattr(param, "marks")
            ]  # fmt: skip
            for mark in [*marks, *(m for param in params for m in param.marks)]:
                if mark.name == "transitions":
                    for row in mark.args:
                        found.setdefault(row, []).append(f"{path.name}::{name}")
    return found


@pytest.mark.parametrize("row", ROWS)
def test_the_transition_is_driven_by_a_test_against_redis(row: str) -> None:
    assert driven().get(row), f"no test of tests/tasks is marked transitions({row!r})"


def test_every_transition_a_test_claims_is_in_the_table() -> None:
    assert set(driven()) - set(ROWS) == set()
