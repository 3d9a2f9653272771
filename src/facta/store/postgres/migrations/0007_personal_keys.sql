-- Data subjects' keys (facta.personal): one live key per subject, which encrypts its personal
-- fields. material is the AES key, or that key wrapped by the master key (wrapped = true).
-- Forgetting a subject deletes its rows.
CREATE TABLE {schema}.{prefix}personal_keys (
    key_id     text             NOT NULL,
    subject    text             NOT NULL,
    material   bytea            NOT NULL,
    wrapped    boolean          NOT NULL,
    created_at double precision NOT NULL,
    CONSTRAINT {prefix}personal_keys_pkey PRIMARY KEY (key_id),
    CONSTRAINT {prefix}personal_keys_subject UNIQUE (subject)
);
