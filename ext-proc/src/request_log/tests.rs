use super::capture::Capture;
use super::redact::{Redactor, REDACTED, UNREDACTABLE};
use super::ResponseKind;
use crate::usage::event_stream::{encode_frame, HeaderValue};
use crate::usage::{ApiFormat, OpenaiDialect};
use aigw_core::RequestLogConfig;

fn sse(events: &[&str]) -> Vec<u8> {
    events
        .iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect::<String>()
        .into_bytes()
}

/// Feeds `body` in pieces of every size from 1 to 7 bytes: the result must not depend
/// on where chunks end.
fn assembled(format: ApiFormat, content_type: &str, body: &[u8], cap: u64) -> (String, bool) {
    let mut first: Option<(String, bool)> = None;
    for size in 1..=7 {
        let mut c = Capture::new(cap, Some(format));
        c.on_response_headers(Some(content_type));
        for piece in body.chunks(size) {
            c.on_response_body(piece);
        }
        let got = c.finish();
        assert_eq!(got.response_kind, ResponseKind::Text);
        let got = (got.response_body, got.response_truncated);
        if let Some(f) = &first {
            assert_eq!(&got, f, "chunks of {size}");
        }
        first = Some(got);
    }
    first.unwrap()
}

#[test]
fn an_openai_chat_stream_is_kept_as_its_text() {
    let body = sse(&[
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"Hello, "}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"wörld"}}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        "[DONE]",
    ]);
    let chat = ApiFormat::OpenaiChat(OpenaiDialect::Openai);
    assert_eq!(
        assembled(chat, "text/event-stream; charset=utf-8", &body, 1000),
        ("Hello, wörld".into(), false)
    );
    // Cut at the cap, never inside a character: "Hello, w" + the 2-byte "ö" does not fit in 9.
    assert_eq!(
        assembled(chat, "text/event-stream", &body, 9),
        ("Hello, w".into(), true)
    );
}

#[test]
fn anthropic_and_gemini_streams_keep_only_answer_text() {
    let anthropic = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n";
    assert_eq!(
        assembled(
            ApiFormat::AnthropicMessages,
            "text/event-stream",
            anthropic,
            100
        )
        .0,
        "Hi there"
    );
    let gemini = sse(&[
        r#"{"candidates":[{"content":{"parts":[{"text":"plan","thought":true},{"text":"A"}]}}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"B"}]}}]}"#,
    ]);
    assert_eq!(
        assembled(
            ApiFormat::GeminiStreamGenerateContent,
            "text/event-stream",
            &gemini,
            100
        )
        .0,
        "AB"
    );
}

