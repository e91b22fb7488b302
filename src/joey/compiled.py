"""What the optional compiled build needs to hear from the source: mypyc's class options.

``mypyc_attr(allow_interpreted_subclasses=True)`` lets Python classes (yours, or Joey's own
interpreted modules) inherit from a class that the compiled build compiles, as they can from
the pure one. mypyc reads the decorator when it compiles; at run time it does nothing, and
``mypy_extensions`` (which ships with mypy) is not needed: without it, the no-op below stands in.

Example::

    @mypyc_attr(allow_interpreted_subclasses=True)
    class Engine: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr
else:
    try:
        from mypy_extensions import mypyc_attr
    except ImportError:  # a pure install: the decorator only speaks to the compiler

        def mypyc_attr(*attrs, **options):
            return lambda cls: cls


__all__ = [
    "mypyc_attr",
]
