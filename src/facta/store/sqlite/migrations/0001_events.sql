-- The global log. `position` is the rowid: SQLite has one writer at a time, so rowids are
-- assigned in commit order and a reader can never pass a hole that fills later.
CREATE TABLE {prefix}events (
    position       INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    stream_id      TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    recorded_at    REAL    NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE INDEX {prefix}events_by_category ON {prefix}events (category, position);
CREATE INDEX {prefix}events_by_type ON {prefix}events (type, position);

CREATE TABLE {prefix}snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    recorded_at    REAL    NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
