//! Prometheus metrics, named after the OpenTelemetry GenAI semantic conventions
//! (`gen_ai.client.token.usage` → `gen_ai_client_token_usage`, dots to underscores, the
//! unit as a suffix), plus the gateway's own `aigw_*` counters.
//!
//! Only the store's writer thread updates the per-request series
//! ([`Metrics::observe`], one lock per batch); the request path touches nothing but an
//! atomic when a record is dropped. [`Metrics::render`] writes the text exposition format
//! (version 0.0.4).
//!
//! # Families and labels
//! | family | type | labels |
//! | --- | --- | --- |
//! | `gen_ai_client_token_usage` | histogram, tokens | provider, model, operation, `gen_ai_token_type` |
//! | `gen_ai_client_operation_duration_seconds` | histogram | provider, model, operation, `status` |
//! | `gen_ai_server_time_to_first_token_seconds` | histogram, streamed only | provider, model, operation |
//! | `aigw_requests_total` | counter | provider, model, operation, `status` |
//! | `aigw_cost_nanousd_total` | counter, nano-USD | provider, model, operation |
//! | `aigw_unpriced_requests_total` | counter | provider, model, operation |
//! | `aigw_records_dropped_total` | counter | none |
//! | `aigw_store_write_errors_total` | counter | none |
//! | `aigw_store_pending_records` | gauge | none |
//! | `aigw_shared_state_errors_total` | counter | none |
//! | `aigw_config_reloads_total` | counter | none |
//! | `aigw_config_reload_failures_total` | counter | none |
//! | `aigw_config_file_refused` | gauge: 1 while the config file's content is refused | none |
//! | `aigw_request_logs_stored_total` | counter | none |
//! | `aigw_request_logs_dropped_total` | counter | `reason`: `queue_full`, `store_error` |
//! | `aigw_request_logs_deleted_total` | counter: removed by retention | none |
//!
//! - `gen_ai_provider_name`: the provider's configured name.
//! - `gen_ai_request_model`: the requested model, else the answered one, else `unknown`;
//!   at most [`DEFAULT_MODELS_PER_PROVIDER`] distinct values per provider (then `other`),
//!   each cut to [`MAX_LABEL_CHARS`].
//! - `gen_ai_operation_name`: see [`operation_name`].
//! - `gen_ai_token_type`: `input` (every prompt token: plain, cache reads, cache writes) or
//!   `output` (reasoning included); only for records whose provider reported usage.
//! - `status`: the upstream status class `1xx`…`5xx`, with `429` apart from `4xx` (rate
//!   limits are the 4xx an operator alerts on), `none` when no response arrived, `other`
//!   for a status outside 100–599.
//!
//! Buckets are the ones the GenAI conventions recommend for each instrument.

use crate::record::UsageRecord;
use crate::usage::{self, ApiFormat};
use aigw_core::ProviderKind;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Distinct `gen_ai_request_model` values kept per provider before `other`.
pub const DEFAULT_MODELS_PER_PROVIDER: usize = 100;
/// Longer label values (a client can send any model name) are cut.
pub const MAX_LABEL_CHARS: usize = 128;

/// `gen_ai.client.token.usage`, tokens.
const TOKEN_BOUNDS: &[u64] = &[
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];
/// `gen_ai.client.operation.duration`, in milliseconds (0.01 s … 81.92 s).
const DURATION_BOUNDS_MS: &[u64] = &[
    10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920,
];
/// `gen_ai.server.time_to_first_token`, in milliseconds (0.001 s … 10 s).
const TTFT_BOUNDS_MS: &[u64] = &[
    1, 5, 10, 20, 40, 60, 80, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
];

pub struct Metrics {
    records_dropped: AtomicU64,
    store_write_errors: AtomicU64,
    store_pending: AtomicU64,
    shared_state_errors: AtomicU64,
    config_reloads: AtomicU64,
    config_reload_failures: AtomicU64,
    config_file_refused: AtomicU64,
    /// Request logs: stored, dropped (queue full; store failed), deleted by retention.
    pub request_logs_stored: AtomicU64,
    pub request_logs_dropped_queue_full: AtomicU64,
    pub request_logs_dropped_store_error: AtomicU64,
    pub request_logs_deleted: AtomicU64,
    models_per_provider: usize,
    series: Mutex<Series>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(DEFAULT_MODELS_PER_PROVIDER)
    }
}

