-- The read side's catalog. One row per storage slot of a projection: its version, whether it
-- answers queries (at most one active slot per name), its checkpoint, the runner holding it
-- (lease with an expiry), and the error that stopped it. Each slot's documents live in a
-- table of its own, {prefix}rm_{name}_{slot}, created with the slot and dropped with it.
CREATE TABLE {prefix}projection_slots (
    name                TEXT    NOT NULL,
    slot                INTEGER NOT NULL,
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
    PRIMARY KEY (name, slot)
) WITHOUT ROWID;

CREATE UNIQUE INDEX {prefix}projection_slots_active ON {prefix}projection_slots (name)
    WHERE active = 1;

-- Events a projection configured to park failures could not handle.
CREATE TABLE {prefix}projection_dead_letters (
    name      TEXT    NOT NULL,
    slot      INTEGER NOT NULL,
    event_id  TEXT    NOT NULL,
    position  TEXT    NOT NULL,
    stream_id TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    error     TEXT    NOT NULL,
    parked_at REAL    NOT NULL,
    PRIMARY KEY (name, slot, event_id)
) WITHOUT ROWID;
