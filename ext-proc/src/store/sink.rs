//! [`RecordSink`]: the request path's only way into the store.
//!
//! `submit` is a `try_send` on a bounded channel: it never blocks and never fails the
//! request; a full queue drops the record and counts it (`aigw_records_dropped_total`).
//! One writer thread (a plain OS thread: the store's calls block) takes records off the
//! channel, updates [`Metrics`], and commits them in batches of up to `batch_max`, at the
//! latest `batch_window` after the oldest arrived. While the store fails it keeps up to
//! `retry_capacity` records and retries with exponential backoff; past that the channel
//! fills and new records are dropped, so memory stays bounded. [`RecordSink::shutdown`]
//! drains both and commits before returning, within its timeout.

use super::UsageStore;
use crate::mcp::record::ToolCallRecord;
use crate::metrics::Metrics;
use crate::record::UsageRecord;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Told when a record is committed.
type Ack = tokio::sync::oneshot::Sender<()>;

#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Records waiting for the writer; when full, `submit` drops.
    pub queue_capacity: usize,
    /// Records per transaction, at most.
    pub batch_max: usize,
    /// How long the oldest record waits for its batch to fill.
    pub batch_window: Duration,
    /// Records the writer keeps while the store fails (on top of the queue).
    pub retry_capacity: usize,
    /// First retry delay after a failed commit; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// When the sink is dropped without [`RecordSink::shutdown`], how long the writer
    /// keeps trying to commit what it holds.
    pub drop_drain_timeout: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            batch_max: 256,
            batch_window: Duration::from_millis(20),
            retry_capacity: 50_000,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            drop_drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Counts since the sink started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Taken by `submit`.
    pub accepted: u64,
    /// Committed to the store.
    pub committed: u64,
    /// Refused by `submit` (queue full, or the sink shut down).
    pub dropped: u64,
    /// Accepted but given up at shutdown because the store did not take them in time.
    pub lost: u64,
}

/// What [`RecordSink::shutdown`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    pub stats: SinkStats,
    /// The writer was still busy at the timeout (the store hung); `stats.lost` may then be
    /// short of the truth.
    pub timed_out: bool,
}

/// Cheap to clone: every clone feeds the same writer.
#[derive(Clone)]
pub struct RecordSink {
    inner: Arc<Inner>,
}

struct Inner {
    tx: SyncSender<Message>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    worker: Mutex<Option<Worker>>,
}

struct Worker {
    thread: JoinHandle<()>,
    /// Disconnects when the writer returns.
    done: Receiver<()>,
}

enum Message {
    /// With a sender when the submitter waits for the commit.
    Record(Box<UsageRecord>, Option<Ack>),
    ToolCall(Box<ToolCallRecord>),
    /// Wakes an idle writer so it sees the shutdown at once.
    Wake,
}

#[derive(Default)]
struct Shared {
    /// Set by `shutdown`: drain until then.
    deadline: Mutex<Option<Instant>>,
    accepted: AtomicU64,
    committed: AtomicU64,
    lost: AtomicU64,
}

impl Shared {
    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RecordSink {
    /// Starts the writer thread.
    pub fn start(
        store: Arc<dyn UsageStore>,
        metrics: Arc<Metrics>,
        config: SinkConfig,
    ) -> std::io::Result<Self> {
        let config = SinkConfig {
            queue_capacity: config.queue_capacity.max(1),
            batch_max: config.batch_max.max(1),
            retry_capacity: config.retry_capacity.max(config.batch_max.max(1)),
            ..config
        };
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let (done_tx, done) = mpsc::sync_channel(0);
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            rx,
            store,
            metrics: Arc::clone(&metrics),
            shared: Arc::clone(&shared),
            backoff: config.retry_min,
            config,
            pending: VecDeque::new(),
            acks: VecDeque::new(),
            tool_calls: VecDeque::new(),
            urgent: false,
            oldest_at: None,
            retry_at: None,
            failures: 0,
            last_error_log: None,
            queue_empty: true,
            disconnected_at: None,
        };
        let thread = std::thread::Builder::new()
            .name("aigw-usage-writer".into())
            .spawn(move || {
                writer.run();
                drop(done_tx);
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                shared,
                metrics,
                worker: Mutex::new(Some(Worker { thread, done })),
            }),
        })
    }

    /// Queues the record for the writer. Never blocks: when the queue is full (or the sink
    /// has shut down) the record is dropped and counted.
    pub fn submit(&self, record: UsageRecord) {
        self.send(record, None);
    }

    /// [`submit`](Self::submit), and a receiver that fires once the record is committed
    /// (it is written at once, without waiting for a batch to fill). `None`: dropped.
    pub fn submit_committed(
        &self,
        record: UsageRecord,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(record, Some(tx)).then_some(rx)
    }

    /// Queues an MCP tool call's record, like [`submit`](Self::submit).
    pub fn submit_tool_call(&self, record: ToolCallRecord) {
        self.send_message(Message::ToolCall(Box::new(record)));
    }

    fn send(&self, record: UsageRecord, ack: Option<Ack>) -> bool {
        self.send_message(Message::Record(Box::new(record), ack))
    }

    fn send_message(&self, message: Message) -> bool {
        match self.inner.tx.try_send(message) {
            Ok(()) => {
                self.inner.shared.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.metrics.record_dropped();
                false
            }
        }
    }

    pub fn stats(&self) -> SinkStats {
        let shared = &self.inner.shared;
        SinkStats {
            accepted: shared.accepted.load(Ordering::Relaxed),
            committed: shared.committed.load(Ordering::Relaxed),
            dropped: self.inner.metrics.records_dropped(),
            lost: shared.lost.load(Ordering::Relaxed),
        }
    }

    /// Commits everything submitted so far, waiting at most `timeout`, then stops the
    /// writer. Call it once the gRPC server has stopped (no more submits): a record
    /// submitted after the writer's last look at the queue is dropped. Later calls return
    /// at once.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let worker = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(worker) = worker else {
            return ShutdownReport {
                stats: self.stats(),
                timed_out: false,
            };
        };
        *self
            .inner
            .shared
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + timeout);
        // A full queue means the writer is busy, so it needs no waking.
        let _ = self.inner.tx.try_send(Message::Wake);
        // The writer gives up at the deadline; the grace covers one store call in flight.
        let timed_out = match worker.done.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = worker.thread.join();
                false
            }
            Err(RecvTimeoutError::Timeout) => true,
        };
        let stats = self.stats();
        if stats.lost > 0 || timed_out {
            tracing::error!(
                lost = stats.lost,
                timed_out,
                "usage store did not take every record before shutdown"
            );
        }
        ShutdownReport { stats, timed_out }
    }
}

