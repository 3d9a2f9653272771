-- How many times a subject's keys were deleted (forgotten): a number that only grows, in the
-- transaction that deletes them. A process reads it to learn whether a subject was forgotten
-- elsewhere since it last looked, so that the states it cached (which may hold personal
-- fields in clear) are kept while nothing was, and dropped when something was.
CREATE TABLE {prefix}personal_forgets (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    forgets INTEGER NOT NULL
);
INSERT INTO {prefix}personal_forgets (id, forgets) VALUES (1, 0);
