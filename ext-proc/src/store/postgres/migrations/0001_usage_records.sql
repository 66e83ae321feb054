-- One row per usage record (metering/src/record.rs), the columns of SQLite's
-- usage_records. Counts, milliseconds and nano-USD are BIGINT (signed 64-bit); values
-- above i64::MAX are stored as i64::MAX.
CREATE TABLE aigw_usage_records (
    id                     BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Request start, Unix milliseconds, UTC.
    time_ms                BIGINT  NOT NULL,
    request_id             TEXT    NOT NULL,
    -- The grouped columns sort bytewise ("C"), as SQLite's BINARY does, whatever the
    -- database's default collation.
    provider               TEXT    COLLATE "C" NOT NULL,
    provider_type          TEXT    NOT NULL,
    model_requested        TEXT,
    model_answered         TEXT,
    -- model_answered, else model_requested: what queries group and filter by.
    model                  TEXT    COLLATE "C",
    principal              TEXT    NOT NULL,
    user_id                TEXT    COLLATE "C",
    agent_id               TEXT    COLLATE "C",
    api_path               TEXT    NOT NULL,
    -- HTTP status; 0 when no response arrived.
    status                 INTEGER NOT NULL,
    streamed               BOOLEAN NOT NULL,
    input_tokens           BIGINT  NOT NULL,
    cache_read_tokens      BIGINT  NOT NULL,
    cache_write_5m_tokens  BIGINT  NOT NULL,
    cache_write_1h_tokens  BIGINT  NOT NULL,
    cache_write_30m_tokens BIGINT  NOT NULL,
    cache_write_12h_tokens BIGINT  NOT NULL,
    output_tokens          BIGINT  NOT NULL,
    -- Informational, already inside output_tokens.
    reasoning_tokens       BIGINT  NOT NULL,
    usage_reported         BOOLEAN NOT NULL,
    provider_total_tokens  BIGINT,
    service_tier           TEXT,
    -- NULL when the model has no price ("unpriced").
    cost_nanousd           BIGINT,
    unpriced_reason        TEXT,
    latency_ms             BIGINT  NOT NULL,
    ttfb_ms                BIGINT,
    conversation_id        TEXT,
    outcome                TEXT    NOT NULL
);

-- Every query is a time range, alone or with one exact-match filter.
CREATE INDEX aigw_usage_records_time ON aigw_usage_records (time_ms);
CREATE INDEX aigw_usage_records_provider_time ON aigw_usage_records (provider, time_ms);
CREATE INDEX aigw_usage_records_model_time ON aigw_usage_records (model, time_ms);
CREATE INDEX aigw_usage_records_user_time ON aigw_usage_records (user_id, time_ms);
CREATE INDEX aigw_usage_records_agent_time ON aigw_usage_records (agent_id, time_ms);
