-- Polls: the question and options of each poll message, and each voter's latest choice.
-- `options` are JSON arrays of option names; `secret` is the poll's message secret, the key
-- votes are sealed with (NULL when the poll came from history, whose votes arrive open).
CREATE TABLE polls (
    chat_jid   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    question   TEXT NOT NULL,
    options    TEXT NOT NULL,
    selectable BIGINT NOT NULL,
    secret     BYTEA,
    PRIMARY KEY (chat_jid, message_id)
);
-- An empty `options` is a vote taken back.
CREATE TABLE poll_votes (
    chat_jid   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    voter_jid  TEXT NOT NULL,
    options    TEXT NOT NULL,
    timestamp  BIGINT NOT NULL,
    PRIMARY KEY (chat_jid, message_id, voter_jid)
);
