-- Data subjects' keys (facta.personal): one live key per subject, which encrypts its personal
-- fields. material is the AES key, or that key wrapped by the master key (wrapped = 1).
-- Forgetting a subject deletes its rows (with secure_delete on, so the bytes are zeroed).
CREATE TABLE {prefix}personal_keys (
    key_id     TEXT    NOT NULL PRIMARY KEY,
    subject    TEXT    NOT NULL UNIQUE,
    material   BLOB    NOT NULL,
    wrapped    INTEGER NOT NULL,
    created_at REAL    NOT NULL
) WITHOUT ROWID;
