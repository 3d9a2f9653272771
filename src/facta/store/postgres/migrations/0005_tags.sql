-- Tags (consistency boundaries): each event's tags in its row (sorted; NULL: none), and an
-- index of them, one row per tag and event, that queries and append conditions read from a
-- position on.
ALTER TABLE {schema}.{prefix}events ADD COLUMN tags text[];

CREATE TABLE {schema}.{prefix}event_tags (
    tag        text   NOT NULL,
    commit_xid xid8   NOT NULL,
    sequence   bigint NOT NULL,
    CONSTRAINT {prefix}event_tags_pkey PRIMARY KEY (tag, commit_xid, sequence)
);

DROP FUNCTION {schema}.{prefix}append(text[], bigint[], integer[], text[], text[], integer[],
    bytea[], bytea[], double precision, text);

-- The append function of 0001, which also writes tags and checks append conditions.
--
-- p_tags[j]: event j's tags joined by U+001F (NULL: none; the whole array NULL: no event has
-- any). p_locks: the batch's advisory lock keys, sorted, each once; p_exclusive[k] whether
-- key k is taken exclusively (a condition's) or shared (an event's). They are all taken
-- first, in that order, after the events table (against writers, SHARE ROW EXCLUSIVE, with
-- p_lock_log: a condition with an item that names no tag), and before the transaction id.
-- See facta/store/postgres/locks.py for why this makes conditions correct.
-- p_conditions[i]: how many query items request i's condition has (0: none); its items are
-- the next ones of p_item_types / p_item_tags (each joined by U+001F, '' for none), and
-- p_after_commit[i] / p_after_sequence[i] its position ('0' / 0: none, the whole log).
-- A request whose condition fails comes back with r_status 4, r_event_id the matching
-- event's id and r_detail its position ("commit:sequence"), nothing written for it.

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
    p_channel         text,
    p_tags            text[],
    p_locks           bigint[],
    p_exclusive       boolean[],
    p_lock_log        boolean,
    p_conditions      integer[],
    p_after_commit    xid8[],
    p_after_sequence  bigint[],
    p_item_types      text[],
    p_item_tags       text[]
) RETURNS TABLE (r_status integer, r_version bigint, r_sequences bigint[], r_commit xid8,
                 r_event_id text, r_detail text)
-- The store's connections use generic plans (plan_cache_mode): a custom plan per call of
-- the multi-event insert costs more than the insert.
LANGUAGE plpgsql AS $$
DECLARE
    v_commit   xid8;
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
    v_item     integer := 1;
    v_types    text[];
    v_tags     text[];
    v_found    text;
    v_at       text;
