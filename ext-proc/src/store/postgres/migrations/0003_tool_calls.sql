-- One row per MCP tool call through the gateway (ext-proc/src/mcp/record.rs).
CREATE TABLE aigw_tool_calls (
    id             BIGSERIAL PRIMARY KEY,
    -- Arrival, Unix milliseconds, UTC.
    time_ms        BIGINT  NOT NULL,
    route          TEXT    NOT NULL,
    server         TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    principal      TEXT    NOT NULL,
    user_id        TEXT,
    agent_id       TEXT,
    status         TEXT    NOT NULL,
    latency_ms     BIGINT  NOT NULL,
    request_bytes  BIGINT  NOT NULL,
    response_bytes BIGINT  NOT NULL,
    error          TEXT
);

CREATE INDEX aigw_tool_calls_time ON aigw_tool_calls (time_ms);
