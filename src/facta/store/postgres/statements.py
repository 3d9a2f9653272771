"""The SQL of the PostgreSQL event store: every statement, built once per schema and prefix.

Readers see only rows whose writing transaction is older than every transaction still
running (``commit_xid < pg_snapshot_xmin(pg_current_snapshot())``): no row can later commit
in front of a position they have passed.
"""

from __future__ import annotations

from facta.store.postgres.common import COLUMNS

_VISIBLE = "commit_xid < pg_snapshot_xmin(pg_current_snapshot())"


class Statements:
    """The statements on the tables named ``{t}events`` and ``{t}append``."""

    def __init__(self, t: str) -> None:
        self.append = f"SELECT * FROM {t}append({', '.join(f'${n}' for n in range(1, 20))})"
        self.by_ids = (
            f"SELECT {COLUMNS} FROM {t}events WHERE event_id = ANY($1::text[]) ORDER BY version"
        )
        self.version = f"SELECT coalesce(max(version), 0) FROM {t}events WHERE stream_id = $1"
        # Whether committed rows are held back by the visibility rule: they all sort after
        # every visible row, so that is whether the largest commit id is past the snapshot's
        # xmin, one probe of the primary key's end. (Asked as EXISTS (... WHERE commit_xid >=
        # xmin), the planner cannot know xmin in a prepared statement, guesses a third of
        # the table matches and scans it all: 7.5 ms at 48,000 events, growing with the log,
        # on every head() and every short page.) Queried in the same statement (snapshot) as
        # what it qualifies.
        holding = (
            f"SELECT coalesce((SELECT max(commit_xid) FROM {t}events)"
            " >= pg_snapshot_xmin(pg_current_snapshot()), false) AS held"
        )
        # The same rows counted; bounded above by the largest commit id too, so that the
        # planner takes it for a narrow range of the key rather than a third of the table.
        self.held_back = (
            f"SELECT count(*) FROM {t}events"
            " WHERE commit_xid >= pg_snapshot_xmin(pg_current_snapshot())"
            f" AND commit_xid <= (SELECT max(commit_xid) FROM {t}events)"
        )
        self.head = (
            f"SELECT e.commit_xid, e.sequence, h.held FROM ({holding}) h LEFT JOIN LATERAL"
            f" (SELECT commit_xid, sequence FROM {t}events WHERE {_VISIBLE}"
            " ORDER BY commit_xid DESC, sequence DESC LIMIT 1) e ON true"
        )
        self.stream = {
            order: f"SELECT {COLUMNS} FROM {t}events WHERE stream_id = $1 AND version >= $2"
            f" AND version <= $3 ORDER BY version {order} LIMIT $4"
            for order in ("ASC", "DESC")
        }
        self.page: dict[tuple[bool, bool], str] = {}
        self.page_held: dict[tuple[bool, bool], str] = {}
        for by_category in (False, True):
            for by_type in (False, True):
                where = f"(commit_xid, sequence) > ($1, $2) AND {_VISIBLE}"
                if by_category:
                    where += " AND category = ANY($4::text[])"
                if by_type:
                    where += f" AND type = ANY(${4 + by_category}::text[])"
                page = (
                    f"SELECT {COLUMNS} FROM {t}events WHERE {where}"
                    " ORDER BY commit_xid, sequence LIMIT $3"
                )
                self.page[by_category, by_type] = page
                self.page_held[by_category, by_type] = (
                    f"SELECT e.*, h.held FROM ({holding}) h LEFT JOIN LATERAL ({page}) e ON true"
                )
