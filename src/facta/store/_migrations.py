"""Versioned schema migrations: SQL files per engine, applied in order, each once.

Files live in each engine package's ``migrations/NNNN_name.sql`` and may use ``{prefix}`` (and
``{schema}`` on PostgreSQL), which are validated identifiers, never user data.
"""

from __future__ import annotations

import re
from importlib import resources

from facta.errors import StoreSetupError

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def validate_identifier(value: str, what: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a lowercase SQL identifier (letters, digits, ``_``; ≤ 40)."""
    if (allow_empty and value == "") or _IDENTIFIER.fullmatch(value):
        return value
    raise ValueError(
        f"{what} {value!r} must be lowercase letters, digits and '_', not starting with a digit"
    )


def migration_files(package: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every migration of the engine ``package`` (its
    ``migrations`` folder), in version order."""
    folder = resources.files(package) / "migrations"
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


def statements(sql: str, **names: str) -> list[str]:
    """The statements of a migration file with its ``{placeholders}`` filled in."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return [part.strip() for part in text.split(";\n") if part.strip()]


def require_migrations(package: str, applied: set[int] | None, where: str) -> None:
    """Raise StoreSetupError unless ``applied`` (the versions a store's migrations table
    holds, None when it has none) includes every migration of the engine ``package``: how a store
    opened without ``create`` refuses what is not a facta store, or one this facta would
    have to migrate first."""
    if applied is None:
        raise StoreSetupError(f"no facta store in {where}", "create one with `facta migrate`")
    missing = [f"{v:04d}_{name}" for v, name, _ in migration_files(package) if v not in applied]
    if missing:
        raise StoreSetupError(
            f"the facta store in {where} lacks migration {', '.join(missing)}",
            "apply it with `facta migrate`",
        )
