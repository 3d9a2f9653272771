-- The global log. Readers order it by (commit_xid, sequence): commit_xid is the id of the
-- writing transaction, and readers only return rows whose transaction id is below the xmin of
-- their snapshot, so that no transaction still in progress can later commit a row that sorts
-- before one already returned (see facta/store/postgres.py).
CREATE TABLE {schema}.{prefix}events (
    commit_xid     xid8             NOT NULL,
    sequence       bigint           GENERATED ALWAYS AS IDENTITY,
    version        bigint           NOT NULL,
    recorded_at    double precision NOT NULL,  -- Unix seconds, as RecordedEvent has it
    schema_version integer          NOT NULL,
    event_id       text             NOT NULL,
    stream_id      text             NOT NULL,
    category       text             NOT NULL,
    type           text             NOT NULL,
    data           bytea            NOT NULL,  -- JSON, UTF-8
    metadata       bytea            NOT NULL,  -- JSON, UTF-8
    CONSTRAINT {prefix}events_pkey PRIMARY KEY (commit_xid, sequence),
    CONSTRAINT {prefix}events_event_id_key UNIQUE (event_id),
    CONSTRAINT {prefix}events_stream_version_key UNIQUE (stream_id, version)
);

-- Reading one category in log order. (No index by type: a reader wants several types, which
-- an index cannot give in log order, and each index costs every append.)
CREATE INDEX {prefix}events_by_category ON {schema}.{prefix}events (category, commit_xid, sequence);

CREATE TABLE {schema}.{prefix}snapshots (
    stream_id      text             NOT NULL,
    version        bigint           NOT NULL,
    schema_version integer          NOT NULL,
    recorded_at    double precision NOT NULL,
    data           bytea            NOT NULL,
    CONSTRAINT {prefix}snapshots_pkey PRIMARY KEY (stream_id, version)
);

-- Appends a batch of requests in one transaction (group commit), each checked on its own.
-- Request i writes the next p_counts[i] events of the event arrays to stream p_streams[i] if
-- the stream's version satisfies p_expected[i]: >= 0 exactly that version, -1 any, -2 no
-- stream yet, -3 the stream exists. A batch holds each stream once. One row comes back per
-- request, in order, with r_version the stream's version after it and r_status:
--   0 appended          r_sequences = the sequence numbers of the new rows
--   1 wrong version     nothing written
--   2 already appended  these event ids are stored in this stream: a retry; read its result
--   3 duplicate id      r_event_id is stored elsewhere, r_detail says where
-- A transaction that wrote anything notifies p_channel (unless it is null) on commit.
-- The version check and the insert are not atomic: a transaction that commits the same
-- stream version (or event id) in between makes the insert fail with a unique violation,
-- which fails the whole call; the caller then resolves it (a retry, or WrongExpectedVersion).
-- That race is rare, and keeping the common path free of ON CONFLICT and of exception blocks
-- (a subtransaction each) is what makes it cheap.
CREATE FUNCTION {schema}.{prefix}append(
    p_streams         text[],
    p_expected        bigint[],
    p_counts          integer[],
    p_event_ids       text[],
    p_types           text[],
    p_schema_versions integer[],
    p_data            bytea[],
    p_metadata        bytea[],
    p_recorded_at     double precision,
    p_channel         text
) RETURNS TABLE (r_status integer, r_version bigint, r_sequences bigint[], r_commit xid8,
                 r_event_id text, r_detail text)
-- The store's connections use generic plans (plan_cache_mode): a custom plan per call of
-- the multi-event insert costs more than the insert.
LANGUAGE plpgsql AS $$
DECLARE
    v_commit   xid8 := pg_current_xact_id();
    v_first    integer := 1;
    v_count    integer;
    v_stream   text;
    v_expected bigint;
    v_actual   bigint;
    v_ids      text[];
    v_stored   bigint;
    v_other    text;
    v_sequence bigint;
    v_wrote    boolean := false;
BEGIN
    r_commit := v_commit;
    FOR i IN 1 .. coalesce(cardinality(p_streams), 0) LOOP
        v_stream := p_streams[i];
        v_expected := p_expected[i];
        v_count := p_counts[i];
        r_status := 0;
        r_sequences := NULL;
        r_event_id := NULL;
        r_detail := NULL;
        SELECT coalesce(max(e.version), 0) INTO v_actual
            FROM {schema}.{prefix}events e WHERE e.stream_id = v_stream;
        IF NOT (v_expected = -1 OR v_expected = v_actual
                OR (v_expected = -2 AND v_actual = 0) OR (v_expected = -3 AND v_actual > 0)) THEN
            -- Refused: but a retry of an earlier append gets that append's result instead.
            r_status := 1;
            v_ids := p_event_ids[v_first : v_first + v_count - 1];
            SELECT e.event_id, e.stream_id INTO r_event_id, v_other
                FROM {schema}.{prefix}events e
                WHERE e.event_id = ANY(v_ids) AND e.stream_id <> v_stream LIMIT 1;
            IF r_event_id IS NOT NULL THEN
                r_status := 3;
                r_detail := format('in stream %L', v_other);
            ELSE
                SELECT count(*), min(e.event_id) INTO v_stored, r_event_id
                    FROM {schema}.{prefix}events e WHERE e.event_id = ANY(v_ids);
                IF v_stored = v_count THEN
                    r_status := 2;
                ELSIF v_stored > 0 THEN
                    r_status := 3;
                    r_detail := 'an earlier append stored it with other ids';
                END IF;
            END IF;
        ELSIF v_count = 1 THEN
            INSERT INTO {schema}.{prefix}events (commit_xid, version, recorded_at,
                schema_version, event_id, stream_id, category, type, data, metadata)
            VALUES (v_commit, v_actual + 1, p_recorded_at, p_schema_versions[v_first],
                    p_event_ids[v_first], v_stream, split_part(v_stream, '-', 1),
                    p_types[v_first], p_data[v_first], p_metadata[v_first])
            RETURNING sequence INTO v_sequence;
            r_sequences := ARRAY[v_sequence];
            v_actual := v_actual + 1;
            v_wrote := true;
        ELSE
            WITH inserted AS (
                INSERT INTO {schema}.{prefix}events AS e (commit_xid, version, recorded_at,
                    schema_version, event_id, stream_id, category, type, data, metadata)
                SELECT v_commit, v_actual + n, p_recorded_at, p_schema_versions[v_first + n - 1],
                       p_event_ids[v_first + n - 1], v_stream, split_part(v_stream, '-', 1),
                       p_types[v_first + n - 1], p_data[v_first + n - 1],
                       p_metadata[v_first + n - 1]
                FROM generate_series(1, v_count) AS n
                ORDER BY n
                RETURNING e.sequence
            )
            SELECT array_agg(inserted.sequence ORDER BY inserted.sequence) INTO r_sequences
                FROM inserted;
            v_actual := v_actual + v_count;
            v_wrote := true;
        END IF;
        r_version := v_actual;
        RETURN NEXT;
        v_first := v_first + v_count;
    END LOOP;
    IF v_wrote AND p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, '');
    END IF;
END
$$;
