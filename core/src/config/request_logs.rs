//! Request logs: the bodies of calls to providers with `log_requests: true`, kept with
//! their usage records. How much is kept, what is redacted and for how long:
//!
//! ```json
//! "request_logs": {
//!   "max_body_bytes": 65536,
//!   "redact": {"json_paths": ["$.user", "$.metadata.*"],
//!              "patterns": ["[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}"]},
//!   "retention": {"max_age_hours": 168, "max_total_bytes": 1073741824}
//! }
//! ```
//!
//! The JSON paths (RFC 9535) and regular expressions are compiled and checked by the
//! sidecar, which owns the logs; here they are only kept as written.

use serde::Deserialize;

/// E-mail addresses and key-like strings (`sk-…`, AWS access key ids, bearer tokens): the
/// patterns used when `redact.patterns` is not given.
pub const DEFAULT_PATTERNS: [&str; 3] = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"\b(?:sk|pk|rk|xox[abpr])-[A-Za-z0-9_-]{16,}|\bAKIA[0-9A-Z]{16}\b",
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequestLogs {
    max_body_bytes: Option<u64>,
    redact: Option<RawRedact>,
    retention: Option<RawRetention>,
    queue_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedact {
    #[serde(default)]
    json_paths: Vec<String>,
    patterns: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    max_age_hours: Option<u64>,
    max_total_bytes: Option<u64>,
    interval_secs: Option<u64>,
}

/// The validated `request_logs` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogConfig {
    /// Each body (the request's, the response's or its assembled text) is cut here.
    pub max_body_bytes: u64,
    /// Values at these JSON paths become `"[REDACTED]"` (request and response bodies).
    pub json_paths: Vec<String>,
    /// Matches of these regular expressions become `[REDACTED]`, after the JSON paths.
    pub patterns: Vec<String>,
    /// Logs older than this are deleted.
    pub max_age_hours: u64,
    /// The oldest logs are deleted while all of them together are larger.
    pub max_total_bytes: u64,
    /// How often the retention job runs.
    pub retention_interval_secs: u64,
    /// Bytes of logs waiting for the store, past which new ones are dropped (and counted).
    pub queue_bytes: u64,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 10,
            json_paths: Vec::new(),
            patterns: DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect(),
            max_age_hours: 7 * 24,
            max_total_bytes: 1 << 30,
            retention_interval_secs: 60,
            queue_bytes: 16 << 20,
        }
    }
}

/// Larger bodies would make one log row larger than a sensible store write.
pub const MAX_BODY_BYTES: u64 = 16 << 20;

pub(super) fn validate_request_logs(
    raw: Option<RawRequestLogs>,
    err: &mut impl FnMut(String, String),
) -> RequestLogConfig {
    let mut c = RequestLogConfig::default();
    let Some(raw) = raw else {
        return c;
    };
    let f = |name: &str| format!("request_logs.{name}");
    if let Some(n) = raw.max_body_bytes {
        if n == 0 || n > MAX_BODY_BYTES {
            err(
                f("max_body_bytes"),
                format!("must be between 1 and {MAX_BODY_BYTES}"),
            );
        }
        c.max_body_bytes = n;
    }
    if let Some(n) = raw.queue_bytes {
        if n < c.max_body_bytes.saturating_mul(2) {
            err(
                f("queue_bytes"),
                "must hold at least two bodies of max_body_bytes".into(),
            );
        }
        c.queue_bytes = n;
    }
    if let Some(r) = raw.redact {
        for (i, p) in r.json_paths.iter().enumerate() {
            if !p.starts_with('$') {
                err(
                    f(&format!("redact.json_paths[{i}]")),
                    format!("'{p}' must be a JSON path starting with '$'"),
                );
            }
        }
        c.json_paths = r.json_paths;
        if let Some(p) = r.patterns {
            c.patterns = p;
        }
    }
    if let Some(r) = raw.retention {
        if let Some(h) = r.max_age_hours {
            if h == 0 {
                err(f("retention.max_age_hours"), "must be at least 1".into());
            }
            c.max_age_hours = h;
        }
        if let Some(n) = r.max_total_bytes {
            c.max_total_bytes = n;
        }
        if let Some(s) = r.interval_secs {
            if s == 0 {
                err(f("retention.interval_secs"), "must be at least 1".into());
            }
            c.retention_interval_secs = s;
        }
    }
    c
}
