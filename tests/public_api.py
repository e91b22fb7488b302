"""Joey's public API as text: every name in the ``__all__`` of ``joey`` and of each public module
(``joey.*`` without a leading underscore), with the signature of each callable, each class's
bases and the members it defines.

tests/test_public_api.py compares this with the checked-in tests/public_api.txt, so a change
to the public API is a visible diff in review. After a deliberate change, rewrite the file and
review the diff:

    make api-snapshot            # or: PYTHONPATH=src python -m tests.public_api --write

A name re-exported from the module that defines it is listed as ``name = home.name``; its
description lives under its home module, so a change shows once.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import pkgutil
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("public_api.txt")

HEADER = """\
# Joey's public API: every name in the __all__ of joey and of each public module, with
# signatures. Checked by tests/test_public_api.py. After a deliberate change to the API, run
# `make api-snapshot` (PYTHONPATH=src python -m tests.public_api --write) and review the diff.
"""

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PREFIXES = re.compile(r"\b(?:typing|typing_extensions|collections\.abc|builtins|types)\.")
_SIMPLE = (int, float, str, bytes, bool, type(None))
# Dunder methods that are part of what a class does for its users.
_PROTOCOL = ("__call__", "__aiter__", "__iter__", "__aenter__", "__enter__", "__getitem__",
             "__contains__", "__len__")


class MissingExtra(Exception):
    """A module needs an optional package that is not installed here."""


def public_modules() -> Iterator[str]:
    """``joey`` and every ``joey.*`` module without a leading underscore in its path."""
    import joey

    yield "joey"
    for info in pkgutil.walk_packages(joey.__path__, "joey."):
        parts = info.name.split(".")[1:]
        if any(part.startswith("_") for part in parts):
            continue  # private (joey._engine...) and joey.__main__
        yield info.name


def import_module(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("joey"):
            raise MissingExtra(f"{name} needs {exc.name}") from exc
        raise


def _annotation(value: Any) -> str:
    if isinstance(value, typing.ForwardRef):
        return value.__forward_arg__
    if isinstance(value, str):
        return value
    if isinstance(value, type):
        return value.__qualname__
    return _PREFIXES.sub("", repr(value))


def _default(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if inspect.isfunction(value) or inspect.isclass(value):
        return value.__qualname__
    if isinstance(value, set | frozenset):  # sorted: a set's order changes with the hash seed
        items = ", ".join(sorted(map(repr, value)))
        return f"{type(value).__name__}({{{items}}})" if items else f"{type(value).__name__}()"
    return _ADDRESS.sub("", repr(value))


def signature(func: Callable[..., Any], *, drop_first: bool = False) -> str:
    """``(a: int, b: str = 'x') -> bool``, annotations as written, stable across runs."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return "(...)"
    params = list(sig.parameters.values())
    if drop_first and params and params[0].kind is not params[0].VAR_KEYWORD:
        params = params[1:]
    out: list[str] = []
    seen_keyword_only = False
    for param in params:
        if param.kind is param.KEYWORD_ONLY and not seen_keyword_only:
            seen_keyword_only = True
            out.append("*")
        if param.kind is param.VAR_POSITIONAL:
            seen_keyword_only = True
        prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        text = prefix + param.name
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {_default(param.default)}"
        out.append(text)
        if param.kind is param.POSITIONAL_ONLY and (
            param is params[-1] or params[params.index(param) + 1].kind is not param.POSITIONAL_ONLY
        ):
            out.append("/")
    result = f"({', '.join(out)})"
    if sig.return_annotation is not sig.empty:
        result += f" -> {_annotation(sig.return_annotation)}"
    return result


def _overloads(func: Any) -> list[str]:
    try:
        found = typing.get_overloads(func)
    except Exception:  # not a plain function
        return []
    return [signature(item, drop_first=True) for item in found]


def _init_of(cls: type) -> str:
    """The constructor's signature, or the public class it is inherited from."""
    if hasattr(cls, "__struct_fields__"):  # a msgspec Struct: its fields are its constructor
        return f"__init__{signature(cls)}"
    for klass in cls.__mro__:
        if klass is object:
            return "__init__()"
        if "__init__" in vars(klass) or "__new__" in vars(klass):
            private = klass.__qualname__.startswith("_") or any(
                part.startswith("_") for part in klass.__module__.split(".")[1:])
            if klass is not cls and not private:
                where = klass.__qualname__ if klass.__module__.startswith("joey") else (
                    f"{klass.__module__}.{klass.__qualname__}")
                return f"__init__ from {where}"
            method = vars(klass).get("__init__") or vars(klass)["__new__"]
            return f"__init__{signature(method, drop_first=True)}"
    return "__init__()"  # pragma: no cover - object ends every MRO


