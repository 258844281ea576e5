-- The ledger of acting tool calls that came with a request key: a call retried with the same
-- key (a client's relay resending after a broken connection) gets the first call's answer
-- instead of acting twice. `outcome` is the answer as JSON, NULL while the call runs or if it
-- was cut off before it could be recorded. Rows older than a week are removed as new ones come.
CREATE TABLE tool_requests (
    request_key TEXT PRIMARY KEY,
    tool        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    outcome     TEXT
);
CREATE INDEX tool_requests_started_at ON tool_requests (started_at);