#[derive(Default)]
struct Series {
    by_request: BTreeMap<RequestLabels, RequestSeries>,
    /// The model label values admitted so far, per provider.
    models: HashMap<String, HashSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RequestLabels {
    provider: String,
    model: String,
    operation: &'static str,
}

struct RequestSeries {
    input_tokens: Histogram,
    output_tokens: Histogram,
    time_to_first_token: Histogram,
    cost_nanousd: u64,
    unpriced: u64,
    by_status: BTreeMap<&'static str, StatusSeries>,
}

struct StatusSeries {
    requests: u64,
    duration: Histogram,
}

/// Per-bucket (not cumulative) counts over integer bounds; the last slot is `+Inf`.
struct Histogram {
    bounds: &'static [u64],
    counts: Vec<u64>,
    sum: u64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0,
            count: 0,
        }
    }

    fn observe(&mut self, value: u64) {
        let slot = self.bounds.partition_point(|&b| b < value);
        self.counts[slot] += 1;
        self.sum = self.sum.saturating_add(value);
        self.count += 1;
    }
}

impl RequestSeries {
    fn new() -> Self {
        Self {
            input_tokens: Histogram::new(TOKEN_BOUNDS),
            output_tokens: Histogram::new(TOKEN_BOUNDS),
            time_to_first_token: Histogram::new(TTFT_BOUNDS_MS),
            cost_nanousd: 0,
            unpriced: 0,
            by_status: BTreeMap::new(),
        }
    }
}

impl Metrics {
    pub fn new(models_per_provider: usize) -> Self {
        Self {
            records_dropped: AtomicU64::new(0),
            store_write_errors: AtomicU64::new(0),
            store_pending: AtomicU64::new(0),
            shared_state_errors: AtomicU64::new(0),
            config_reloads: AtomicU64::new(0),
            config_reload_failures: AtomicU64::new(0),
            config_file_refused: AtomicU64::new(0),
            request_logs_stored: AtomicU64::new(0),
            request_logs_dropped_queue_full: AtomicU64::new(0),
            request_logs_dropped_store_error: AtomicU64::new(0),
            request_logs_deleted: AtomicU64::new(0),
            models_per_provider,
            series: Mutex::new(Series::default()),
        }
    }

