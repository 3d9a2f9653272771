-- The read side's catalog. One row per storage slot of a projection: its version, whether it
-- answers queries (at most one active slot per name), its checkpoint (a log position: the
-- writing transaction's id and the sequence), the runner holding it, and the error that
-- stopped it. Runners hold a slot with a session advisory lock; owner and lease_until only
-- show who holds it. Each slot's documents live in a table of its own,
-- {schema}.{prefix}rm_{name}_{slot}, created with the slot and dropped with it.
CREATE TABLE {schema}.{prefix}projection_slots (
    name                text             NOT NULL,
    slot                integer          NOT NULL,
    version             integer          NOT NULL,
    active              boolean          NOT NULL,
    state               text             NOT NULL,
    checkpoint_commit   bigint           NOT NULL DEFAULT 0,
    checkpoint_sequence bigint           NOT NULL DEFAULT 0,
    checkpoint_at       double precision,
    handled             bigint           NOT NULL DEFAULT 0,
    owner               text,
    lease_until         double precision NOT NULL DEFAULT 0,
    error               text,
    error_event_id      text,
    error_position      text,
    failed_at           double precision,
    CONSTRAINT {prefix}projection_slots_pkey PRIMARY KEY (name, slot)
);

CREATE UNIQUE INDEX {prefix}projection_slots_active ON {schema}.{prefix}projection_slots (name)
    WHERE active;

-- Events a projection configured to park failures could not handle.
CREATE TABLE {schema}.{prefix}projection_dead_letters (
    name      text             NOT NULL,
    slot      integer          NOT NULL,
    event_id  text             NOT NULL,
    position  text             NOT NULL,
    stream_id text             NOT NULL,
    type      text             NOT NULL,
    error     text             NOT NULL,
    parked_at double precision NOT NULL,
    CONSTRAINT {prefix}projection_dead_letters_pkey PRIMARY KEY (name, slot, event_id)
);