#[test]
fn a_bedrock_converse_stream_is_read_from_its_frames() {
    let frame = |event: &str, payload: &str| {
        encode_frame(
            &[
                (":event-type", HeaderValue::String(event.into())),
                (":message-type", HeaderValue::String("event".into())),
            ],
            payload.as_bytes(),
        )
    };
    let mut body = frame("messageStart", r#"{"role":"assistant"}"#);
    body.extend(frame(
        "contentBlockDelta",
        r#"{"delta":{"text":"one "},"contentBlockIndex":0}"#,
    ));
    body.extend(frame(
        "contentBlockDelta",
        r#"{"delta":{"text":"two"},"contentBlockIndex":0}"#,
    ));
    body.extend(frame(
        "metadata",
        r#"{"usage":{"inputTokens":1,"outputTokens":2}}"#,
    ));
    assert_eq!(
        assembled(
            ApiFormat::BedrockConverseStream,
            "application/vnd.amazon.eventstream",
            &body,
            100
        ),
        ("one two".into(), false)
    );
}

#[test]
fn bodies_are_kept_as_sent_up_to_the_cap() {
    let mut c = Capture::new(10, Some(ApiFormat::AnthropicMessages));
    c.on_request_body(b"{\"model\":\"m\",\"x\":1}");
    c.on_response_headers(Some("application/json"));
    c.on_response_body(b"{\"id\":");
    c.on_response_body(b"\"1\"}");
    let got = c.finish();
    assert_eq!(
        (got.request_body.as_str(), got.request_truncated),
        ("{\"model\":\"", true)
    );
    assert_eq!(got.response_kind, ResponseKind::Body);
    assert_eq!(
        (got.response_body.as_str(), got.response_truncated),
        ("{\"id\":\"1\"}", false)
    );
}

fn redactor(json_paths: &[&str]) -> Redactor {
    Redactor::new(&RequestLogConfig {
        json_paths: json_paths.iter().map(|p| p.to_string()).collect(),
        ..RequestLogConfig::default()
    })
    .unwrap()
}

#[test]
fn redaction_applies_json_paths_then_patterns() {
    let r = redactor(&["$.user", "$.messages[*].name"]);
    let body = r#"{"user":"u-42","messages":[{"role":"user","name":"ann","content":"mail ann@example.com, key sk-abcdefghijklmnopqrstuvwx"}]}"#;
    let out: serde_json::Value = serde_json::from_str(&r.body(body.into(), false)).unwrap();
    assert_eq!(out["user"], REDACTED);
    assert_eq!(out["messages"][0]["name"], REDACTED);
    assert_eq!(
        out["messages"][0]["content"],
        format!("mail {REDACTED}, key {REDACTED}")
    );
    // Text (a stream's) gets the patterns; a body the paths cannot be applied to is not kept.
    assert_eq!(
        r.text("write to bob@corp.io".into()),
        format!("write to {REDACTED}")
    );
    assert_eq!(r.body(body[..30].into(), true), UNREDACTABLE);
    assert_eq!(r.body("not json".into(), false), UNREDACTABLE);
    // Without JSON paths, any body is kept with its patterns redacted.
    assert_eq!(
        redactor(&[]).body("x AKIAABCDEFGHIJKLMNOP y".into(), false),
        format!("x {REDACTED} y")
    );
}

#[test]
fn a_bad_rule_names_its_field() {
    let bad = |c: RequestLogConfig| Redactor::new(&c).err().unwrap().to_string();
    let e = bad(RequestLogConfig {
        json_paths: vec!["$.a".into(), "$[".into()],
        ..Default::default()
    });
    assert!(
        e.starts_with("request_logs.redact.json_paths[1]: '$[' is not a JSON path"),
        "{e}"
    );
    let e = bad(RequestLogConfig {
        patterns: vec!["(".into()],
        ..Default::default()
    });
    assert!(
        e.starts_with("request_logs.redact.patterns[0]: not a regular expression"),
        "{e}"
    );
}

/// A store whose request-log inserts wait until released (the other calls are SQLite's).
struct Gate {
    inner: crate::store::sqlite::SqliteStore,
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl crate::store::UsageStore for Gate {
    fn backend(&self) -> &'static str {
        "gate"
    }
    fn insert_batch(
        &self,
        r: &[crate::record::UsageRecord],
    ) -> Result<(), crate::store::StoreError> {
        self.inner.insert_batch(r)
    }
    fn provider_summary(
        &self,
        d: crate::store::time::UtcDay,
        n: u32,
    ) -> Result<Vec<crate::store::ProviderSummary>, crate::store::StoreError> {
        self.inner.provider_summary(d, n)
    }
    fn usage_series(
        &self,
        q: &crate::store::SeriesQuery,
    ) -> Result<Vec<crate::store::SeriesPoint>, crate::store::StoreError> {
        self.inner.usage_series(q)
    }
    fn records(
        &self,
        r: crate::store::TimeRange,
        l: usize,
    ) -> Result<Vec<crate::record::UsageRecord>, crate::store::StoreError> {
        self.inner.records(r, l)
    }
    fn insert_tool_calls(
        &self,
        c: &[crate::mcp::record::ToolCallRecord],
    ) -> Result<(), crate::store::StoreError> {
        self.inner.insert_tool_calls(c)
    }
    fn tool_calls(
        &self,
        r: crate::store::TimeRange,
        l: usize,
    ) -> Result<Vec<crate::mcp::record::ToolCallRecord>, crate::store::StoreError> {
        self.inner.tool_calls(r, l)
    }
    fn latency(
        &self,
        q: &crate::store::SeriesQuery,
        w: bool,
    ) -> Result<Vec<crate::store::analytics::LatencyPoint>, crate::store::StoreError> {
        self.inner.latency(q, w)
    }
    fn insert_request_logs(&self, l: &[super::RequestLog]) -> Result<(), crate::store::StoreError> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        self.inner.insert_request_logs(l)
    }
    fn requests(
        &self,
        q: &crate::store::RequestQuery,
    ) -> Result<Vec<crate::store::RequestRow>, crate::store::StoreError> {
        self.inner.requests(q)
    }
    fn request(
        &self,
        id: &str,
    ) -> Result<
        (Vec<crate::record::UsageRecord>, Option<super::RequestLog>),
        crate::store::StoreError,
    > {
        self.inner.request(id)
    }
    fn prune_request_logs(&self, b: i64, m: u64) -> Result<u64, crate::store::StoreError> {
        self.inner.prune_request_logs(b, m)
    }
}

#[test]
fn a_full_queue_drops_and_counts_and_never_blocks() {
    use super::writer::{PendingLog, RequestLogWriter, Retention};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let gate = Arc::new(Gate {
        inner: crate::store::sqlite::SqliteStore::open_in_memory().unwrap(),
        open: std::sync::Mutex::new(false),
        opened: std::sync::Condvar::new(),
    });
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let retention = Retention {
        max_age_ms: i64::MAX,
        max_total_bytes: u64::MAX,
        interval: Duration::from_secs(3600),
        queue_bytes: 1000,
    };
    let writer = RequestLogWriter::start(gate.clone(), metrics.clone(), retention).unwrap();
    let redactor = Arc::new(redactor(&[]));
    // 100 bytes each: the writer takes the first into a batch and then waits on the store,
    // so 10 more fill the queue and the rest are dropped.
    let started = Instant::now();
    for i in 0..30 {
        let mut c = Capture::new(1000, None);
        c.on_request_body(&[b'x'; 50]);
        c.on_response_headers(Some("application/json"));
        c.on_response_body(&[b'y'; 50]);
        writer.submit(PendingLog {
            time_ms: 1,
            request_id: format!("r{i}"),
            provider: "p".into(),
            captured: c.finish(),
            redactor: Arc::clone(&redactor),
        });
        if i == 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let dropped = metrics
        .request_logs_dropped_queue_full
        .load(Ordering::Relaxed);
    assert!((19..=20).contains(&dropped), "{dropped}");
    *gate.open.lock().unwrap() = true;
    gate.opened.notify_all();
    let stored = || metrics.request_logs_stored.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stored() + dropped < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stored() + dropped, 30);
}
