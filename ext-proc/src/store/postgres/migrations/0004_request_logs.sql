-- One row per logged request (ext-proc/src/request_log.rs): its bodies after redaction.
CREATE TABLE aigw_request_logs (
    id                 BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Request start, Unix milliseconds, UTC (the usage record's time_ms).
    time_ms            BIGINT  NOT NULL,
    request_id         TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    request_body       TEXT    NOT NULL,
    request_truncated  BOOLEAN NOT NULL,
    -- 'body': as received; 'text': a stream's assembled text.
    response_kind      TEXT    NOT NULL,
    response_body      TEXT    NOT NULL,
    response_truncated BOOLEAN NOT NULL,
    -- Both bodies' lengths: what retention's max_total_bytes counts.
    bytes              BIGINT  NOT NULL
);

CREATE INDEX aigw_request_logs_time ON aigw_request_logs (time_ms);
CREATE INDEX aigw_request_logs_request_id ON aigw_request_logs (request_id);
-- The Requests page opens one request by its id.
CREATE INDEX aigw_usage_records_request_id ON aigw_usage_records (request_id);
