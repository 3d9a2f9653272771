-- A relay's last error and when it met it, kept for operators (the console, `facta relay
-- status`) after the relay recovered, until the next one.
ALTER TABLE {prefix}relay_checkpoints ADD COLUMN error TEXT;
ALTER TABLE {prefix}relay_checkpoints ADD COLUMN error_at REAL;