struct Writer {
    rx: Receiver<Message>,
    store: Arc<dyn UsageStore>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    config: SinkConfig,
    /// Received, not yet committed, oldest first.
    pending: VecDeque<UsageRecord>,
    /// The waiting submitters of `pending`'s records, in the same order.
    acks: VecDeque<Option<Ack>>,
    /// Tool-call records received, not yet committed (their own table, own transaction).
    tool_calls: VecDeque<ToolCallRecord>,
    /// A pending record's submitter waits: write without waiting for the batch window.
    urgent: bool,
    /// When the oldest pending record arrived: its batch closes `batch_window` later.
    oldest_at: Option<Instant>,
    /// Set after a failed commit: no attempt before then.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Consecutive failed commits.
    failures: u64,
    last_error_log: Option<Instant>,
    /// The last receive found the channel empty.
    queue_empty: bool,
    /// Every sender is gone (the sink was dropped without `shutdown`).
    disconnected_at: Option<Instant>,
}

/// How long an idle writer sleeps between looks (a record or a shutdown wakes it sooner).
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// While the store is down, one log line per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

impl Writer {
    fn run(mut self) {
        loop {
            let deadline = self.deadline();
            let closing = deadline.is_some();
            self.receive(self.wait(closing, deadline));
            let now = Instant::now();
            if self.should_write(now, closing) {
                self.write_batch(now);
            }
            self.metrics
                .set_store_pending(self.pending.len() + self.tool_calls.len());
            if closing && self.pending_len() == 0 && self.queue_empty {
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.give_up();
                return;
            }
        }
    }

    /// The shutdown deadline, or the drop deadline once every sender is gone.
    fn deadline(&self) -> Option<Instant> {
        self.shared.deadline().or_else(|| {
            self.disconnected_at
                .map(|at| at + self.config.drop_drain_timeout)
        })
    }

    /// How long the next receive may wait for a record.
    fn wait(&self, closing: bool, deadline: Option<Instant>) -> Duration {
        let now = Instant::now();
        let until = |at: Instant| at.saturating_duration_since(now);
        let wait = if let Some(retry_at) = self.retry_at {
            until(retry_at)
        } else if closing || self.urgent || self.pending_len() >= self.config.batch_max {
            Duration::ZERO
        } else if let Some(oldest) = self.oldest_at {
            until(oldest + self.config.batch_window)
        } else {
            IDLE_WAIT
        };
        match deadline {
            Some(d) => wait.min(until(d)),
            None => wait,
        }
    }

