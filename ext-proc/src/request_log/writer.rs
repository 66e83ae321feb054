//! [`RequestLogWriter`]: request logs go from the request path to the store through a queue
//! bounded in bytes. `submit` never blocks: past `queue_bytes` the log is dropped and
//! counted. A writer thread (the store's calls block) redacts, then stores in batches; a
//! batch the store refuses is dropped and counted, not retried (logs are best effort, the
//! usage record is not: it has its own sink). The same thread runs the retention job.

use super::capture::Captured;
use super::redact::Redactor;
use super::RequestLog;
use crate::metrics::Metrics;
use crate::store::UsageStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Logs per store transaction, at most.
const BATCH_MAX: usize = 64;
/// How long the first log of a batch waits for more.
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// The channel's slot count; the real bound is `queue_bytes`.
const QUEUE_SLOTS: usize = 16_384;

/// One request's log as captured, with the rules it is to be redacted by (those of the
/// config the request ran under).
pub struct PendingLog {
    pub time_ms: i64,
    pub request_id: String,
    pub provider: String,
    pub captured: Captured,
    pub redactor: Arc<Redactor>,
}

impl PendingLog {
    fn bytes(&self) -> u64 {
        (self.captured.request_body.len() + self.captured.response_body.len()) as u64
    }
}

/// How long logs are kept, as of the live config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age_ms: i64,
    pub max_total_bytes: u64,
    pub interval: Duration,
    pub queue_bytes: u64,
}

impl Retention {
    pub fn of(c: &aigw_core::RequestLogConfig) -> Self {
        Self {
            max_age_ms: i64::try_from(c.max_age_hours.saturating_mul(3_600_000))
                .unwrap_or(i64::MAX),
            max_total_bytes: c.max_total_bytes,
            interval: Duration::from_secs(c.retention_interval_secs),
            queue_bytes: c.queue_bytes,
        }
    }
}

#[derive(Clone)]
pub struct RequestLogWriter {
    inner: Arc<Inner>,
}

struct Inner {
    tx: SyncSender<PendingLog>,
    queued_bytes: Arc<AtomicU64>,
    /// `queue_bytes`, apart from the rest so `submit` takes no lock.
    queue_limit: AtomicU64,
    retention: Arc<Mutex<Retention>>,
    metrics: Arc<Metrics>,
}

impl RequestLogWriter {
    /// Starts the writer thread; it ends when every clone of the writer is dropped.
    pub fn start(
        store: Arc<dyn UsageStore>,
        metrics: Arc<Metrics>,
        retention: Retention,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_SLOTS);
        let limit = retention.queue_bytes;
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let retention = Arc::new(Mutex::new(retention));
        let worker = Worker {
            store,
            metrics: Arc::clone(&metrics),
            queued_bytes: Arc::clone(&queued_bytes),
            retention: Arc::clone(&retention),
        };
        std::thread::Builder::new()
            .name("aigw-request-logs".into())
            .spawn(move || worker.run(rx))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                queued_bytes,
                queue_limit: AtomicU64::new(limit),
                retention,
                metrics,
            }),
        })
    }

    /// Queues a log; drops it (counted) when the queue is full. Never blocks.
    pub fn submit(&self, log: PendingLog) {
        let size = log.bytes();
        let limit = self.inner.queue_limit.load(Ordering::Relaxed);
        let queued = &self.inner.queued_bytes;
        let admitted = queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q.saturating_add(size) <= limit).then_some(q + size)
            })
            .is_ok();
        if !admitted {
            self.dropped_full();
            return;
        }
        match self.inner.tx.try_send(log) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                queued.fetch_sub(size, Ordering::AcqRel);
                self.dropped_full();
            }
        }
    }

    /// A reloaded config's retention applies from the writer's next round.
    pub fn set_retention(&self, r: Retention) {
        self.inner
            .queue_limit
            .store(r.queue_bytes, Ordering::Relaxed);
        *self
            .inner
            .retention
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = r;
    }

    fn dropped_full(&self) {
        self.inner
            .metrics
            .request_logs_dropped_queue_full
            .fetch_add(1, Ordering::Relaxed);
    }
}

struct Worker {
    store: Arc<dyn UsageStore>,
    metrics: Arc<Metrics>,
    queued_bytes: Arc<AtomicU64>,
    retention: Arc<Mutex<Retention>>,
}

impl Worker {
    fn run(self, rx: Receiver<PendingLog>) {
        let mut batch: Vec<RequestLog> = Vec::with_capacity(BATCH_MAX);
        let mut next_prune = Instant::now();
        loop {
            let retention = *self
                .retention
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if Instant::now() >= next_prune {
                self.prune(retention);
                next_prune = Instant::now() + retention.interval;
            }
            let wait = if batch.is_empty() {
                next_prune.saturating_duration_since(Instant::now())
            } else {
                BATCH_WINDOW
            };
            match rx.recv_timeout(wait) {
                Ok(p) => {
                    batch.push(self.redact(p));
                    while batch.len() < BATCH_MAX {
                        match rx.try_recv() {
                            Ok(p) => batch.push(self.redact(p)),
                            Err(_) => break,
                        }
                    }
                    if batch.len() >= BATCH_MAX {
                        self.store(&mut batch);
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.store(&mut batch),
                Err(RecvTimeoutError::Disconnected) => {
                    self.store(&mut batch);
                    return;
                }
            }
        }
    }

    fn redact(&self, p: PendingLog) -> RequestLog {
        self.queued_bytes.fetch_sub(p.bytes(), Ordering::AcqRel);
        let c = p.captured;
        let r = &p.redactor;
        let response_body = match c.response_kind {
            super::ResponseKind::Body => r.body(c.response_body, c.response_truncated),
            super::ResponseKind::Text => r.text(c.response_body),
        };
        RequestLog {
            time_ms: p.time_ms,
            request_id: p.request_id,
            provider: p.provider,
            request_body: r.body(c.request_body, c.request_truncated),
            request_truncated: c.request_truncated,
            response_kind: c.response_kind,
            response_body,
            response_truncated: c.response_truncated,
        }
    }

    fn store(&self, batch: &mut Vec<RequestLog>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        match self.store.insert_request_logs(batch) {
            Ok(()) => self
                .metrics
                .request_logs_stored
                .fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, logs = n, "request logs not stored; dropped");
                self.metrics
                    .request_logs_dropped_store_error
                    .fetch_add(n, Ordering::Relaxed)
            }
        };
        batch.clear();
    }

    fn prune(&self, r: Retention) {
        let before = now_ms().saturating_sub(r.max_age_ms);
        match self.store.prune_request_logs(before, r.max_total_bytes) {
            Ok(n) => {
                self.metrics
                    .request_logs_deleted
                    .fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "request-log retention failed; retried next round")
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
