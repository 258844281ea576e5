-- The message archive on PostgreSQL: the same tables as the SQLite archive.
-- Times are Unix seconds (UTC). JIDs are stored in their canonical string form.
-- Search uses trigram indexes over lower-cased, accent-folded text computed by the application,
-- so both backends match the same substrings in any script.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE contacts (
    jid           TEXT PRIMARY KEY,
    lid           TEXT UNIQUE,
    phone         TEXT,
    full_name     TEXT,
    first_name    TEXT,
    push_name     TEXT,
    business_name TEXT,
    search_key    TEXT NOT NULL DEFAULT '',
    updated_at    BIGINT NOT NULL
);
CREATE INDEX contacts_by_phone ON contacts (phone);
CREATE INDEX contacts_search ON contacts USING gin (search_key gin_trgm_ops);

CREATE TABLE chats (
    jid             TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group', 'broadcast', 'newsletter', 'status')),
    name            TEXT,
    last_message_at BIGINT,
    unread_count    BIGINT NOT NULL DEFAULT 0,
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    pinned          BOOLEAN NOT NULL DEFAULT FALSE,
    muted_until     BIGINT,
    search_key      TEXT NOT NULL DEFAULT '',
    updated_at      BIGINT NOT NULL
);
CREATE INDEX chats_by_activity ON chats (last_message_at DESC NULLS LAST);
CREATE INDEX chats_search ON chats USING gin (search_key gin_trgm_ops);

CREATE TABLE messages (
    pk              BIGSERIAL PRIMARY KEY,
    chat_jid        TEXT NOT NULL REFERENCES chats (jid),
    id              TEXT NOT NULL,
    sender_jid      TEXT,
    timestamp       BIGINT NOT NULL,
    from_me         BOOLEAN NOT NULL,
    text            TEXT,
    caption         TEXT,
    quoted_id       TEXT,
    media_type      TEXT,
    file_name       TEXT,
    mime_type       TEXT,
    file_length     BIGINT,
    media_url       TEXT,
    direct_path     TEXT,
    media_key       BYTEA,
    file_sha256     BYTEA,
    file_enc_sha256 BYTEA,
    edited_at       BIGINT,
    deleted_at      BIGINT,
    search_text     TEXT NOT NULL DEFAULT '',
    UNIQUE (chat_jid, id)
);
CREATE INDEX messages_by_chat_time ON messages (chat_jid, timestamp);
CREATE INDEX messages_by_time ON messages (timestamp);
CREATE INDEX messages_by_sender ON messages (sender_jid, timestamp);
CREATE INDEX messages_by_id ON messages (id);
CREATE INDEX messages_search ON messages USING gin (search_text gin_trgm_ops);

CREATE TABLE reactions (
    chat_jid   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender_jid TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    timestamp  BIGINT NOT NULL,
    PRIMARY KEY (chat_jid, message_id, sender_jid)
);

CREATE TABLE group_participants (
    group_jid       TEXT NOT NULL REFERENCES chats (jid),
    participant_jid TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin', 'superadmin')),
    PRIMARY KEY (group_jid, participant_jid)
);

CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
