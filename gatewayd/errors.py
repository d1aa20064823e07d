"""Errors out of task groups: a part of the lane that failed comes out wrapped in an
``ExceptionGroup`` (nested, when task groups nest); callers want the one that says why."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def first_error(
    group: BaseExceptionGroup[BaseException], kind: type[E] | tuple[type[E], ...]
) -> E | None:
    """The first exception of ``kind`` in ``group``, however deeply nested, or None.

    >>> first_error(ExceptionGroup("g", [ExceptionGroup("h", [KeyError("k")])]), KeyError)
    KeyError('k')
    """
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = first_error(exc, kind)
            if found is not None:
                return found
        elif isinstance(exc, kind):
            return exc
    return None
