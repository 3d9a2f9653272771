-- A relay's last error and when it met it, kept for operators (the console, `facta relay
-- status`) after the relay recovered, until the next one.
ALTER TABLE {schema}.{prefix}relay_checkpoints
    ADD COLUMN error text,
    ADD COLUMN error_at double precision;
