-- Tags (consistency boundaries): each event's tags in its row, sorted and joined by the unit
-- separator (NULL: none), and an index of them, one row per tag and event, which a query
-- or an append condition reads from `after` on.
ALTER TABLE {prefix}events ADD COLUMN tags TEXT;

CREATE TABLE {prefix}event_tags (
    tag      TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tag, position)
) WITHOUT ROWID;
