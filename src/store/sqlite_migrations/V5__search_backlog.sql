-- Messages enter the search index in batches instead of one by one from a trigger.
-- Invariant: every message with pk <= indexed_through is in messages_fts with its current
-- text, caption and file name, and no message above it is. Searches read the index for the
-- rows up to the mark and scan the few (or, during a history sync, many) rows above it.
DROP TRIGGER messages_fts_after_insert;
DROP TRIGGER messages_fts_after_delete;
DROP TRIGGER messages_fts_after_update;

CREATE TABLE search_progress (
    only_row        INTEGER PRIMARY KEY CHECK (only_row = 1),
    indexed_through INTEGER NOT NULL
);
-- Until now a trigger indexed every message as it was stored.
INSERT INTO search_progress (only_row, indexed_through)
VALUES (1, (SELECT COALESCE(MAX(pk), 0) FROM messages));

-- Only indexed rows have entries to remove. A new message takes MAX(pk) + 1, so after any
-- delete the mark comes down to the highest pk left: a reused pk must count as not indexed.
-- Both steps sit in one trigger, in this order, so the mark is read before it moves.
CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text, caption, file_name)
    SELECT 'delete', old.pk, old.text, old.caption, old.file_name
    WHERE old.pk <= (SELECT indexed_through FROM search_progress);
    UPDATE search_progress SET indexed_through = (SELECT COALESCE(MAX(pk), 0) FROM messages)
    WHERE indexed_through > (SELECT COALESCE(MAX(pk), 0) FROM messages);
END;

CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF text, caption, file_name ON messages
WHEN old.pk <= (SELECT indexed_through FROM search_progress) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text, caption, file_name)
    VALUES ('delete', old.pk, old.text, old.caption, old.file_name);
    INSERT INTO messages_fts (rowid, text, caption, file_name)
    VALUES (new.pk, new.text, new.caption, new.file_name);
END;
