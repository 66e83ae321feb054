-- One row per usage record (ext-proc/src/record.rs). Counts are INTEGER (signed 64-bit);
-- values above i64::MAX are stored as i64::MAX.
CREATE TABLE usage_records (
    id                     INTEGER PRIMARY KEY,
    -- Request start, Unix milliseconds, UTC.
    time_ms                INTEGER NOT NULL,
    request_id             TEXT    NOT NULL,
    provider               TEXT    NOT NULL,
    provider_type          TEXT    NOT NULL,
    model_requested        TEXT,
    model_answered         TEXT,
    -- model_answered, else model_requested: what queries group and filter by.
    model                  TEXT,
    principal              TEXT    NOT NULL,
    user_id                TEXT,
    agent_id               TEXT,
    api_path               TEXT    NOT NULL,
    -- 0 when no response arrived.
    status                 INTEGER NOT NULL,
    streamed               INTEGER NOT NULL,
    input_tokens           INTEGER NOT NULL,
    cache_read_tokens      INTEGER NOT NULL,
    cache_write_5m_tokens  INTEGER NOT NULL,
    cache_write_1h_tokens  INTEGER NOT NULL,
    cache_write_30m_tokens INTEGER NOT NULL,
    cache_write_12h_tokens INTEGER NOT NULL,
    output_tokens          INTEGER NOT NULL,
    -- Informational, already inside output_tokens.
    reasoning_tokens       INTEGER NOT NULL,
    usage_reported         INTEGER NOT NULL,
    provider_total_tokens  INTEGER,
    service_tier           TEXT,
    -- NULL when the model has no price ("unpriced").
    cost_nanousd           INTEGER,
    unpriced_reason        TEXT,
    latency_ms             INTEGER NOT NULL,
    ttfb_ms                INTEGER,
    conversation_id        TEXT,
    outcome                TEXT    NOT NULL
);

-- Every query is a time range, alone or with one exact-match filter.
CREATE INDEX usage_records_time ON usage_records (time_ms);
CREATE INDEX usage_records_provider_time ON usage_records (provider, time_ms);
CREATE INDEX usage_records_model_time ON usage_records (model, time_ms);
CREATE INDEX usage_records_user_time ON usage_records (user_id, time_ms);
CREATE INDEX usage_records_agent_time ON usage_records (agent_id, time_ms);
