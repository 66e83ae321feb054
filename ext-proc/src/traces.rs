//! OpenTelemetry traces: one span per LLM call, exported over OTLP/gRPC when an endpoint is
//! configured (`--otlp-endpoint` / `OTEL_EXPORTER_OTLP_ENDPOINT`; off by default).
//!
//! Spans are built from the finished [`UsageRecord`], in the sidecar, for both paths (the
//! filter's fast path sends its records here too), with the call's own start and end
//! times. Nothing is added to the request path but reading the `traceparent` header: when
//! the caller sent a valid one, the span is its child (same trace id, parent span id);
//! otherwise the span starts a new trace.
//!
//! Attributes follow the OpenTelemetry GenAI semantic conventions: `gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.usage.input_tokens` (every input token, cache reads and writes included),
//! `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`,
//! `gen_ai.usage.output_tokens`, `gen_ai.conversation.id`, `server.address`,
//! `http.response.status_code`, `error.type`; and the gateway's own under `aigw.*`. The
//! SDK's batch processor exports off the request path from a bounded queue (65 536 spans,
//! up to 4096 per export, every second; the `OTEL_BSP_*` variables override); a full queue
//! drops spans, never blocks.

use crate::record::{Outcome, UsageRecord};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use std::time::{Duration, UNIX_EPOCH};

pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Traces {
    /// An exporter to `endpoint` (`http://host:4317`). Must run inside the Tokio runtime (the
    /// gRPC channel lives there).
    pub fn start(endpoint: &str, service_name: &str) -> Result<Self, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
        // The SDK's defaults (2048 queued, 512 per export, every 5 s) hold about 400 spans a
        // second; a gateway serves thousands. The standard OTEL_BSP_* variables still win.
        let env = |k: &str| std::env::var_os(k).is_some();
        let mut config = BatchConfigBuilder::default();
        if !env("OTEL_BSP_MAX_QUEUE_SIZE") {
            config = config.with_max_queue_size(65_536);
        }
        if !env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            config = config.with_max_export_batch_size(4096);
        }
        if !env("OTEL_BSP_SCHEDULE_DELAY") {
            config = config.with_scheduled_delay(Duration::from_secs(1));
        }
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config.build())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_string())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("aigw");
        Ok(Self { provider, tracer })
    }

    /// Emits the span of one call.
    pub fn record(&self, r: &UsageRecord, server_address: Option<&str>) {
        let start = UNIX_EPOCH + Duration::from_millis(r.time_ms.max(0) as u64);
        let end = start + Duration::from_millis(r.latency_ms);
        let operation = crate::metrics::operation_name(&r.provider_type, &r.api_path);
        let model = r.model_requested.as_deref().or(r.model_answered.as_deref());
        let name = match model {
            Some(m) => format!("{operation} {m}"),
            None => operation.to_string(),
        };
        let parent = r
            .trace_parent
            .as_deref()
            .and_then(remote_parent)
            .map_or_else(Context::new, |sc| {
                Context::new().with_remote_span_context(sc)
            });
        let mut span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes(r, operation, server_address))
            .start_with_context(&self.tracer, &parent);
        use opentelemetry::trace::Span;
        if r.outcome == Outcome::UpstreamError {
            span.set_status(Status::error(if r.status == 0 {
                "no answer from the provider".to_string()
            } else {
                format!("the provider answered {}", r.status)
            }));
        }
        span.end_with_timestamp(end);
    }

    /// Exports what is queued (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "traces not all exported at shutdown");
        }
    }
}

/// The span context a valid `traceparent` names (already checked by the accounting).
fn remote_parent(tp: &str) -> Option<SpanContext> {
    let trace = TraceId::from_hex(tp.get(3..35)?).ok()?;
    let span = SpanId::from_hex(tp.get(36..52)?).ok()?;
    let flags = u8::from_str_radix(tp.get(53..55)?, 16).ok()?;
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// The semantic conventions' provider names; an OpenAI-compatible server is named by its
/// configured provider (the conventions allow custom values).
fn provider_name(r: &UsageRecord) -> String {
    match &*r.provider_type {
        "openai" => "openai".into(),
        "anthropic" => "anthropic".into(),
        "google" => "gcp.gemini".into(),
        "bedrock" => "aws.bedrock".into(),
        _ => r.provider.clone(),
    }
}

fn attributes(r: &UsageRecord, operation: &'static str, server: Option<&str>) -> Vec<KeyValue> {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut a = vec![
        KeyValue::new("gen_ai.operation.name", operation),
        KeyValue::new("gen_ai.provider.name", provider_name(r)),
        KeyValue::new("aigw.provider", r.provider.clone()),
        KeyValue::new("aigw.request_id", r.request_id.clone()),
        KeyValue::new("aigw.principal", r.principal.clone()),
        KeyValue::new("aigw.outcome", r.outcome.as_str()),
        KeyValue::new("aigw.streamed", r.streamed),
        KeyValue::new("http.response.status_code", i64::from(r.status)),
    ];
    let mut opt = |k: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            a.push(KeyValue::new(k, v.clone()));
        }
    };
    opt("gen_ai.request.model", &r.model_requested);
    opt("gen_ai.response.model", &r.model_answered);
    opt("gen_ai.conversation.id", &r.conversation_id);
    opt("aigw.user", &r.user);
    opt("aigw.agent", &r.agent);
    if let Some(s) = server {
        a.push(KeyValue::new("server.address", s.to_string()));
    }
    if r.usage_reported {
        let u = &r.usage;
        a.push(KeyValue::new(
            "gen_ai.usage.input_tokens",
            int(u.prompt_tokens()),
        ));
        a.push(KeyValue::new("gen_ai.usage.output_tokens", int(u.output)));
        a.push(KeyValue::new(
            "gen_ai.usage.cache_read.input_tokens",
            int(u.cache_read),
        ));
        a.push(KeyValue::new(
            "gen_ai.usage.cache_creation.input_tokens",
            int(u.cache_write()),
        ));
    }
    if let Some(c) = r.cost_nanousd {
        a.push(KeyValue::new("aigw.cost_nanousd", int(c)));
    }
    if let Some(t) = r.ttfb_ms {
        a.push(KeyValue::new("aigw.ttfb_ms", int(t)));
    }
    if r.outcome == Outcome::UpstreamError {
        let kind = if r.status == 0 {
            "no_response".to_string()
        } else {
            r.status.to_string()
        };
        a.push(KeyValue::new("error.type", kind));
    }
    a
}

#[cfg(test)]
mod tests;
