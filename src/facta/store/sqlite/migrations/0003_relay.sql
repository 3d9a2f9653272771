-- The relays' checkpoints: one row per relay (named after its destination). The checkpoint
-- is the position of the last event the broker confirmed, with everything before it; owner
-- and lease_until are the lease that keeps one relay per destination active: a relay renews
-- it while it runs and another may take the row over once it has expired.
CREATE TABLE {prefix}relay_checkpoints (
    name                TEXT    NOT NULL PRIMARY KEY,
    checkpoint_commit   INTEGER NOT NULL DEFAULT 0,
    checkpoint_sequence INTEGER NOT NULL DEFAULT 0,
    published           INTEGER NOT NULL DEFAULT 0,
    updated_at          REAL,
    owner               TEXT,
    lease_until         REAL    NOT NULL DEFAULT 0
) WITHOUT ROWID;
