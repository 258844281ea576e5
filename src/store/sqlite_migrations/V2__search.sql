-- Full-text search over message text, captions and file names.
-- The trigram tokenizer matches substrings in any script (including those written without
-- spaces) and runs of digits such as phone numbers; diacritics are ignored.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text,
    caption,
    file_name,
    content = 'messages',
    content_rowid = 'pk',
    tokenize = 'trigram remove_diacritics 1'
);

CREATE TRIGGER messages_fts_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text, caption, file_name)
    VALUES (new.pk, new.text, new.caption, new.file_name);
END;

CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text, caption, file_name)
    VALUES ('delete', old.pk, old.text, old.caption, old.file_name);
END;

CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF text, caption, file_name ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text, caption, file_name)
    VALUES ('delete', old.pk, old.text, old.caption, old.file_name);
    INSERT INTO messages_fts (rowid, text, caption, file_name)
    VALUES (new.pk, new.text, new.caption, new.file_name);
END;
