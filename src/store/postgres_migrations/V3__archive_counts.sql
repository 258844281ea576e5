-- How many messages, chats and contacts the archive holds, so the status report reads three
-- numbers instead of counting every row. Each write transaction that adds or removes rows adds
-- its own tally once, as its last statement (no per-row trigger): the row stays locked only
-- from there to the commit.
CREATE TABLE archive_counts (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    messages BIGINT NOT NULL,
    chats    BIGINT NOT NULL,
    contacts BIGINT NOT NULL
);
INSERT INTO archive_counts (only_row, messages, chats, contacts)
VALUES (1, (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM chats), (SELECT COUNT(*) FROM contacts));
