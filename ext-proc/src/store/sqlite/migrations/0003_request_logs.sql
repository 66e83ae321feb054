-- One row per logged request (ext-proc/src/request_log.rs): its bodies after redaction.
CREATE TABLE request_logs (
    id                 INTEGER PRIMARY KEY,
    -- Request start, Unix milliseconds, UTC (the usage record's time_ms).
    time_ms            INTEGER NOT NULL,
    request_id         TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    request_body       TEXT    NOT NULL,
    request_truncated  INTEGER NOT NULL,
    -- 'body': as received; 'text': a stream's assembled text.
    response_kind      TEXT    NOT NULL,
    response_body      TEXT    NOT NULL,
    response_truncated INTEGER NOT NULL,
    -- Both bodies' lengths: what retention's max_total_bytes counts.
    bytes              INTEGER NOT NULL
);

CREATE INDEX request_logs_time ON request_logs (time_ms);
CREATE INDEX request_logs_request_id ON request_logs (request_id);
-- The Requests page opens one request by its id.
CREATE INDEX usage_records_request_id ON usage_records (request_id);
