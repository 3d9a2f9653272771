-- The relays' checkpoints: one row per relay (named after its destination). The checkpoint
-- is the position of the last event the broker confirmed, with everything before it (the
-- writing transaction's id and the sequence). A relay holds its row with a session advisory
-- lock on its own connection and writes the checkpoint on that connection, so a relay that
-- died (and lost the lock with its connection) can never move it; owner only shows who holds
-- it.
CREATE TABLE {schema}.{prefix}relay_checkpoints (
    name                text             NOT NULL,
    checkpoint_commit   bigint           NOT NULL DEFAULT 0,
    checkpoint_sequence bigint           NOT NULL DEFAULT 0,
    published           bigint           NOT NULL DEFAULT 0,
    updated_at          double precision,
    owner               text,
    CONSTRAINT {prefix}relay_checkpoints_pkey PRIMARY KEY (name)
);
