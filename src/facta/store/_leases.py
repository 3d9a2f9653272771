"""The one lease mechanism of the SQL engines: who may write a checkpoint now.

A lease is two columns of the row that holds the checkpoint (a projection slot's catalog
row, a relay's row): ``owner`` (an :func:`~facta._ids.owner_id`) and ``lease_until`` (Unix
seconds). A holder renews it while it works; once it has run out, anyone may take the row
over; and every write of the checkpoint says ``owner = me`` in the same statement, so a
holder that lost the row (paused, partitioned, presumed dead) can never write it again,
whatever it believes. No session state is involved (no advisory lock held across
transactions), so it works the same behind a transaction-pooling connection pooler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class LeaseSQL:
    """The lease statements for the rows of ``table`` keyed by ``keys``, written with
    ``mark(n)`` as the n-th parameter (``$n`` on PostgreSQL, ``?n`` on SQLite).

    Parameters, in order: the key's values, then ``owner``, then ``until`` (the new expiry)
    and, for :attr:`take`, ``now``.
    """

    def __init__(self, table: str, keys: Sequence[str], mark: Callable[[int], str]) -> None:
        n = len(keys)
        key = " AND ".join(f"{column} = {mark(i + 1)}" for i, column in enumerate(keys))
        owner, until, now = mark(n + 1), mark(n + 2), mark(n + 3)
        self.take = (
            f"UPDATE {table} SET owner = {owner}, lease_until = {until} WHERE {key}"
            f" AND (owner IS NULL OR owner = {owner} OR lease_until <= {now})"
        )
        """Take the lease if it is free, ours, or has run out (one row changed: taken)."""
        self.renew = f"UPDATE {table} SET lease_until = {until} WHERE {key} AND owner = {owner}"
        """Extend the lease while we hold it (no row changed: lost)."""
        self.release = (
            f"UPDATE {table} SET owner = NULL, lease_until = 0 WHERE {key} AND owner = {owner}"
        )
        """Give it up at once, if we still hold it."""
        self.held = f"{key} AND owner = {owner}"
        """The condition every write of the checkpoint carries: the row, while we hold it."""


def dollar(n: int) -> str:
    """PostgreSQL's n-th parameter."""
    return f"${n}"


def question(n: int) -> str:
    """SQLite's n-th parameter (numbered, so that one may be used twice)."""
    return f"?{n}"
