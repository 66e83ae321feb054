-- One row per MCP tool call through the gateway (ext-proc/src/mcp/record.rs).
CREATE TABLE tool_calls (
    id             INTEGER PRIMARY KEY,
    -- Arrival, Unix milliseconds, UTC.
    time_ms        INTEGER NOT NULL,
    route          TEXT    NOT NULL,
    server         TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    principal      TEXT    NOT NULL,
    user_id        TEXT,
    agent_id       TEXT,
    status         TEXT    NOT NULL,
    latency_ms     INTEGER NOT NULL,
    request_bytes  INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    error          TEXT
);

CREATE INDEX tool_calls_time ON tool_calls (time_ms);
