//! The sink: latency, drain at shutdown, overflow, outages. Also the record builders the
//! other modules' tests use.

use super::sqlite::{SqliteOptions, SqliteStore};
use super::*;
use crate::mcp::record::ToolCallRecord;
use crate::metrics::Metrics;
use crate::record::Outcome;
use crate::store::time::{MS_PER_DAY, MS_PER_HOUR};
use crate::usage::Usage;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// 2025-01-31T00:00:00Z.
pub(crate) const JAN_31: i64 = 1_738_281_600_000;

/// A priced, complete OpenAI chat request at `time_ms`.
pub(crate) fn record(time_ms: i64, provider: &str, model: &str) -> UsageRecord {
    UsageRecord {
        time_ms,
        request_id: format!("req-{time_ms}"),
        provider: provider.to_string(),
        provider_type: "openai".into(),
        model_requested: Some(model.to_string()),
        model_answered: Some(format!("{model}-2025-01-01")),
        principal: "team-a".to_string(),
        user: Some("alice".to_string()),
        agent: None,
        api_path: "/v1/chat/completions".to_string(),
        status: 200,
        streamed: false,
        usage: Usage {
            input: 100,
            cache_read: 20,
            cache_write_30m: 5,
            output: 50,
            reasoning: 10,
            model: Some(format!("{model}-2025-01-01")),
            provider_total: Some(175),
            ..Usage::default()
        },
        usage_reported: true,
        cost_nanousd: Some(1_500_000),
        unpriced_reason: None,
        latency_ms: 250,
        ttfb_ms: Some(40),
        conversation_id: None,
        trace_parent: None,
        outcome: Outcome::Complete,
    }
}

pub(crate) fn unpriced(mut r: UsageRecord) -> UsageRecord {
    r.cost_nanousd = None;
    r.unpriced_reason = Some("no price for model".to_string());
    r
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store");

/// Compares with a fixture file; `UPDATE_FIXTURES=1` rewrites it instead.
pub(crate) fn assert_fixture(name: &str, actual: &str) {
    let path = format!("{FIXTURES}/{name}");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        actual, expected,
        "{path} differs (UPDATE_FIXTURES=1 rewrites it)"
    );
}

/// A config that retries fast, so outage tests finish quickly.
fn fast_config() -> SinkConfig {
    SinkConfig {
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(50),
        ..SinkConfig::default()
    }
}

fn temp_store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("usage.db"), SqliteOptions::default()).unwrap();
    (dir, Arc::new(store))
}

fn count(store: &dyn UsageStore) -> usize {
    store
        .records(
            TimeRange {
                from_ms: 0,
                to_ms: i64::MAX,
            },
            usize::MAX,
        )
        .unwrap()
        .len()
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}

/// A store in memory that can be made to fail, stall, panic or slow down.
#[derive(Default)]
struct FakeStore {
    records: Mutex<Vec<UsageRecord>>,
    /// Failed attempts still to come.
    failures: AtomicU64,
    fail_forever: AtomicBool,
    panic_once: AtomicBool,
    attempts: AtomicU64,
    /// While true, `insert_batch` waits.
    stalled: Mutex<bool>,
    unstalled: Condvar,
    delay: Option<Duration>,
}

impl FakeStore {
    fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    fn stall(&self, stalled: bool) {
        *self.stalled.lock().unwrap() = stalled;
        self.unstalled.notify_all();
    }
}

