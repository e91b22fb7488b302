"""Registration, options, backoff and the task state table."""

from __future__ import annotations

import ast
import inspect
import re
from datetime import timedelta

import pytest

from joey.tasks import Backoff, InMemoryTasks, TaskInfo, TaskState, base
from joey.tasks.state import FINAL_STATES, TRANSITIONS, can_move


def test_task_decorator_returns_the_function_unchanged() -> None:
    tasks = InMemoryTasks()

    async def plain(x: int) -> int:
        return x

    assert tasks.task(plain) is plain
    decorated = tasks.task(name="custom", timeout=5, retries=2)(plain)
    assert decorated is plain
    defn = tasks.registered["custom"]
    assert (defn.timeout, defn.retries, defn.is_async) == (5, 2, True)
    assert f"{plain.__module__}.{plain.__qualname__}" in tasks.registered


def test_app_task_is_typed_with_every_option_of_task() -> None:
    """``app.task`` is typed by the `TaskDecorator` protocol, a copy of `TaskBackend.task`'s
    overloads: a missing option (``cron=``, ``every=``) made correct code fail type checks.
    (Read from the source: an all-overload protocol method keeps no signatures at run time.)"""
    tree = ast.parse(inspect.getsource(base))

    def overloads(cls: str, method: str) -> list[str]:
        (node,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        return [
            re.sub(r"\bF\b", "FuncT", ast.unparse(item.args))
            for item in node.body
            if isinstance(item, ast.FunctionDef) and item.name == method
            and any(ast.unparse(d) == "overload" for d in item.decorator_list)
        ]

    backend = [args.removeprefix("self, ") for args in overloads("TaskBackend", "task")]
    assert len(backend) == 2 and "cron" in backend[1] and "every" in backend[1]
    assert [args.removeprefix("self, ")
            for args in overloads("TaskDecorator", "__call__")] == backend


def test_duplicate_task_name_names_both_functions() -> None:
    tasks = InMemoryTasks()

    @tasks.task(name="dup")
    def first() -> None: ...

    tasks.task(name="dup")(first)  # the same function again is fine

    def second() -> None: ...

    with pytest.raises(ValueError, match=r"first \(.*test_tasks_base.py:\d+\).*second"):
        tasks.task(name="dup")(second)


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"timeout": -1}, {"retries": -1}],
)
def test_task_rejects_bad_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        InMemoryTasks().task(**kwargs)  # type: ignore[call-overload]


def test_task_rejects_non_callables() -> None:
    with pytest.raises(TypeError):
        InMemoryTasks().task(name="x")(42)  # type: ignore[type-var]


def test_options_validation_and_timedelta() -> None:
    tasks = InMemoryTasks()
    assert tasks.options(delay=timedelta(minutes=1)).delay == 60.0
    with pytest.raises(ValueError):
        tasks.options(delay=-1)
    with pytest.raises(ValueError):
        tasks.options(retries=-1)
    with pytest.raises(ValueError):
        tasks.options(timeout=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrency": 0},
        {"shutdown_timeout": -1},
        {"max_queue": 0},
        {"when_full": "drop"},
    ],
)
def test_backend_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        InMemoryTasks(**kwargs)  # type: ignore[arg-type]


def test_backoff_grows_exponentially_and_caps() -> None:
    exact = Backoff(base=1.0, factor=2.0, max_delay=5.0, jitter=0.0)
    assert [exact.delay(n) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_jitter_shortens_by_at_most_the_jitter_fraction() -> None:
    backoff = Backoff(base=10.0, factor=1.0, jitter=0.5)
    assert backoff.delay(1, rand=lambda: 0.0) == 10.0
    assert backoff.delay(1, rand=lambda: 1.0) == 5.0
    assert all(5.0 <= backoff.delay(1) <= 10.0 for _ in range(100))


def test_state_table_is_complete_and_final_states_are_final() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    for state in FINAL_STATES:
        assert TRANSITIONS[state] <= {TaskState.QUEUED}  # only requeue leaves a final state
    assert can_move(TaskState.QUEUED, TaskState.RUNNING)
    assert not can_move(TaskState.SUCCEEDED, TaskState.RUNNING)
    assert not can_move(TaskState.QUEUED, TaskState.SUCCEEDED)


def test_task_info_done() -> None:
    assert TaskInfo(id="1", name="n", state=TaskState.DEAD).done
    assert not TaskInfo(id="1", name="n", state=TaskState.FAILED).done
