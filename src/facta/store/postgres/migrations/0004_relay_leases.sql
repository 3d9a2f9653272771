-- Relays hold their row with the engine's one lease mechanism (owner and lease_until, as
-- projection slots do) instead of a session advisory lock: it works behind transaction-
-- pooling connection poolers, and a relay paused past its lease can never write again.
ALTER TABLE {schema}.{prefix}relay_checkpoints
    ADD COLUMN lease_until double precision NOT NULL DEFAULT 0;