impl UsageStore for FakeStore {
    fn backend(&self) -> &'static str {
        "fake"
    }

    fn insert_batch(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let mut stalled = self.stalled.lock().unwrap();
        while *stalled {
            stalled = self.unstalled.wait(stalled).unwrap();
        }
        drop(stalled);
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
        if self.panic_once.swap(false, Ordering::SeqCst) {
            panic!("fake backend panic (expected by the test)");
        }
        if self.fail_forever.load(Ordering::SeqCst)
            || self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Corrupt("injected failure".into()));
        }
        self.records.lock().unwrap().extend_from_slice(records);
        Ok(())
    }

    fn provider_summary(&self, _: UtcDay, _: u32) -> Result<Vec<ProviderSummary>, StoreError> {
        Ok(Vec::new())
    }

    fn usage_series(&self, _: &SeriesQuery) -> Result<Vec<SeriesPoint>, StoreError> {
        Ok(Vec::new())
    }

    fn records(&self, _: TimeRange, _: usize) -> Result<Vec<UsageRecord>, StoreError> {
        Ok(self.records.lock().unwrap().clone())
    }

    fn insert_tool_calls(&self, _: &[ToolCallRecord]) -> Result<(), StoreError> {
        Ok(())
    }

    fn tool_calls(&self, _: TimeRange, _: usize) -> Result<Vec<ToolCallRecord>, StoreError> {
        Ok(Vec::new())
    }

    fn latency(
        &self,
        _: &SeriesQuery,
        _: bool,
    ) -> Result<Vec<analytics::LatencyPoint>, StoreError> {
        Ok(Vec::new())
    }

    fn insert_request_logs(&self, _: &[RequestLog]) -> Result<(), StoreError> {
        Ok(())
    }

    fn requests(&self, _: &RequestQuery) -> Result<Vec<RequestRow>, StoreError> {
        Ok(Vec::new())
    }

    fn request(&self, _: &str) -> Result<(Vec<UsageRecord>, Option<RequestLog>), StoreError> {
        Ok((Vec::new(), None))
    }

    fn prune_request_logs(&self, _: i64, _: u64) -> Result<u64, StoreError> {
        Ok(0)
    }
}

#[test]
fn a_record_is_committed_within_100ms() {
    let (_dir, store) = temp_store();
    commits_within_100ms(store);
}

/// Shared with the other backends' tests.
pub(crate) fn commits_within_100ms(store: Arc<dyn UsageStore>) {
    let sink = RecordSink::start(store.clone(), Arc::default(), SinkConfig::default()).unwrap();
    // The first commit also prepares the statement; time the ones after it.
    sink.submit(record(JAN_31, "openai", "gpt-4o"));
    assert!(wait_until(Duration::from_secs(2), || sink
        .stats()
        .committed
        == 1));
    for i in 1..=3u64 {
        let submitted = Instant::now();
        sink.submit(record(JAN_31 + i as i64, "openai", "gpt-4o"));
        let committed = wait_until(Duration::from_secs(2), || sink.stats().committed == 1 + i);
        let latency = submitted.elapsed();
        assert!(committed);
        assert!(latency < Duration::from_millis(100), "took {latency:?}");
    }
    assert_eq!(count(store.as_ref()), 4);
    sink.shutdown(Duration::from_secs(5));
}

#[test]
fn shutdown_drains_every_record_in_flight() {
    let (_dir, sqlite) = temp_store();
    shutdown_drains(sqlite);
}