    /// Counts the records into every per-request family. Called by the store's writer.
    pub fn observe(&self, records: &[UsageRecord]) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let Series { by_request, models } = &mut *series;
        for r in records {
            let labels = RequestLabels {
                model: model_label(models, self.models_per_provider, r),
                provider: truncate(&r.provider),
                operation: operation_name(&r.provider_type, &r.api_path),
            };
            let s = by_request.entry(labels).or_insert_with(RequestSeries::new);
            if r.usage_reported {
                s.input_tokens.observe(r.usage.prompt_tokens());
                s.output_tokens.observe(r.usage.output);
            }
            if r.streamed {
                if let Some(ttfb) = r.ttfb_ms {
                    s.time_to_first_token.observe(ttfb);
                }
            }
            match r.cost_nanousd {
                Some(cost) => s.cost_nanousd = s.cost_nanousd.saturating_add(cost),
                None => s.unpriced += 1,
            }
            let by_status = s
                .by_status
                .entry(status_label(r.status))
                .or_insert_with(|| StatusSeries {
                    requests: 0,
                    duration: Histogram::new(DURATION_BOUNDS_MS),
                });
            by_status.requests += 1;
            by_status.duration.observe(r.latency_ms);
        }
    }

    /// A record refused by the sink's full queue. Lock-free: called on the request path.
    pub fn record_dropped(&self) {
        self.records_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn records_dropped(&self) -> u64 {
        self.records_dropped.load(Ordering::Relaxed)
    }

    pub fn store_write_errors(&self) -> u64 {
        self.store_write_errors.load(Ordering::Relaxed)
    }

    pub fn store_write_failed(&self) {
        self.store_write_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A budget or limit decision PostgreSQL or Redis did not answer. Lock-free.
    pub fn shared_state_failed(&self) {
        self.shared_state_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A new config was applied.
    pub fn config_applied(&self) {
        self.config_reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// A new config was refused (the old one stays).
    pub fn config_refused(&self) {
        self.config_reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the config file's current content is refused.
    pub fn set_config_file_refused(&self, refused: bool) {
        self.config_file_refused
            .store(u64::from(refused), Ordering::Relaxed);
    }

    /// Records the writer holds, received but not yet committed.
    pub fn set_store_pending(&self, records: usize) {
        self.store_pending.store(records as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        {
            let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            render_requests(&mut out, &series.by_request);
        }
        for (name, kind, help, value) in [
            (
                "aigw_records_dropped_total",
                "counter",
                "Usage records dropped because the store's queue was full.",
                self.records_dropped(),
            ),
            (
                "aigw_store_write_errors_total",
                "counter",
                "Failed usage store commits (the records are kept and retried).",
                self.store_write_errors(),
            ),
            (
                "aigw_store_pending_records",
                "gauge",
                "Usage records received by the store's writer and not yet committed.",
                self.store_pending.load(Ordering::Relaxed),
            ),
            (
                "aigw_shared_state_errors_total",
                "counter",
                "Budget and rate-limit decisions PostgreSQL or Redis did not answer.",
                self.shared_state_errors.load(Ordering::Relaxed),
            ),
            (
                "aigw_config_reloads_total",
                "counter",
                "New configs applied without a restart.",
                self.config_reloads.load(Ordering::Relaxed),
            ),
            (
                "aigw_config_reload_failures_total",
                "counter",
                "New configs refused (the previous config stayed live).",
                self.config_reload_failures.load(Ordering::Relaxed),
            ),
            (
                "aigw_config_file_refused",
                "gauge",
                "1 while the config file holds a config that was refused.",
                self.config_file_refused.load(Ordering::Relaxed),
            ),
            (
                "aigw_request_logs_stored_total",
                "counter",
                "Request logs (bodies) stored.",
                self.request_logs_stored.load(Ordering::Relaxed),
            ),
            (
                "aigw_request_logs_deleted_total",
                "counter",
                "Request logs deleted by retention (age or total size).",
                self.request_logs_deleted.load(Ordering::Relaxed),
            ),
        ] {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        let name = "aigw_request_logs_dropped_total";
        header(
            &mut out,
            name,
            "counter",
            "Request logs not stored: the log queue was full, or the store failed.",
        );
        for (reason, n) in [
            ("queue_full", &self.request_logs_dropped_queue_full),
            ("store_error", &self.request_logs_dropped_store_error),
        ] {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{reason}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn render_requests(out: &mut String, by_request: &BTreeMap<RequestLabels, RequestSeries>) {
    let base = |l: &RequestLabels| {
        format!(
            "gen_ai_provider_name=\"{}\",gen_ai_request_model=\"{}\",gen_ai_operation_name=\"{}\"",
            escape(&l.provider),
            escape(&l.model),
            l.operation
        )
    };

    header(
        out,
        "gen_ai_client_token_usage",
        "histogram",
        "Tokens used per request, by token type (input or output).",
    );
    for (l, s) in by_request {
        let labels = base(l);
        for (token_type, h) in [("input", &s.input_tokens), ("output", &s.output_tokens)] {
            if h.count > 0 {
                let labels = format!("{labels},gen_ai_token_type=\"{token_type}\"");
                histogram(out, "gen_ai_client_token_usage", &labels, h, Unit::Count);
            }
        }
    }

    header(
        out,
        "gen_ai_client_operation_duration_seconds",
        "histogram",
        "Time from the request's start to the response's end.",
    );
    for (l, s) in by_request {
        let labels = base(l);
        for (status, ss) in &s.by_status {
            let labels = format!("{labels},status=\"{status}\"");
            histogram(
                out,
                "gen_ai_client_operation_duration_seconds",
                &labels,
                &ss.duration,
                Unit::Milliseconds,
            );
        }
    }

    header(
        out,
        "gen_ai_server_time_to_first_token_seconds",
        "histogram",
        "Time from the request's start to the first response byte, streamed responses only.",
    );
    for (l, s) in by_request {
        if s.time_to_first_token.count > 0 {
            histogram(
                out,
                "gen_ai_server_time_to_first_token_seconds",
                &base(l),
                &s.time_to_first_token,
                Unit::Milliseconds,
            );
        }
    }

    header(
        out,
        "aigw_requests_total",
        "counter",
        "Requests that reached a provider, by upstream status.",
    );
    for (l, s) in by_request {
        let labels = base(l);
        for (status, ss) in &s.by_status {
            let _ = writeln!(
                out,
                "aigw_requests_total{{{labels},status=\"{status}\"}} {}",
                ss.requests
            );
        }
    }

    header(
        out,
        "aigw_cost_nanousd_total",
        "counter",
        "Spend of priced requests, in nano-USD (1e-9 USD).",
    );
    for (l, s) in by_request {
        let _ = writeln!(
            out,
            "aigw_cost_nanousd_total{{{}}} {}",
            base(l),
            s.cost_nanousd
        );
    }

    header(
        out,
        "aigw_unpriced_requests_total",
        "counter",
        "Requests whose model has no price, so their cost is unknown.",
    );
    for (l, s) in by_request {
        let _ = writeln!(
            out,
            "aigw_unpriced_requests_total{{{}}} {}",
            base(l),
            s.unpriced
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[derive(Clone, Copy)]
enum Unit {
    Count,
    /// Observed in milliseconds, exposed in seconds.
    Milliseconds,
}

impl Unit {
    fn format(self, value: u64) -> String {
        match self {
            Unit::Count => value.to_string(),
            Unit::Milliseconds => {
                let (s, ms) = (value / 1000, value % 1000);
                if ms == 0 {
                    s.to_string()
                } else {
                    format!("{s}.{ms:03}").trim_end_matches('0').to_string()
                }
            }
        }
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram, unit: Unit) {
    let mut cumulative = 0;
    for (bound, count) in h.bounds.iter().zip(&h.counts) {
        cumulative += count;
        let le = unit.format(*bound);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", unit.format(h.sum));
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// Label values escape `\`, `"` and newlines (exposition format).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn truncate(value: &str) -> String {
    value.chars().take(MAX_LABEL_CHARS).collect()
}

fn model_label(
    models: &mut HashMap<String, HashSet<String>>,
    cap: usize,
    r: &UsageRecord,
) -> String {
    let model = r
        .model_requested
        .as_deref()
        .or(r.model_answered.as_deref())
        .filter(|m| !m.is_empty())
        .map_or_else(|| "unknown".to_string(), truncate);
    let seen = models.entry(r.provider.clone()).or_default();
    if seen.contains(&model) {
        return model;
    }
    if seen.len() >= cap {
        return "other".to_string();
    }
    seen.insert(model.clone());
    model
}

fn status_label(status: u16) -> &'static str {
    match status {
        0 => "none",
        429 => "429",
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// `gen_ai_operation_name` from the provider type and upstream path, through the same
/// detection that picks the usage parser ([`usage::detect`]):
///
/// | API | operation |
/// | --- | --- |
/// | OpenAI `…/chat/completions`, `…/responses`; Anthropic `…/messages`; Bedrock `converse`, `converse-stream` | `chat` |
/// | OpenAI `…/completions` (legacy) | `text_completion` |
/// | OpenAI `…/embeddings`; Gemini `:embedContent`, `:batchEmbedContents` | `embeddings` |
/// | Gemini `:generateContent`, `:streamGenerateContent` | `generate_content` |
/// | Bedrock `invoke`, `invoke-with-response-stream` (the body's shape is the model's own) | `invoke_model` |
/// | Anthropic `…/messages/count_tokens`; Gemini `:countTokens`; Bedrock `count-tokens` | `count_tokens` |
/// | anything else | `other` |
///
/// The first six are OpenTelemetry's well-known values; `invoke_model` and `count_tokens`
/// are ours, as the conventions allow for operations they do not name.
pub fn operation_name(provider_type: &str, api_path: &str) -> &'static str {
    let Some(kind) = ProviderKind::parse(provider_type) else {
        return "other";
    };
    let Some(format) = usage::detect(kind, "POST", api_path, None) else {
        return "other";
    };
    match format {
        ApiFormat::OpenaiChat(_) => {
            let path = api_path.trim_end_matches('/');
            if path.ends_with("/chat/completions") {
                "chat"
            } else {
                "text_completion"
            }
        }
        ApiFormat::OpenaiResponses(_)
        | ApiFormat::AnthropicMessages
        | ApiFormat::BedrockConverse
        | ApiFormat::BedrockConverseStream => "chat",
        ApiFormat::OpenaiEmbeddings(_) | ApiFormat::GeminiEmbedContent => "embeddings",
        ApiFormat::GeminiGenerateContent | ApiFormat::GeminiStreamGenerateContent => {
            "generate_content"
        }
        ApiFormat::BedrockInvoke | ApiFormat::BedrockInvokeStream => "invoke_model",
        ApiFormat::AnthropicCountTokens
        | ApiFormat::GeminiCountTokens
        | ApiFormat::BedrockCountTokens => "count_tokens",
    }
}

#[cfg(test)]
mod tests;