def _member(name: str, value: Any) -> list[str]:
    if isinstance(value, staticmethod):
        return [f"staticmethod {name}{signature(value.__func__)}"]
    if isinstance(value, classmethod):
        return [f"classmethod {name}{signature(value.__func__, drop_first=True)}"]
    if isinstance(value, property):
        returns = inspect.signature(value.fget).return_annotation if value.fget else None
        kind = "property" if value.fset is None else "property (settable)"
        shown = _annotation(returns) if returns not in (None, inspect.Signature.empty) else "?"
        return [f"{kind} {name}: {shown}"]
    if inspect.isfunction(value):
        prefix = "async def" if inspect.iscoroutinefunction(value) else "def"
        lines = [f"{prefix} {name}{signature(value, drop_first=True)}"]
        lines += [f"  overload {name}{sig}" for sig in _overloads(value)]
        return lines
    if type(value).__name__ in ("member_descriptor", "getset_descriptor"):
        return [f"attribute {name}"]
    if isinstance(value, _SIMPLE):
        return [f"{name} = {value!r}"]
    return [f"{name}: {type(value).__qualname__}"]


def describe_class(name: str, cls: type) -> list[str]:
    bases = ", ".join(f"{b.__module__}.{b.__qualname__}" if not b.__module__.startswith("joey")
                      else b.__qualname__ for b in cls.__bases__ if b is not object)
    lines = [f"class {name}({bases})" if bases else f"class {name}", f"  {_init_of(cls)}"]
    init = vars(cls).get("__init__")
    if init is not None:
        lines += [f"  overload __init__{sig}" for sig in _overloads(init)]
    if issubclass(cls, enum.Enum):
        lines += [f"  {member.name} = {member.value!r}" for member in cls]
        return lines
    for member, value in sorted(vars(cls).items()):
        if member.startswith("_") and member not in _PROTOCOL:
            continue
        lines += [f"  {line}" for line in _member(member, value)]
    return lines


def describe_object(name: str, value: Any) -> list[str]:
    if inspect.isclass(value):
        return describe_class(name, value)
    if isinstance(value, types.ModuleType):
        return [f"module {name} = {value.__name__}"]
    if inspect.isbuiltin(value):
        # a compiled library's callable (msgspec's encode): its text signature is the
        # library's and changes with its release, so only its kind is pinned
        return [f"builtin {name}"]
    if inspect.isfunction(value):
        prefix = "async def" if inspect.iscoroutinefunction(value) else "def"
        lines = [f"{prefix} {name}{signature(value)}"]
        return lines + [f"  overload {name}{sig}" for sig in _overloads(value)]
    if isinstance(value, _SIMPLE):
        return [f"{name} = {_ADDRESS.sub('', repr(value))}"]
    if isinstance(value, typing.TypeVar | types.GenericAlias | types.UnionType) or (
        type(value).__module__ in ("typing", "typing_extensions")
    ):
        return [f"{name} = {_annotation(value)}"]
    return [f"{name}: {type(value).__qualname__}"]


def _home(value: Any) -> str | None:
    """The public module that defines ``value`` and lists it, when there is one."""
    module = getattr(value, "__module__", None)
    if not isinstance(module, str) or not module.startswith("joey") or (
        inspect.isclass(value) is False and not inspect.isfunction(value)
    ):
        return None
    if any(part.startswith("_") for part in module.split(".")[1:]):
        return None
    home = sys.modules.get(module)
    if home is None or getattr(value, "__name__", None) not in getattr(home, "__all__", ()):
        return None
    return module


def describe_module(name: str) -> list[str]:
    module = import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return [name, "  (no __all__)"]
    lines = [name]
    for export in sorted(exported):
        value = getattr(module, export)
        home = _home(value)
        if home is not None and home != name:
            lines.append(f"  {export} = {home}.{value.__name__}")
        else:
            lines += [f"  {line}" for line in describe_object(export, value)]
    return lines


def snapshot(skip_missing_extras: bool = False) -> tuple[dict[str, list[str]], list[str]]:
    """Each public module's lines, and the modules skipped for a missing optional package
    (``skip_missing_extras``; writing the snapshot needs every extra: the ``dev`` one)."""
    sections: dict[str, list[str]] = {}
    skipped: list[str] = []
    for name in public_modules():
        try:
            sections[name] = describe_module(name)
        except MissingExtra:
            if not skip_missing_extras:
                raise
            skipped.append(name)
    return sections, skipped


def render(sections: dict[str, list[str]]) -> str:
    body = "\n\n".join("\n".join(lines) for _, lines in sorted(sections.items()))
    return HEADER + "\n" + body + "\n"


def parse(text: str) -> dict[str, list[str]]:
    """The sections of a snapshot file, by module."""
    sections: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith("#")]
        if lines:
            sections[lines[0]] = lines
    return sections


def unlisted(name: str) -> list[str]:
    """Classes and functions ``name`` defines without a leading underscore that its
    ``__all__`` does not list: each must be exported, or renamed private."""
    module = import_module(name)
    exported = set(getattr(module, "__all__", ()))
    return sorted(
        attr for attr, value in vars(module).items()
        if not attr.startswith("_") and attr not in exported
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.public_api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true",
                        help=f"rewrite {SNAPSHOT.name} (otherwise print the API)")
    args = parser.parse_args(argv)
    sections, _ = snapshot()
    text = render(sections)
    if args.write:
        SNAPSHOT.write_text(text, encoding="utf-8")
        print(f"wrote {SNAPSHOT} ({len(sections)} modules); review it with `git diff`")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