/// Shared with the other backends' tests.
pub(crate) fn shutdown_drains(sqlite: Arc<dyn UsageStore>) {
    // A slow store and a long batch window: most records are still queued at shutdown.
    struct Slow(Arc<dyn UsageStore>);
    impl UsageStore for Slow {
        fn backend(&self) -> &'static str {
            "slow"
        }
        fn insert_batch(&self, r: &[UsageRecord]) -> Result<(), StoreError> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.insert_batch(r)
        }
        fn provider_summary(&self, d: UtcDay, n: u32) -> Result<Vec<ProviderSummary>, StoreError> {
            self.0.provider_summary(d, n)
        }
        fn usage_series(&self, q: &SeriesQuery) -> Result<Vec<SeriesPoint>, StoreError> {
            self.0.usage_series(q)
        }
        fn records(&self, r: TimeRange, l: usize) -> Result<Vec<UsageRecord>, StoreError> {
            self.0.records(r, l)
        }
        fn insert_tool_calls(&self, c: &[ToolCallRecord]) -> Result<(), StoreError> {
            self.0.insert_tool_calls(c)
        }
        fn tool_calls(&self, r: TimeRange, l: usize) -> Result<Vec<ToolCallRecord>, StoreError> {
            self.0.tool_calls(r, l)
        }
        fn latency(
            &self,
            q: &SeriesQuery,
            w: bool,
        ) -> Result<Vec<analytics::LatencyPoint>, StoreError> {
            self.0.latency(q, w)
        }
        fn insert_request_logs(&self, l: &[RequestLog]) -> Result<(), StoreError> {
            self.0.insert_request_logs(l)
        }
        fn requests(&self, q: &RequestQuery) -> Result<Vec<RequestRow>, StoreError> {
            self.0.requests(q)
        }
        fn request(&self, id: &str) -> Result<(Vec<UsageRecord>, Option<RequestLog>), StoreError> {
            self.0.request(id)
        }
        fn prune_request_logs(&self, b: i64, m: u64) -> Result<u64, StoreError> {
            self.0.prune_request_logs(b, m)
        }
    }
    let config = SinkConfig {
        batch_window: Duration::from_secs(60),
        ..SinkConfig::default()
    };
    let sink = RecordSink::start(Arc::new(Slow(sqlite.clone())), Arc::default(), config).unwrap();
    const N: usize = 5_000;
    for i in 0..N {
        sink.submit(record(JAN_31 + i as i64, "openai", "gpt-4o"));
    }
    let before = sink.stats();
    assert!(before.committed < N as u64, "{before:?}");
    let report = sink.shutdown(Duration::from_secs(5));
    assert!(!report.timed_out);
    assert_eq!(report.stats.accepted, N as u64);
    assert_eq!(report.stats.committed, N as u64);
    assert_eq!(report.stats.lost, 0);
    assert_eq!(report.stats.dropped, 0);
    assert_eq!(count(sqlite.as_ref()), N);
    // A second shutdown returns at once with the same counts.
    assert_eq!(sink.shutdown(Duration::from_secs(5)).stats, report.stats);
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let store = Arc::new(FakeStore::default());
    store.stall(true);
    let metrics = Arc::new(Metrics::default());
    let config = SinkConfig {
        queue_capacity: 10,
        batch_max: 1,
        retry_capacity: 1,
        ..SinkConfig::default()
    };
    let sink = RecordSink::start(store.clone(), metrics.clone(), config).unwrap();
    // The writer takes one record and stalls in the store; then the queue fills.
    sink.submit(record(JAN_31, "openai", "gpt-4o"));
    assert!(wait_until(Duration::from_secs(2), || store
        .attempts
        .load(Ordering::SeqCst)
        == 1));
    let started = Instant::now();
    for i in 1..100 {
        sink.submit(record(JAN_31 + i, "openai", "gpt-4o"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "submit blocked"
    );
    let stats = sink.stats();
    assert_eq!(stats.accepted, 11, "{stats:?}");
    assert_eq!(stats.dropped, 89);
    assert_eq!(metrics.records_dropped(), 89);
    assert!(metrics
        .render()
        .contains("\naigw_records_dropped_total 89\n"));

    store.stall(false);
    let report = sink.shutdown(Duration::from_secs(5));
    assert_eq!(report.stats.committed, 11);
    assert_eq!(store.len(), 11);
    // After shutdown, submit still returns at once and counts the drop.
    sink.submit(record(JAN_31, "openai", "gpt-4o"));
    assert_eq!(sink.stats().dropped, 90);
}

#[test]
fn failed_commits_are_retried_until_the_store_recovers() {
    let store = Arc::new(FakeStore::default());
    store.failures.store(5, Ordering::SeqCst);
    let metrics = Arc::new(Metrics::default());
    let sink = RecordSink::start(store.clone(), metrics.clone(), fast_config()).unwrap();
    for i in 0..10 {
        sink.submit(record(JAN_31 + i, "openai", "gpt-4o"));
    }
    assert!(wait_until(Duration::from_secs(5), || store.len() == 10));
    assert!(store.attempts.load(Ordering::SeqCst) >= 6);
    assert_eq!(metrics.store_write_errors(), 5);
    assert!(metrics
        .render()
        .contains("\naigw_store_write_errors_total 5\n"));
    // Metrics count records when the writer takes them, not when they commit: once each.
    assert!(metrics.render().contains(
        "aigw_requests_total{gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o\",\
         gen_ai_operation_name=\"chat\",status=\"2xx\"} 10\n"
    ));
    assert_eq!(sink.shutdown(Duration::from_secs(5)).stats.lost, 0);
}

#[test]
fn a_panicking_backend_does_not_kill_the_writer() {
    let store = Arc::new(FakeStore::default());
    store.panic_once.store(true, Ordering::SeqCst);
    let sink = RecordSink::start(store.clone(), Arc::default(), fast_config()).unwrap();
    sink.submit(record(JAN_31, "openai", "gpt-4o"));
    assert!(wait_until(Duration::from_secs(5), || store.len() == 1));
    sink.submit(record(JAN_31 + 1, "openai", "gpt-4o"));
    assert!(wait_until(Duration::from_secs(5), || store.len() == 2));
    sink.shutdown(Duration::from_secs(5));
}

#[test]
fn a_locked_database_does_not_block_submit_and_is_written_once_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(10),
    };
    let store = Arc::new(SqliteStore::open(&path, options).unwrap());
    let metrics = Arc::new(Metrics::default());
    let sink = RecordSink::start(store.clone(), metrics.clone(), fast_config()).unwrap();

    // Another process holds the write lock: every commit fails with SQLITE_BUSY.
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    for i in 0..100 {
        sink.submit(record(JAN_31 + i, "openai", "gpt-4o"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "submit blocked"
    );
    assert!(wait_until(Duration::from_secs(2), || metrics
        .store_write_errors()
        >= 2));
    assert_eq!(count(store.as_ref()), 0);
    assert_eq!(sink.stats().committed, 0);

    locker.execute_batch("COMMIT").unwrap();
    assert!(wait_until(Duration::from_secs(5), || count(store.as_ref()) == 100));
    let report = sink.shutdown(Duration::from_secs(5));
    assert_eq!((report.stats.committed, report.stats.lost), (100, 0));
}

#[test]
fn shutdown_gives_up_at_its_timeout_and_counts_the_loss() {
    let store = Arc::new(FakeStore::default());
    store.fail_forever.store(true, Ordering::SeqCst);
    let sink = RecordSink::start(store.clone(), Arc::default(), fast_config()).unwrap();
    for i in 0..20 {
        sink.submit(record(JAN_31 + i, "openai", "gpt-4o"));
    }
    let started = Instant::now();
    let report = sink.shutdown(Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!report.timed_out);
    assert_eq!((report.stats.committed, report.stats.lost), (0, 20));
}

#[test]
fn dropping_the_sink_still_commits_what_it_holds() {
    let store = Arc::new(FakeStore::default());
    let config = SinkConfig {
        batch_window: Duration::from_secs(60),
        ..SinkConfig::default()
    };
    let sink = RecordSink::start(store.clone(), Arc::default(), config).unwrap();
    let clone = sink.clone();
    for i in 0..10 {
        clone.submit(record(JAN_31 + i, "openai", "gpt-4o"));
    }
    drop(clone);
    drop(sink);
    assert!(wait_until(Duration::from_secs(5), || store.len() == 10));
}

#[test]
fn token_totals_add_up_without_reasoning() {
    let t = TokenTotals {
        input: 1,
        cache_read: 2,
        cache_write_5m: 3,
        cache_write_1h: 4,
        cache_write_30m: 5,
        cache_write_12h: 6,
        output: 7,
        reasoning: 100,
    };
    assert_eq!(t.total(), 28);
    let mut sum = UsageTotals::default();
    sum.add(&UsageTotals {
        requests: 2,
        unpriced_requests: 1,
        cost_nanousd: u64::MAX,
        tokens: t,
    });
    sum.add(&UsageTotals {
        cost_nanousd: 5,
        ..UsageTotals::default()
    });
    assert_eq!(sum.cost_nanousd, u64::MAX, "saturates");
    assert_eq!(sum.tokens.reasoning, 100);
}

/// A tool call of `tool` at `time_ms` (shared with the backends' tests).
pub(crate) fn tool_call(time_ms: i64, tool: &str) -> ToolCallRecord {
    ToolCallRecord {
        time_ms,
        route: "default".into(),
        server: "tickets".into(),
        tool: tool.into(),
        principal: "app".into(),
        user: Some("alice".into()),
        agent: None,
        status: crate::mcp::record::ToolCallStatus::ToolError,
        latency_ms: 12,
        request_bytes: 34,
        response_bytes: 56,
        error: Some("the tool said no".into()),
    }
}

/// Tool calls come back whole, newest first, within the range (every backend).
pub(crate) fn tool_calls_round_trip(store: &dyn UsageStore) {
    let calls = [
        tool_call(JAN_31, "a"),
        tool_call(JAN_31 + 1, "b"),
        tool_call(JAN_31 + 2, "c"),
    ];
    store.insert_tool_calls(&calls).unwrap();
    let all = TimeRange {
        from_ms: 0,
        to_ms: i64::MAX,
    };
    let got = store.tool_calls(all, 10).unwrap();
    assert_eq!(got, [calls[2].clone(), calls[1].clone(), calls[0].clone()]);
    let first = TimeRange {
        from_ms: JAN_31,
        to_ms: JAN_31 + 1,
    };
    assert_eq!(store.tool_calls(first, 10).unwrap(), [calls[0].clone()]);
    assert_eq!(store.tool_calls(all, 1).unwrap().len(), 1);
}

#[test]
fn tool_calls_go_through_the_sink() {
    let (_dir, store) = temp_store();
    let sink = RecordSink::start(store.clone(), Arc::default(), SinkConfig::default()).unwrap();
    sink.submit_tool_call(tool_call(JAN_31, "x"));
    sink.submit(record(JAN_31, "openai", "gpt-4o"));
    sink.shutdown(Duration::from_secs(5));
    let all = TimeRange {
        from_ms: 0,
        to_ms: i64::MAX,
    };
    assert_eq!(store.tool_calls(all, 10).unwrap(), [tool_call(JAN_31, "x")]);
    assert_eq!(count(store.as_ref()), 1);
}

fn log(time_ms: i64, request_id: &str, body_len: usize) -> RequestLog {
    RequestLog {
        time_ms,
        request_id: request_id.into(),
        provider: "openai".into(),
        request_body: "q".repeat(body_len),
        request_truncated: false,
        response_kind: crate::request_log::ResponseKind::Text,
        response_body: "a".repeat(body_len),
        response_truncated: body_len > 10,
    }
}

#[test]
fn request_logs_round_trip_filter_and_prune() {
    let (_dir, store) = temp_store();
    request_logs_behave(store.as_ref());
}

/// Shared with the other backends' tests: the Requests page's queries and retention.
pub(crate) fn request_logs_behave(store: &dyn UsageStore) {
    let mut failed = record(JAN_31 + 2, "anthropic", "claude");
    failed.status = 429;
    let records = [
        record(JAN_31, "openai", "gpt-4o"),
        record(JAN_31 + 1, "openai", "gpt-4o-mini"),
        failed,
    ];
    store.insert_batch(&records).unwrap();
    // Logs of 2 × 5, 2 × 10 and 2 × 20 bytes; the second and third requests are logged.
    let logs = [
        log(JAN_31 - 10, "req-old", 5),
        log(JAN_31 + 1, &records[1].request_id, 10),
        log(JAN_31 + 2, &records[2].request_id, 20),
    ];
    store.insert_request_logs(&logs).unwrap();

    let query = |filter: SeriesFilter, status: Option<StatusFilter>| {
        let rows = store
            .requests(&RequestQuery {
                range: TimeRange {
                    from_ms: JAN_31,
                    to_ms: JAN_31 + 10,
                },
                filter,
                status,
                limit: 10,
            })
            .unwrap();
        rows.into_iter()
            .map(|r| (r.record.request_id, r.logged))
            .collect::<Vec<_>>()
    };
    let id = |i: usize| records[i].request_id.clone();
    // Newest first, with the logged flag.
    assert_eq!(
        query(SeriesFilter::default(), None),
        [(id(2), true), (id(1), true), (id(0), false)]
    );
    let openai = SeriesFilter {
        provider: Some("openai".into()),
        ..Default::default()
    };
    assert_eq!(query(openai, None), [(id(1), true), (id(0), false)]);
    assert_eq!(
        query(SeriesFilter::default(), Some(StatusFilter::Error)),
        [(id(2), true)]
    );
    assert_eq!(
        query(SeriesFilter::default(), Some(StatusFilter::Class(2))).len(),
        2
    );
    assert_eq!(
        query(SeriesFilter::default(), Some(StatusFilter::Exact(429))),
        [(id(2), true)]
    );

    let (found, stored) = store.request(&records[2].request_id).unwrap();
    assert_eq!(found, [records[2].clone()]);
    assert_eq!(stored.as_ref(), Some(&logs[2]));
    assert_eq!(store.request("nope").unwrap(), (Vec::new(), None));

    // Age first: the log before JAN_31 goes. Then size: 40 + 20 bytes remain, at most 45
    // may stay, so the oldest (the 20-byte one) goes and exactly the newest stays.
    assert_eq!(store.prune_request_logs(JAN_31, u64::MAX).unwrap(), 1);
    assert!(store.request("req-old").unwrap().1.is_none());
    assert_eq!(store.prune_request_logs(JAN_31, 45).unwrap(), 1);
    assert!(store.request(&id(1)).unwrap().1.is_none());
    assert_eq!(store.request(&id(2)).unwrap().1.as_ref(), Some(&logs[2]));
    // Exactly at the limit: nothing more goes.
    assert_eq!(store.prune_request_logs(JAN_31, 40).unwrap(), 0);
    assert_eq!(store.prune_request_logs(JAN_31, 39).unwrap(), 1);
}

#[test]
fn latency_percentiles_are_nearest_rank() {
    let (_dir, store) = temp_store();
    latency_behaves(store.as_ref());
}

/// Shared with the other backends' tests: percentiles, errors and time to first token.
pub(crate) fn latency_behaves(store: &dyn UsageStore) {
    let mut records = Vec::new();
    // openai: latencies 1..=10 ms (p50 = 5, p90 = 9, p99 = 10); two of them errors (a 500,
    // an upstream failure), one client disconnect (not an error).
    for i in 1..=10u64 {
        let mut r = record(JAN_31 + i as i64, "openai", "gpt-4o");
        r.latency_ms = 11 - i;
        r.request_id = format!("o{i}");
        match i {
            3 => r.status = 500,
            4 => {
                r.status = 0;
                r.outcome = Outcome::UpstreamError;
            }
            5 => r.outcome = Outcome::ClientDisconnected,
            _ => {}
        }
        if i <= 4 {
            r.streamed = true;
            r.ttfb_ms = Some(i * 100);
        }
        records.push(r);
    }
    // anthropic, the next hour: one record.
    let mut a = record(JAN_31 + MS_PER_HOUR + 1, "anthropic", "claude");
    a.latency_ms = 42;
    records.push(a);
    store.insert_batch(&records).unwrap();

    let query = |granularity, group_by| SeriesQuery {
        range: TimeRange {
            from_ms: JAN_31,
            to_ms: JAN_31 + MS_PER_DAY,
        },
        granularity,
        group_by,
        filter: SeriesFilter::default(),
    };
    let totals = store
        .latency(&query(Granularity::Hour, GroupBy::Provider), true)
        .unwrap();
    assert_eq!(
        totals,
        [
            analytics::LatencyPoint {
                bucket_ms: None,
                key: Some("anthropic".into()),
                requests: 1,
                errors: 0,
                latency_ms: [42, 42, 42],
                streamed: 0,
                ttft_ms: None,
            },
            analytics::LatencyPoint {
                bucket_ms: None,
                key: Some("openai".into()),
                requests: 10,
                errors: 2,
                latency_ms: [5, 9, 10],
                // 100, 200, 300, 400: ranks 2, 4, 4.
                streamed: 4,
                ttft_ms: Some([200, 400, 400]),
            },
        ]
    );
    let hourly = store
        .latency(&query(Granularity::Hour, GroupBy::Model), false)
        .unwrap();
    let keys: Vec<_> = hourly
        .iter()
        .map(|p| (p.bucket_ms, p.key.as_deref(), p.requests))
        .collect();
    assert_eq!(
        keys,
        [
            (Some(JAN_31), Some("gpt-4o-2025-01-01"), 10),
            (Some(JAN_31 + MS_PER_HOUR), Some("claude-2025-01-01"), 1),
        ]
    );
    assert!(store
        .latency(&query(Granularity::Day, GroupBy::TokenType), true)
        .unwrap()
        .is_empty());
}

/// The cost of the Performance page's queries at scale (run by hand:
/// `cargo test --release -p aigw-ext-proc --lib latency_query_time -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement: 1 000 000 records, prints timings"]
fn latency_query_time_over_a_million_records() {
    let (_dir, store) = temp_store();
    let span = 90 * MS_PER_DAY;
    let providers = ["openai", "anthropic", "google", "bedrock", "local"];
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..1_000_000i64 {
        let mut r = record(
            JAN_31 - span + i * (span / 1_000_000),
            providers[(i % 5) as usize],
            "m",
        );
        r.latency_ms = (i * 7919 % 5000) as u64;
        r.streamed = i % 2 == 0;
        r.ttfb_ms = r.streamed.then_some((i * 104_729 % 900) as u64);
        batch.push(r);
        if batch.len() == 10_000 {
            store.insert_batch(&batch).unwrap();
            batch.clear();
        }
    }
    for (granularity, whole) in [
        (Granularity::Day, true),
        (Granularity::Day, false),
        (Granularity::Hour, false),
    ] {
        let q = SeriesQuery {
            range: TimeRange {
                from_ms: JAN_31 - span,
                to_ms: JAN_31,
            },
            granularity,
            group_by: GroupBy::Provider,
            filter: SeriesFilter::default(),
        };
        let started = Instant::now();
        let points = store.latency(&q, whole).unwrap();
        println!(
            "latency({granularity:?}, whole_range={whole}): {} points in {:?}",
            points.len(),
            started.elapsed()
        );
    }
}
