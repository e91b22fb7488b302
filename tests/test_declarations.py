"""Declarations that freeze (joey.declarations): every way of changing a frozen list, dict or
attribute is refused with the same message; before the freeze they are plain lists and dicts."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from joey import LateDeclaration
from joey.declarations import DeclaredDict, DeclaredList, Frozen, refusal

MESSAGE = refusal("the things of the test", "Declare things")

LIST_CHANGES: dict[str, Callable[[list[Any]], Any]] = {
    "append": lambda items: items.append(3),
    "extend": lambda items: items.extend([3]),
    "insert": lambda items: items.insert(0, 3),
    "+=": lambda items: items.__iadd__([3]),
    "*=": lambda items: items.__imul__(2),
    "[i] =": lambda items: items.__setitem__(0, 3),
    "[a:b] =": lambda items: items.__setitem__(slice(0, 1), [3]),
    "del [i]": lambda items: items.__delitem__(0),
    "remove": lambda items: items.remove(1),
    "pop": lambda items: items.pop(),
    "clear": lambda items: items.clear(),
    "sort": lambda items: items.sort(reverse=True),
    "reverse": lambda items: items.reverse(),
}


@pytest.mark.parametrize("change", LIST_CHANGES, ids=list(LIST_CHANGES))
def test_a_frozen_list_refuses_every_change(change: str) -> None:
    items = DeclaredList([1, 2])
    LIST_CHANGES[change](items)  # open before the freeze
    frozen = DeclaredList.frozen(items, MESSAGE)
    assert frozen is items  # frozen in place: a reference held from before refuses too
    before = list(items)
    with pytest.raises(LateDeclaration, match="Cannot change the things of the test"):
        LIST_CHANGES[change](items)
    assert items == before


def test_a_refused_addition_names_what_was_added() -> None:
    async def handler() -> None: ...

    items = DeclaredList.frozen([], MESSAGE)
    with pytest.raises(LateDeclaration, match=r"^'x' refused\. Cannot change") as refused:
        items.append("x")
    assert "Declare things before the app starts" in str(refused.value)
    with pytest.raises(LateDeclaration, match=r"test_declarations\.py:\d+\) refused"):
        items.append(handler)  # a function is named with its file and line


@pytest.mark.parametrize("copy_of", [copy.copy, copy.deepcopy,
                                     lambda items: pickle.loads(pickle.dumps(items))])
def test_a_copy_of_frozen_declarations_is_open(copy_of: Callable[[Any], Any]) -> None:
    items = copy_of(DeclaredList.frozen([1], MESSAGE))
    items.append(2)
    assert items == [1, 2]
    mapping = copy_of(DeclaredDict.frozen({"a": 1}, MESSAGE))
    mapping["b"] = 2
    assert mapping == {"a": 1, "b": 2}


def test_freezing_a_plain_list_makes_a_frozen_copy() -> None:
    plain = [1]
    frozen = DeclaredList.frozen(plain, MESSAGE)
    assert frozen == [1] and frozen is not plain
    with pytest.raises(LateDeclaration):
        frozen.append(2)


DICT_CHANGES: dict[str, Callable[[dict[str, int]], Any]] = {
    "[k] =": lambda items: items.__setitem__("b", 2),
    "del [k]": lambda items: items.__delitem__("a"),
    "update": lambda items: items.update(b=2),
    "|=": lambda items: items.__ior__({"b": 2}),
    "setdefault": lambda items: items.setdefault("b", 2),
    "pop": lambda items: items.pop("a"),
    "popitem": lambda items: items.popitem(),
    "clear": lambda items: items.clear(),
}


@pytest.mark.parametrize("change", DICT_CHANGES, ids=list(DICT_CHANGES))
def test_a_frozen_dict_refuses_every_change(change: str) -> None:
    items: DeclaredDict[str, int] = DeclaredDict({"a": 1})
    DICT_CHANGES[change](items)  # open before the freeze
    items = DeclaredDict({"a": 1})
    assert DeclaredDict.frozen(items, MESSAGE) is items
    assert DeclaredDict.frozen({"a": 1}, MESSAGE) == {"a": 1}
    with pytest.raises(LateDeclaration, match="Cannot change the things of the test"):
        DICT_CHANGES[change](items)
    assert items == {"a": 1}


class Declaring(Frozen):
    declared_attributes = frozenset({"names", "options", "size", "inner"})

    def __init__(self, inner: Declaring | None = None) -> None:
        self.names: list[str] = ["a"]
        self.options: dict[str, int] = {}
        self.size = 1
        self.inner = inner
        self.free = 0  # not a declaration


def test_a_frozen_object_freezes_its_declarations_and_what_it_holds() -> None:
    inner = Declaring()
    outer = Declaring(inner)
    outer.names = ["b"]  # a plain list assigned before the freeze is frozen too
    assert not outer.frozen
    outer.freeze_declarations("the outer")
    assert outer.frozen and inner.frozen
    with pytest.raises(LateDeclaration, match=r"the names of the outer.*Declare names"):
        outer.names.append("c")
    with pytest.raises(LateDeclaration, match="the options of the outer"):
        outer.options["x"] = 1
    with pytest.raises(LateDeclaration, match=r"'size' of the outer.*Set size before"):
        outer.size = 2
    with pytest.raises(LateDeclaration, match="the names of the outer"):
        inner.names.append("c")  # frozen by its owner, and named after it
    outer.free = 1
    assert (outer.names, outer.options, outer.size, outer.free) == (["b"], {}, 1, 1)
    outer.freeze_declarations("again")  # once frozen, stays as it was
    with pytest.raises(LateDeclaration, match="of the outer"):
        outer.names.append("c")
