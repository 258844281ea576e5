-- The WhatsApp device and Signal state kept by whatsapp-rust, on PostgreSQL.
--
-- Every table carries device_id so one database can hold several linked devices, as the SQLite
-- backend of whatsapp-rust does; this program uses device 1. Tables are prefixed wa_ because the
-- session may share a database with the message archive. Unsigned 32-bit counters and ids are
-- BIGINT so no value wraps. Timestamps are unix seconds written by the program, not by the
-- server, because the expiry cut-offs they are compared with come from the program's clock.

CREATE TABLE wa_device (
    id INTEGER PRIMARY KEY,
    lid TEXT NOT NULL DEFAULT '',
    pn TEXT NOT NULL DEFAULT '',
    registration_id BIGINT NOT NULL,
    noise_key BYTEA NOT NULL,
    identity_key BYTEA NOT NULL,
    signed_pre_key BYTEA NOT NULL,
    signed_pre_key_id BIGINT NOT NULL,
    signed_pre_key_signature BYTEA NOT NULL,
    adv_secret_key BYTEA NOT NULL,
    account BYTEA,
    push_name TEXT NOT NULL DEFAULT '',
    app_version_primary BIGINT NOT NULL DEFAULT 0,
    app_version_secondary BIGINT NOT NULL DEFAULT 0,
    app_version_tertiary BIGINT NOT NULL DEFAULT 0,
    app_version_last_fetched_ms BIGINT NOT NULL DEFAULT 0,
    edge_routing_info BYTEA,
    props_hash TEXT,
    next_pre_key_id BIGINT NOT NULL DEFAULT 0,
    first_unupload_pre_key_id BIGINT NOT NULL DEFAULT 0,
    server_has_prekeys BOOLEAN NOT NULL DEFAULT FALSE,
    nct_salt BYTEA,
    -- The cached Noise certificate chain; all six are set or all are NULL.
    cert_intermediate_key BYTEA,
    cert_intermediate_not_before BIGINT,
    cert_intermediate_not_after BIGINT,
    cert_leaf_key BYTEA,
    cert_leaf_not_before BIGINT,
    cert_leaf_not_after BIGINT,
    login_counter INTEGER NOT NULL DEFAULT 0,
    lid_migrated BOOLEAN NOT NULL DEFAULT FALSE,
    last_signed_pre_key_rotation_ms BIGINT NOT NULL DEFAULT 0,
    read_receipts_disabled BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE wa_identities (
    device_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    key BYTEA NOT NULL,
    PRIMARY KEY (device_id, address)
);

CREATE TABLE wa_sessions (
    device_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (device_id, address)
);

CREATE TABLE wa_prekeys (
    device_id INTEGER NOT NULL,
    id BIGINT NOT NULL,
    record BYTEA NOT NULL,
    uploaded BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (device_id, id)
);

CREATE TABLE wa_signed_prekeys (
    device_id INTEGER NOT NULL,
    id BIGINT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (device_id, id)
);

CREATE TABLE wa_sender_keys (
    device_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (device_id, address)
);

CREATE TABLE wa_app_state_keys (
    device_id INTEGER NOT NULL,
    key_id BYTEA NOT NULL,
    key_data BYTEA NOT NULL,
    fingerprint BYTEA NOT NULL,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

-- One row per app-state collection; the index->value MAC map is kept as two parallel arrays.
CREATE TABLE wa_app_state_versions (
    device_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    index_keys TEXT[] NOT NULL,
    index_values BYTEA[] NOT NULL,
    mac_mismatch_fatal BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (device_id, name)
);

CREATE TABLE wa_app_state_mutation_macs (
    device_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    index_mac BYTEA NOT NULL,
    version BIGINT NOT NULL,
    value_mac BYTEA NOT NULL,
    PRIMARY KEY (device_id, name, index_mac)
);

CREATE TABLE wa_sender_key_devices (
    device_id INTEGER NOT NULL,
    group_jid TEXT NOT NULL,
    device_jid TEXT NOT NULL,
    has_key BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, group_jid, device_jid)
);

-- Deleting one device's rows across all groups filters on device_jid alone.
CREATE INDEX wa_sender_key_devices_by_device_jid ON wa_sender_key_devices (device_id, device_jid);

CREATE TABLE wa_lid_pn_mapping (
    device_id INTEGER NOT NULL,
    lid TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    learning_source TEXT NOT NULL,
    PRIMARY KEY (device_id, lid)
);

CREATE INDEX wa_lid_pn_mapping_by_phone ON wa_lid_pn_mapping (device_id, phone_number, updated_at DESC);

CREATE TABLE wa_base_keys (
    device_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    message_id TEXT NOT NULL,
    base_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, address, message_id)
);

-- devices is the JSON list of DeviceInfo, as whatsapp-rust serializes it, so fields it adds later
-- are kept without a migration here.
CREATE TABLE wa_device_registry (
    device_id INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    devices TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    phash TEXT,
    raw_id BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, user_id)
);

CREATE TABLE wa_group_metadata (
    device_id INTEGER NOT NULL,
    group_jid TEXT NOT NULL,
    info BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, group_jid)
);

CREATE TABLE wa_tc_tokens (
    device_id INTEGER NOT NULL,
    jid TEXT NOT NULL,
    token BYTEA NOT NULL,
    token_timestamp BIGINT NOT NULL,
    sender_timestamp BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, jid)
);

CREATE TABLE wa_sent_messages (
    device_id INTEGER NOT NULL,
    chat_jid TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat_jid, message_id)
);

CREATE INDEX wa_sent_messages_by_age ON wa_sent_messages (device_id, created_at);

CREATE TABLE wa_pending_inbound (
    device_id INTEGER NOT NULL,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    id TEXT NOT NULL,
    message BYTEA NOT NULL,
    inserted_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat, sender, id)
);

CREATE INDEX wa_pending_inbound_by_age ON wa_pending_inbound (device_id, inserted_at);

CREATE TABLE wa_msg_secrets (
    device_id INTEGER NOT NULL,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    -- 0 means the secret never expires.
    expires_at BIGINT NOT NULL DEFAULT 0,
    message_ts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, chat, sender, msg_id)
);

CREATE INDEX wa_msg_secrets_by_expiry ON wa_msg_secrets (device_id, expires_at) WHERE expires_at <> 0;
