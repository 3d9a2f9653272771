-- Partitioned projections: the catalog holds one row per partition of a slot (`part`, 0 for
-- a projection of one partition), each with its own checkpoint and lease. SQLite cannot
-- change a primary key in place, so the table is rebuilt.
CREATE TABLE {prefix}projection_slots_new (
    name                TEXT    NOT NULL,
    slot                INTEGER NOT NULL,
    part                INTEGER NOT NULL DEFAULT 0,
    version             INTEGER NOT NULL,
    active              INTEGER NOT NULL,
    state               TEXT    NOT NULL,
    checkpoint_commit   INTEGER NOT NULL DEFAULT 0,
    checkpoint_sequence INTEGER NOT NULL DEFAULT 0,
    checkpoint_at       REAL,
    handled             INTEGER NOT NULL DEFAULT 0,
    owner               TEXT,
    lease_until         REAL    NOT NULL DEFAULT 0,
    error               TEXT,
    error_event_id      TEXT,
    error_position      TEXT,
    failed_at           REAL,
    PRIMARY KEY (name, slot, part)
) WITHOUT ROWID;

INSERT INTO {prefix}projection_slots_new (name, slot, part, version, active, state,
    checkpoint_commit, checkpoint_sequence, checkpoint_at, handled, owner, lease_until, error,
    error_event_id, error_position, failed_at)
SELECT name, slot, 0, version, active, state, checkpoint_commit, checkpoint_sequence,
    checkpoint_at, handled, owner, lease_until, error, error_event_id, error_position, failed_at
FROM {prefix}projection_slots;

DROP TABLE {prefix}projection_slots;

ALTER TABLE {prefix}projection_slots_new RENAME TO {prefix}projection_slots;

CREATE UNIQUE INDEX {prefix}projection_slots_active ON {prefix}projection_slots (name, part)
    WHERE active = 1;

-- The runners working on each projection, by heartbeat: each takes its fair share of the
-- partitions (their number divided by the live runners'), and a runner whose heartbeat has
-- run out no longer counts.
CREATE TABLE {prefix}projection_runners (
    name       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    seen_until REAL NOT NULL,
    PRIMARY KEY (name, owner)
) WITHOUT ROWID;
