-- Partitioned projections: the catalog holds one row per partition of a slot (`part`, 0 for
-- a projection of one partition), each with its own checkpoint and lease.
ALTER TABLE {schema}.{prefix}projection_slots ADD COLUMN part integer NOT NULL DEFAULT 0;

ALTER TABLE {schema}.{prefix}projection_slots DROP CONSTRAINT {prefix}projection_slots_pkey;

ALTER TABLE {schema}.{prefix}projection_slots
    ADD CONSTRAINT {prefix}projection_slots_pkey PRIMARY KEY (name, slot, part);

DROP INDEX {schema}.{prefix}projection_slots_active;

CREATE UNIQUE INDEX {prefix}projection_slots_active
    ON {schema}.{prefix}projection_slots (name, part) WHERE active;

-- The runners working on each projection, by heartbeat: each takes its fair share of the
-- partitions (their number divided by the live runners'), and a runner whose heartbeat has
-- run out no longer counts.
CREATE TABLE {schema}.{prefix}projection_runners (
    name       text             NOT NULL,
    owner      text             NOT NULL,
    seen_until double precision NOT NULL,
    CONSTRAINT {prefix}projection_runners_pkey PRIMARY KEY (name, owner)
);
