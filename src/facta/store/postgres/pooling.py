"""Connecting directly, or through a transaction-pooling pooler (PgBouncer's
``pool_mode = transaction``, RDS Proxy, Supavisor): ``?pooler=transaction`` in the store URL.

A transaction pooler hands each transaction (each statement, outside one) whatever server
connection is free, so nothing may outlive a transaction on a connection:

- no prepared statements kept by name (asyncpg's statement cache is off: each statement is
  parsed where it runs);
- no startup parameters but ``application_name`` (PgBouncer refuses the others): the
  engine's ``jit = off`` and ``plan_cache_mode = force_generic_plan`` are then the
  database's to set (``ALTER DATABASE ... SET ...``);
- no ``LISTEN``: a process behind the pooler notices other processes' appends by polling
  (within a second), its own at once;
- no session advisory locks: the pins of inline read models (:mod:`.pins`) refuse to be
  taken. A service with inline read models connects directly; runners, whose leases are rows
  and whose locks last a transaction, work behind the pooler.
"""

from __future__ import annotations

from typing import Any

from facta.errors import StoreSetupError

MODES = ("", "none", "transaction")


def pooled(mode: str) -> bool:
    """Whether ``mode`` (the URL's ``pooler``) is a transaction pooler; ValueError for an
    unknown one."""
    if mode.lower() not in MODES:
        raise ValueError(f"pooler must be 'transaction' or 'none', not {mode!r}")
    return mode.lower() == "transaction"


def connection_options(
    application_name: str | None, *, pooled: bool, generic_plans: bool = True
) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect`` and ``create_pool``: ``application_name``
    (None: the driver's), no JIT, and generic plans unless ``generic_plans`` is False."""
    settings = {} if application_name is None else {"application_name": application_name}
    if pooled:
        return {"server_settings": settings, "statement_cache_size": 0}
    # No JIT: it costs more than it saves on queries this size. Generic plans: the log's
    # queries are the same every time, and without statistics (a young table) a custom plan
    # may sort the whole log for one page.
    settings["jit"] = "off"
    if generic_plans:
        settings["plan_cache_mode"] = "force_generic_plan"
    return {"server_settings": settings}


def no_session_locks() -> StoreSetupError:
    """What pinning an inline read model's slot raises behind a transaction pooler."""
    return StoreSetupError(
        "inline read models pin their slots with session advisory locks, which a"
        " transaction-pooling pooler cannot hold (pooler=transaction)",
        "connect this process to PostgreSQL directly; runners may stay behind the pooler",
    )
