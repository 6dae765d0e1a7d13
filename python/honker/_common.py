"""Values and small helpers every part of the Python layer shares: JSON,
duration arguments, epoch times."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from honker._honker import Closed, DecodeError, InvalidArgument, InvalidJson

if TYPE_CHECKING:
    from honker._transaction import Transaction

T = TypeVar("T")


def _unit(new: str, value: T | None, old: str, old_value: T | None) -> T | None:
    """A duration argument renamed to carry its unit (``ttl`` became ``ttl_s``):
    the old keyword still works for one release, with a DeprecationWarning.
    The rule: durations are seconds, and their names end in ``_s``."""
    if old_value is None:
        return value
    if value is not None:
        raise InvalidArgument(f"invalid argument `{new}`: give `{new}` or its deprecated name `{old}`, not both")
    warnings.warn(
        f"`{old}=` is deprecated: use `{new}=` (honker's durations are seconds, named with an `_s` suffix)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def _dumps(value: Any, what: str = "payload") -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidJson(f"invalid JSON in `{what}`: {e}") from None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise DecodeError(f"cannot decode payload: {e}") from None


def _epoch_s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _tx(tx: Transaction | None) -> Any:
    return None if tx is None else tx._native


def _until_closed(call: Callable[[], T | None]) -> T | None:
    """A blocking iterator's next item, or None (the end) once the database is
    closed: closing it is how a process ends its workers, as in Node."""
    try:
        return call()
    except Closed:
        return None
