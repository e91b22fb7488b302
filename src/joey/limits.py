"""Joey's default limits, each read from one place (the app, the request and the form parser
all take the body limit from here, so they cannot disagree).

Example::

    from joey.limits import DEFAULT_MAX_BODY_SIZE

    app = App(max_body_size=4 * DEFAULT_MAX_BODY_SIZE)  # 4 MiB for every route
"""

from typing import Final

#: 1 MiB: the default body limit (``App(max_body_size=...)``); raise it per route
#: (``max_body_size=``) for uploads. A form read within the default ``FormLimits`` keeps it.
DEFAULT_MAX_BODY_SIZE: Final = 1024 * 1024

__all__ = ["DEFAULT_MAX_BODY_SIZE"]
