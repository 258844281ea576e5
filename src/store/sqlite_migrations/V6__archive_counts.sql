-- How many messages, chats and contacts the archive holds, so the status report reads three
-- numbers instead of counting every row. Each write transaction that adds or removes rows adds
-- its own tally once before it commits (no per-row trigger).
CREATE TABLE archive_counts (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    messages INTEGER NOT NULL,
    chats    INTEGER NOT NULL,
    contacts INTEGER NOT NULL
);
INSERT INTO archive_counts (only_row, messages, chats, contacts)
VALUES (1, (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM chats), (SELECT COUNT(*) FROM contacts));
