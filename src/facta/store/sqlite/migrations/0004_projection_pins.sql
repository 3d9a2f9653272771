-- Processes that write a read-model slot in their appends (inline projections), one row per
-- process and slot: a switch retires a pinned slot rather than drop its table, and the table
-- goes once every process that pinned it has ended. All of them run on this host (SQLite's
-- WAL mode shares memory between them), so `holder` ("host:pid:tag") names a process whose
-- end can be seen; a holder of another host name is taken to be alive.
CREATE TABLE {prefix}projection_pins (
    name   TEXT    NOT NULL,
    slot   INTEGER NOT NULL,
    holder TEXT    NOT NULL,
    PRIMARY KEY (name, slot, holder)
) WITHOUT ROWID;