    /// Moves what the channel holds into `pending` (waiting up to `wait` for the first),
    /// and counts it into the metrics.
    fn receive(&mut self, wait: Duration) {
        let room = self
            .config
            .retry_capacity
            .saturating_sub(self.pending_len());
        if self.disconnected_at.is_some() {
            // Nothing can arrive any more; a receive would return at once, so sleep instead
            // of spinning until the retry.
            self.queue_empty = true;
            std::thread::sleep(wait);
            return;
        }
        if room == 0 {
            // Holding all it may: leave new records in the channel (which then fills and
            // drops), and just wait for the retry.
            self.queue_empty = false;
            std::thread::sleep(wait);
            return;
        }
        let mut received = Vec::new();
        let mut tool_calls = 0;
        let mut next = if wait.is_zero() {
            try_recv(&self.rx)
        } else {
            self.rx.recv_timeout(wait)
        };
        loop {
            match next {
                Ok(Message::Record(record, ack)) => {
                    self.urgent |= ack.is_some();
                    received.push(*record);
                    self.acks.push_back(ack);
                }
                Ok(Message::ToolCall(record)) => {
                    self.tool_calls.push_back(*record);
                    tool_calls += 1;
                }
                Ok(Message::Wake) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.queue_empty = true;
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.queue_empty = true;
                    self.disconnected_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
            if received.len() + tool_calls >= room {
                self.queue_empty = false;
                break;
            }
            next = try_recv(&self.rx);
        }
        if received.is_empty() && tool_calls == 0 {
            return;
        }
        self.metrics.observe(&received);
        self.oldest_at.get_or_insert_with(Instant::now);
        self.pending.extend(received);
    }

    fn pending_len(&self) -> usize {
        self.pending.len() + self.tool_calls.len()
    }

    fn should_write(&self, now: Instant, closing: bool) -> bool {
        if self.pending_len() == 0 || self.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        closing
            || self.urgent
            || self.pending_len() >= self.config.batch_max
            || self
                .oldest_at
                .is_none_or(|oldest| now >= oldest + self.config.batch_window)
    }

    /// Commits the oldest `batch_max` pending records; on failure keeps them and schedules
    /// a retry.
    fn write_batch(&mut self, now: Instant) {
        // Tool calls: their own table and transaction; kept for the retry on failure.
        let t = self.tool_calls.len().min(self.config.batch_max);
        let tool_result = if t == 0 {
            Ok(())
        } else {
            let batch = &self.tool_calls.make_contiguous()[..t];
            catch_unwind(AssertUnwindSafe(|| self.store.insert_tool_calls(batch)))
                .unwrap_or_else(|_| Err(super::StoreError::Corrupt("the backend panicked".into())))
        };
        if tool_result.is_ok() {
            self.tool_calls.drain(..t);
            self.shared.committed.fetch_add(t as u64, Ordering::Relaxed);
        }
        let n = self.pending.len().min(self.config.batch_max);
        let batch = &self.pending.make_contiguous()[..n];
        // A backend that panics is treated as one that failed: the writer must outlive it.
        let result = match tool_result {
            Err(e) => Err(e),
            Ok(()) if n == 0 => Ok(()),
            Ok(()) => catch_unwind(AssertUnwindSafe(|| self.store.insert_batch(batch)))
                .unwrap_or_else(|_| Err(super::StoreError::Corrupt("the backend panicked".into()))),
        };
        match result {
            Ok(()) => {
                self.pending.drain(..n);
                for ack in self.acks.drain(..n).flatten() {
                    let _ = ack.send(());
                }
                self.urgent = self.acks.iter().any(Option::is_some);
                self.shared.committed.fetch_add(n as u64, Ordering::Relaxed);
                if self.failures > 0 {
                    tracing::info!(
                        backend = self.store.backend(),
                        failed_attempts = self.failures,
                        "usage store writes work again"
                    );
                }
                self.failures = 0;
                self.retry_at = None;
                self.backoff = self.config.retry_min;
                if self.pending_len() == 0 {
                    self.oldest_at = None;
                }
            }
            Err(e) => {
                self.failures += 1;
                self.metrics.store_write_failed();
                if self
                    .last_error_log
                    .is_none_or(|at| now.duration_since(at) >= ERROR_LOG_INTERVAL)
                {
                    self.last_error_log = Some(now);
                    tracing::warn!(
                        backend = self.store.backend(),
                        error = %e,
                        pending = self.pending.len(),
                        failed_attempts = self.failures,
                        retry_in_ms = self.backoff.as_millis() as u64,
                        "usage store write failed; records kept for retry"
                    );
                }
                self.retry_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(self.config.retry_max);
            }
        }
    }

    /// The deadline passed with records still uncommitted: count them as lost.
    fn give_up(&mut self) {
        let mut lost = self.pending_len() as u64;
        self.pending.clear();
        self.tool_calls.clear();
        self.acks.clear();
        while let Ok(message) = self.rx.try_recv() {
            if let Message::Record(..) | Message::ToolCall(_) = message {
                lost += 1;
            }
        }
        self.shared.lost.fetch_add(lost, Ordering::Relaxed);
        self.metrics.set_store_pending(0);
    }
}

/// `try_recv`'s answer in `recv_timeout`'s terms: empty now is a timeout of zero.
fn try_recv(rx: &Receiver<Message>) -> Result<Message, RecvTimeoutError> {
    rx.try_recv().map_err(|e| match e {
        TryRecvError::Empty => RecvTimeoutError::Timeout,
        TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
    })
}
