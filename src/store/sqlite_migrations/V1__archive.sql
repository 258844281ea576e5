-- The message archive: who, which conversations, and what was said.
-- Times are Unix seconds (UTC). JIDs are stored in their canonical string form.

CREATE TABLE contacts (
    jid           TEXT PRIMARY KEY,          -- phone-number JID: 31612345678@s.whatsapp.net
    lid           TEXT UNIQUE,               -- the same person's LID, when known: 1234@lid
    phone         TEXT,
    full_name     TEXT,                      -- from the address book
    first_name    TEXT,
    push_name     TEXT,                      -- the name the person set themselves
    business_name TEXT,
    search_key    TEXT NOT NULL DEFAULT '',  -- every name and the number, lower-cased, for LIKE
    updated_at    INTEGER NOT NULL
);
CREATE INDEX contacts_by_phone ON contacts (phone);

CREATE TABLE chats (
    jid             TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group', 'broadcast', 'newsletter', 'status')),
    name            TEXT,
    last_message_at INTEGER,
    unread_count    INTEGER NOT NULL DEFAULT 0,
    archived        INTEGER NOT NULL DEFAULT 0,
    pinned          INTEGER NOT NULL DEFAULT 0,
    muted_until     INTEGER,
    search_key      TEXT NOT NULL DEFAULT '',
    updated_at      INTEGER NOT NULL
);
CREATE INDEX chats_by_activity ON chats (last_message_at DESC);

-- pk is an explicit rowid alias so VACUUM can never renumber the rows the search index points at.
CREATE TABLE messages (
    pk              INTEGER PRIMARY KEY,
    chat_jid        TEXT NOT NULL REFERENCES chats (jid),
    id              TEXT NOT NULL,
    sender_jid      TEXT,
    timestamp       INTEGER NOT NULL,
    from_me         INTEGER NOT NULL,
    text            TEXT,
    caption         TEXT,
    quoted_id       TEXT,
    media_type      TEXT,                    -- image, video, audio, document, sticker
    file_name       TEXT,
    mime_type       TEXT,
    file_length     INTEGER,
    media_url       TEXT,
    direct_path     TEXT,
    media_key       BLOB,
    file_sha256     BLOB,
    file_enc_sha256 BLOB,
    edited_at       INTEGER,
    deleted_at      INTEGER,
    UNIQUE (chat_jid, id)
);
CREATE INDEX messages_by_chat_time ON messages (chat_jid, timestamp);
CREATE INDEX messages_by_time ON messages (timestamp);
CREATE INDEX messages_by_sender ON messages (sender_jid, timestamp);

CREATE TABLE reactions (
    chat_jid   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender_jid TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    timestamp  INTEGER NOT NULL,
    PRIMARY KEY (chat_jid, message_id, sender_jid)
);

CREATE TABLE group_participants (
    group_jid       TEXT NOT NULL REFERENCES chats (jid),
    participant_jid TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin', 'superadmin')),
    PRIMARY KEY (group_jid, participant_jid)
);

-- Progress markers the engine keeps across restarts (e.g. the last history sync time).
CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
