"""Transactions: ``with db.transaction()`` and ``async with db.transaction_async()``."""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from honker._aio import _off_loop
from honker._honker import (
    TransactionInactive,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from honker._database import Database


class Transaction:
    """A write transaction; use as ``with db.transaction() as tx:``. Commits on
    exit, rolls back on an exception. ``*_tx`` variants join it via ``tx=tx``."""

    def __init__(self, db: Database, native: Any = None) -> None:
        self._db = db
        self._native = db._native.begin() if native is None else native

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs one statement in the transaction; returns rows changed."""
        return self._db._native.execute(sql, list(params), self._native)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Runs a query in the transaction; returns a list of dicts."""
        return self._db._native.query(sql, list(params), self._native)

    def commit(self) -> None:
        self._db._native.commit(self._native)

    def rollback(self) -> None:
        self._db._native.rollback(self._native)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        except TransactionInactive:
            pass  # already committed or rolled back by hand


class AsyncTransaction:
    """``async with db.transaction_async() as tx:``: a :class:`Transaction`
    whose ``BEGIN`` (the wait for the write lock) and ``COMMIT`` run on a
    worker thread, so the event loop goes on meanwhile. In between, the
    transaction belongs to this task: pass ``tx=tx`` (the ``_async`` twins
    included); a plain call from it raises ``TransactionOpen``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._tx: Transaction | None = None

    async def __aenter__(self) -> Transaction:
        db = self._db
        # BEGIN runs on a worker thread for this task, which owns the
        # transaction: nested in its own, the engine refuses it
        # (TransactionOpen); another task's, it waits its turn. A BEGIN that
        # completes after this task was cancelled is rolled back.
        native = await _off_loop(db._native.begin, lambda: None, db._native.rollback)
        self._tx = Transaction(db, native)
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        tx = self._tx
        if tx is None:
            return
        finish = tx.commit if exc_type is None else tx.rollback
        try:
            await _off_loop(finish, lambda: None, lambda _late: None)
        except TransactionInactive:
            pass  # already committed or rolled back by hand