BEGIN
    -- The locks come before the transaction id: an append that waited for a conditional
    -- append to end then gets a later id, so its events sort after that append's in the
    -- log, never before events a condition was checked without. The table lock first, then
    -- the keys in order: the same order in every append, so none wait on each other in a
    -- cycle. (An insert takes ROW EXCLUSIVE anyway; taken here, it is taken before the id.)
    IF p_lock_log THEN
        LOCK TABLE {schema}.{prefix}events IN SHARE ROW EXCLUSIVE MODE;
    ELSE
        LOCK TABLE {schema}.{prefix}events IN ROW EXCLUSIVE MODE;
    END IF;
    FOR k IN 1 .. coalesce(cardinality(p_locks), 0) LOOP
        IF p_exclusive[k] THEN
            PERFORM pg_advisory_xact_lock(p_locks[k]);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(p_locks[k]);
        END IF;
    END LOOP;
    v_commit := pg_current_xact_id();
    r_commit := v_commit;
    FOR i IN 1 .. coalesce(cardinality(p_streams), 0) LOOP
        v_stream := p_streams[i];
        v_expected := p_expected[i];
        v_count := p_counts[i];
        r_status := 0;
        r_sequences := NULL;
        r_event_id := NULL;
        r_detail := NULL;
        v_found := NULL;
        IF p_conditions IS NOT NULL AND p_conditions[i] > 0 THEN
            FOR n IN v_item .. v_item + p_conditions[i] - 1 LOOP
                EXIT WHEN r_status <> 0;
                v_types := CASE WHEN p_item_types[n] = '' THEN NULL
                                ELSE string_to_array(p_item_types[n], E'\x1f') END;
                v_tags := CASE WHEN p_item_tags[n] = '' THEN NULL
                               ELSE string_to_array(p_item_tags[n], E'\x1f') END;
                -- Every committed row counts here, held back or not, and this batch's own.
                IF v_tags IS NOT NULL THEN
                    SELECT e.event_id, e.commit_xid::text || ':' || e.sequence INTO v_found, v_at
                        FROM {schema}.{prefix}event_tags t
                        JOIN {schema}.{prefix}events e
                          ON e.commit_xid = t.commit_xid AND e.sequence = t.sequence
                        WHERE t.tag = v_tags[1]
                          AND (t.commit_xid, t.sequence) > (p_after_commit[i], p_after_sequence[i])
                          AND e.tags @> v_tags
                          AND (v_types IS NULL OR e.type = ANY(v_types))
                        ORDER BY t.commit_xid, t.sequence LIMIT 1;
                ELSE
                    SELECT e.event_id, e.commit_xid::text || ':' || e.sequence INTO v_found, v_at
                        FROM {schema}.{prefix}events e
                        WHERE (e.commit_xid, e.sequence) > (p_after_commit[i], p_after_sequence[i])
                          AND (v_types IS NULL OR e.type = ANY(v_types))
                        ORDER BY e.commit_xid, e.sequence LIMIT 1;
                END IF;
                IF v_found IS NOT NULL THEN
                    r_status := 4;
                    r_event_id := v_found;
                    r_detail := v_at;
                    -- A retry of an append that committed: its result, not its condition
                    -- failing (looked up only here, off the common path).
                    IF EXISTS (SELECT 1 FROM {schema}.{prefix}events e
                               WHERE e.event_id = p_event_ids[v_first]) THEN
                        r_status := 2;
                        r_event_id := NULL;
                        r_detail := NULL;
                    END IF;
                END IF;
            END LOOP;
            v_item := v_item + p_conditions[i];
        END IF;
        SELECT coalesce(max(e.version), 0) INTO v_actual
            FROM {schema}.{prefix}events e WHERE e.stream_id = v_stream;
        IF r_status <> 0 THEN
            NULL;  -- a repeat or a failed condition: nothing written
        ELSIF NOT (v_expected = -1 OR v_expected = v_actual
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
                schema_version, event_id, stream_id, category, type, data, metadata, tags)
            VALUES (v_commit, v_actual + 1, p_recorded_at, p_schema_versions[v_first],
                    p_event_ids[v_first], v_stream, split_part(v_stream, '-', 1),
                    p_types[v_first], p_data[v_first], p_metadata[v_first],
                    string_to_array(p_tags[v_first], E'\x1f'))
            RETURNING sequence INTO v_sequence;
            r_sequences := ARRAY[v_sequence];
            v_actual := v_actual + 1;
            v_wrote := true;
        ELSE
            WITH inserted AS (
                INSERT INTO {schema}.{prefix}events AS e (commit_xid, version, recorded_at,
                    schema_version, event_id, stream_id, category, type, data, metadata, tags)
                SELECT v_commit, v_actual + n, p_recorded_at, p_schema_versions[v_first + n - 1],
                       p_event_ids[v_first + n - 1], v_stream, split_part(v_stream, '-', 1),
                       p_types[v_first + n - 1], p_data[v_first + n - 1],
                       p_metadata[v_first + n - 1], string_to_array(p_tags[v_first + n - 1], E'\x1f')
                FROM generate_series(1, v_count) AS n
                ORDER BY n
                RETURNING e.sequence
            )
            SELECT array_agg(inserted.sequence ORDER BY inserted.sequence) INTO r_sequences
                FROM inserted;
            v_actual := v_actual + v_count;
            v_wrote := true;
        END IF;
        IF r_status <> 0 OR p_tags IS NULL THEN
            NULL;
        ELSIF v_count = 1 THEN
            IF p_tags[v_first] IS NOT NULL THEN
                INSERT INTO {schema}.{prefix}event_tags (tag, commit_xid, sequence)
                    SELECT unnest(string_to_array(p_tags[v_first], E'\x1f')), v_commit,
                           r_sequences[1];
            END IF;
        ELSE
            INSERT INTO {schema}.{prefix}event_tags (tag, commit_xid, sequence)
                SELECT tag, v_commit, r_sequences[n]
                FROM generate_series(1, v_count) AS n,
                     unnest(string_to_array(p_tags[v_first + n - 1], E'\x1f')) AS tag;
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
