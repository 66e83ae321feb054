//! One HTTP request's life in the sidecar: one ext_proc stream, one message per phase.
//!
//! 1. Request headers: read the route and the credential the filter handed over (filter
//!    state, unforgeable); authenticate ([`crate::auth`]) and check access; add the upstream
//!    credential ([`crate::providers`]). An LLM call also asks for the request body and the
//!    response ([`modes`]), and starts its [`Accounting`].
//! 2. Request body: the model and stream flag; OpenAI chat streams get `include_usage`;
//!    Bedrock bodies are signed ([`crate::providers::bedrock`]).
//! 3. Response headers and body: the usage extractor reads along; nothing is held back.
//! 4. End of the response, or the stream dropped (client gone): the usage record is queued,
//!    and for a provider that logs its calls, the request log ([`crate::request_log`]).
//!
//! Any failure becomes the gateway's JSON error as an `ImmediateResponse`: nothing is forwarded.

use crate::accounting::{self, Accounting, RequestInfo, CONVERSATION_HEADER};
use crate::admission::{self, Admitted, Ask, Used};
use crate::auth::{self, access, Principal};
use crate::gateway::{Gateway, Live};
use crate::limits;
use crate::providers::bedrock::Pending;
use crate::providers::{self, Mutation, Upstream};
use crate::request_log::{writer::PendingLog, Capture};
use crate::store::csv::nanousd_to_usd as usd;
use crate::usage::ApiFormat;
use aigw_core::handoff::{Route, CREDENTIAL_ATTRIBUTE, ROUTE_ATTRIBUTE};
use aigw_core::{ErrorKind, GatewayError, ProviderKind};
use aigw_metering::request_body::{self, UsageChunkFilter};
use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::body_mutation::Mutation as BodyChange;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request as Phase;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response as Reply;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, HttpBody,
    HttpHeaders, ImmediateResponse, ProcessingRequest, ProcessingResponse, TrailersResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct};
use std::sync::Arc;

/// Key of the attributes Envoy sends for the ext_proc filter.
const EXT_PROC_ATTRIBUTES: &str = "envoy.filters.http.ext_proc";

/// Per-request state, kept across the phases of one stream.
pub struct Exchange {
    gw: Arc<Gateway>,
    /// The config this request started under; it keeps it to the end.
    live: Arc<Live>,
    /// Bedrock: the request waiting for its body to be signed, and its provider.
    signing: Option<(String, Pending)>,
    accounting: Option<Accounting>,
    /// Set when the gateway added `include_usage` the client did not ask for.
    usage_chunk_filter: Option<UsageChunkFilter>,
    openai_chat: bool,
    principal: Option<Arc<Principal>>,
    /// This call's holds on its rate limits and budget, settled when the response ends.
    admitted: Option<Admitted>,
    /// The `x-ratelimit-*` headers of a refusal.
    refusal_headers: Vec<(&'static str, String)>,
    /// The request log's copy, when the provider logs its calls.
    capture: Option<Capture>,
}

impl Exchange {
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self {
            live: gw.live(),
            gw,
            signing: None,
            accounting: None,
            usage_chunk_filter: None,
            openai_chat: false,
            principal: None,
            admitted: None,
            refusal_headers: Vec::new(),
            capture: None,
        }
    }

    pub async fn on_message(&mut self, msg: ProcessingRequest) -> ProcessingResponse {
        let result = match msg.request {
            Some(Phase::RequestHeaders(h)) => self.on_request_headers(&msg.attributes, &h).await,
            Some(Phase::RequestBody(b)) => self.on_request_body(b).await,
            Some(Phase::ResponseHeaders(h)) => Ok(self.on_response_headers(&h).await),
            Some(Phase::ResponseBody(b)) => Ok(self.on_response_body(&b).await),
            Some(Phase::RequestTrailers(_)) => {
                Ok(reply(Reply::RequestTrailers(TrailersResponse::default())))
            }
            Some(Phase::ResponseTrailers(_)) => {
                Ok(reply(Reply::ResponseTrailers(TrailersResponse::default())))
            }
            None => Err(GatewayError::new(
                ErrorKind::Misconfigured,
                "empty ext_proc message",
            )),
        };
        result.unwrap_or_else(|e| {
            // The gateway answered itself: no upstream call to account for.
            self.accounting = None;
            self.release();
            let mut r = immediate(&e);
            if let Reply::ImmediateResponse(ir) = &mut r {
                let mut m = Mutation(ir.headers.take().unwrap_or_default());
                for (k, v) in self.refusal_headers.drain(..) {
                    m.set(k, v.into_bytes());
                }
                ir.headers = Some(m.0);
            }
            reply(r)
        })
    }

    async fn on_request_headers(
        &mut self,
        attributes: &std::collections::HashMap<String, Struct>,
        headers: &HttpHeaders,
    ) -> Result<ProcessingResponse, GatewayError> {
        let gw = Arc::clone(&self.gw);
        let live = Arc::clone(&self.live);
        let attrs = attributes.get(EXT_PROC_ATTRIBUTES);
        let route = attribute(attrs, ROUTE_ATTRIBUTE).and_then(Route::decode).ok_or_else(|| {
            // Only reachable if Envoy routes a request here that the filter did not route.
            tracing::error!("request without a filter route reached the sidecar; check the filter order in the Envoy config");
            misconfigured()
        })?;
        let credential = attribute(attrs, CREDENTIAL_ATTRIBUTE).unwrap_or("");
        let principal = auth::authenticate(&gw, &live, &route, credential).await?;
        // The filter routes by the same config within a snapshot poll (see `crate::reload`);
        // a provider removed meanwhile is unknown here too.
        let provider = live.config.provider(route.provider).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::UnknownProvider,
                format!("no provider named '{}'", route.provider),
            )
        })?;
        if !access::permits(live.config.access_rules(provider), &principal) {
            return Err(GatewayError::new(
                ErrorKind::AccessDenied,
                format!("access to provider '{}' is not permitted", route.provider),
            ));
        }

        self.principal = Some(Arc::clone(&principal));
        let h = headers.headers.as_ref();
        let method = header(h, ":method").unwrap_or("GET");
        let path = header(h, ":path").unwrap_or("/");
        let accounting = Accounting::new(RequestInfo {
            request_id: header(h, "x-request-id").unwrap_or(""),
            provider: route.provider,
            kind: route.kind,
            method,
            path,
            principal: accounting::Principal {
                subject: principal.subject.clone(),
                user: principal.user.clone(),
                agent: principal.agent.clone(),
            },
            conversation_id: header(h, CONVERSATION_HEADER),
            traceparent: header(h, "traceparent"),
        });
        let metered = accounting.is_metered();
        check_model(provider, accounting.model_requested.as_deref())?;
        let format = crate::usage::detect(route.kind, method, path, None);
        self.openai_chat = matches!(format, Some(ApiFormat::OpenaiChat(_)));
        self.accounting = Some(accounting);
        let logged = metered && provider.log_requests;
        if logged {
            self.capture = Some(Capture::new(
                live.config.request_logs.max_body_bytes,
                format,
            ));
        }
        // The body is read for usage (model, stream), signing, any model list and the log.
        let wants_body = !headers.end_of_stream
            && (metered || route.kind == ProviderKind::Bedrock || provider.models.is_some());

        if metered && !wants_body {
            self.reserve(0, None).await?;
        }
        let mut mutation = if route.kind == ProviderKind::Bedrock {
            let pending = Pending {
                method: method.to_string(),
                authority: header(h, ":authority").unwrap_or_default().to_string(),
                path: path.to_string(),
            };
            if wants_body {
                self.signing = Some((route.provider.to_string(), pending));
                Mutation::default()
            } else {
                signer(&live, route.provider)?
                    .sign(&pending, b"", &gw.secrets.snapshot())
                    .await?
            }
        } else {
            let up = Upstream {
                route: &route,
                headers: h,
            };
            providers::upstream_mutation(&up, &gw.secrets.snapshot())?
        };
        if metered {
            // Usage must be readable: ask the upstream for an uncompressed answer.
            mutation.0.remove_headers.push("accept-encoding".into());
        }
        Ok(ProcessingResponse {
            response: Some(headers_reply(mutation.0)),
            mode_override: Some(modes(wants_body, metered)),
            ..Default::default()
        })
    }

    async fn on_request_body(
        &mut self,
        body: HttpBody,
    ) -> Result<ProcessingResponse, GatewayError> {
        if !body.end_of_stream {
            // BUFFERED hands over the whole body in one message; anything else is a config error.
            tracing::error!(
                "request body arrived in pieces; the request body mode must be BUFFERED"
            );
            return Err(misconfigured());
        }
        if let Some(c) = &mut self.capture {
            c.on_request_body(&body.body);
        }
        let checked = self.needs_readable_body();
        let facts = match request_body::read(&body.body, self.openai_chat) {
            Ok(f) => f,
            Err(request_body::Unreadable(why)) if checked => {
                return Err(GatewayError::new(
                    ErrorKind::InvalidBody,
                    format!("the request body must be one JSON object for the gateway's model and budget checks: {why}"),
                ))
            }
            // Not JSON and nothing to check: forwarded as sent; the upstream will say why.
            Err(_) => request_body::BodyFacts::default(),
        };
        if let Some(a) = &mut self.accounting {
            a.streamed |= facts.stream;
            if a.model_requested.is_none() {
                a.model_requested = facts.model.clone();
            }
            if let Some(p) = self.live.config.provider(a.provider()) {
                check_model(p, a.model_requested.as_deref())?;
            }
            let max_output = facts
                .max_output_tokens
                .unwrap_or(self.live.budgets.config().default_max_output_tokens);
            self.reserve(
                body.body.len() as u64,
                Some(max_output.saturating_mul(facts.choices)),
            )
            .await?;
        }
        let mut common = CommonResponse::default();
        let mut mutation = Mutation::default();
        let mut forwarded: &[u8] = &body.body;
        if let Some(new_body) = &facts.rewritten {
            self.usage_chunk_filter = Some(UsageChunkFilter::default());
            mutation.set("content-length", new_body.len().to_string().into_bytes());
            forwarded = new_body;
        }
        if let Some((provider, pending)) = self.signing.take() {
            let live = Arc::clone(&self.live);
            let signed = signer(&live, &provider)?
                .sign(&pending, forwarded, &self.gw.secrets.snapshot())
                .await?;
            mutation.0.set_headers.extend(signed.0.set_headers);
        }
        if let Some(new_body) = facts.rewritten {
            common.body_mutation = Some(BodyMutation {
                mutation: Some(BodyChange::Body(new_body)),
            });
        }
        common.header_mutation = Some(mutation.0);
        Ok(reply(Reply::RequestBody(BodyResponse {
            response: Some(common),
        })))
    }

    async fn on_response_headers(&mut self, headers: &HttpHeaders) -> ProcessingResponse {
        let h = headers.headers.as_ref();
        let status = header(h, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 400 {
            // An error answer carries no usage chunk to take out.
            self.usage_chunk_filter = None;
        }
        let mut mutation = Mutation::default();
        if let Some(st) = self.admitted.as_ref().and_then(Admitted::budget_status) {
            if let Some(warn) = st.warn_at_percent {
                let used = st.spent_nanousd.saturating_add(st.reserved_nanousd) as u128;
                let pct = used * 100 / u128::from(st.cap_nanousd.max(1));
                if pct >= u128::from(warn) {
                    let msg = format!(
                        "agent '{}' has used {pct}% of its {} budget of {} USD",
                        st.agent,
                        admission::window_name(st.window),
                        usd(st.cap_nanousd)
                    );
                    mutation.set(BUDGET_WARNING_HEADER, msg.into_bytes());
                }
            }
        }
        if let Some(l) = &self.admitted {
            for (k, v) in limits::headers(l.requests_room, l.tokens_room) {
                mutation.set(k, v.into_bytes());
            }
        }
        if let Some(c) = &mut self.capture {
            c.on_response_headers(header(h, "content-type"));
        }
        if let Some(a) = &mut self.accounting {
            a.on_response_headers(status, |name| header(h, name).map(str::to_string));
            if headers.end_of_stream || !a.is_metered() {
                self.finish(false).await;
            }
        }
        reply(Reply::ResponseHeaders(HeadersResponse {
            response: Some(CommonResponse {
                header_mutation: Some(mutation.0),
                ..Default::default()
            }),
        }))
    }

    async fn on_response_body(&mut self, body: &HttpBody) -> ProcessingResponse {
        if let Some(a) = &mut self.accounting {
            a.on_response_body(&body.body);
        }
        if let Some(c) = &mut self.capture {
            c.on_response_body(&body.body);
        }
        let mut common = CommonResponse::default();
        if let Some(f) = &mut self.usage_chunk_filter {
            if let Some(out) = f.filter(&body.body, body.end_of_stream) {
                common.body_mutation = Some(BodyMutation {
                    mutation: Some(BodyChange::Body(out)),
                });
            }
        }
        if body.end_of_stream {
            self.finish(false).await;
        }
        reply(Reply::ResponseBody(BodyResponse {
            response: Some(common),
        }))
    }

    /// Whether a model list or a budget depends on reading this request's body.
    fn needs_readable_body(&self) -> bool {
        let (Some(a), Some(p)) = (&self.accounting, &self.principal) else {
            return false;
        };
        let listed = self
            .live
            .config
            .provider(a.provider())
            .is_some_and(|c| c.models.is_some());
        let agent = p.agent.as_deref().unwrap_or(&p.subject);
        listed || self.live.budgets.config().for_agent(agent).is_some()
    }

    /// Holds this call's share of its rate limits and the most it can cost on its budget.
    async fn reserve(
        &mut self,
        input_bytes: u64,
        max_output: Option<u64>,
    ) -> Result<(), GatewayError> {
        let (Some(a), Some(p)) = (&self.accounting, &self.principal) else {
            return Ok(());
        };
        let (gw, live) = (Arc::clone(&self.gw), Arc::clone(&self.live));
        let ask = Ask {
            principal: p,
            provider: a.provider(),
            kind: a.kind(),
            model: a.model_requested.as_deref(),
            input_bytes,
            max_output_tokens: max_output
                .unwrap_or(live.budgets.config().default_max_output_tokens),
        };
        match admission::admit(&gw, &live, &ask).await {
            Ok(admitted) => {
                self.admitted = Some(admitted);
                Ok(())
            }
            Err(refused) => {
                self.refusal_headers = refused.headers;
                Err(refused.error)
            }
        }
    }

    /// Gives back every hold: the gateway answered the call itself.
    fn release(&mut self) {
        if let Some(settling) = self
            .admitted
            .take()
            .and_then(|a| a.settle(&self.gw, Used::NOTHING))
        {
            tokio::spawn(settling);
        }
    }

    /// Queues the usage record and settles the holds, once. With shared state the response's
    /// end waits (boundedly) until both are in the database, so a completed response has
    /// its record even if this replica dies right after.
    async fn finish(&mut self, client_gone: bool) {
        if let Some(wait) = self.finish_now(client_gone) {
            if tokio::time::timeout(COMMIT_WAIT, wait).await.is_err() {
                tracing::warn!("the usage store did not commit in time; the record stays queued");
            }
        }
    }

    /// [`finish`](Self::finish) without waiting: what is left to wait for, if anything.
    fn finish_now(&mut self, client_gone: bool) -> Option<impl std::future::Future<Output = ()>> {
        let a = self.accounting.take()?;
        let gw = Arc::clone(&self.gw);
        let live = &self.live;
        let mut record = a.finish(client_gone);
        record.price(|provider, kind, model, usage| live.price(provider, kind, model, usage));
        if let Some(c) = self.capture.take() {
            gw.submit_request_log(PendingLog {
                time_ms: record.time_ms,
                request_id: record.request_id.clone(),
                provider: record.provider.clone(),
                captured: c.finish(),
                redactor: Arc::clone(&live.redactor),
            });
        }
        let used = Used {
            usage_reported: record.usage_reported,
            status: record.status,
            cost_nanousd: record.cost_nanousd,
            tokens: record.usage.total_tokens(),
        };
        let settling = self.admitted.take().and_then(|h| h.settle(&gw, used));
        if gw.shared().is_none_or(|s| s.postgres.is_none()) {
            gw.submit(record);
            return None;
        }
        let committed = gw.submit_committed(record);
        Some(async move {
            if let Some(s) = settling {
                s.await;
            }
            if let Some(c) = committed {
                let _ = c.await;
            }
        })
    }
}

/// How long a response's end waits for its record to be committed (PostgreSQL mode): a
/// commit takes a few ms; longer means the database is away, and the record stays queued.
/// Under Envoy's ext_proc `message_timeout` (0.5 s) with room for the settle before it.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

impl Drop for Exchange {
    /// The stream ended before the response did: the client went away (or Envoy reset the
    /// request). The record keeps what was seen.
    fn drop(&mut self) {
        if let Some(rest) = self.finish_now(true) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(rest);
            }
        }
        self.release();
    }
}

/// This request's processing mode. Every field is explicit: a zero would mean "default",
/// which for headers is "send".
fn modes(request_body: bool, response: bool) -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: if request_body {
            BodySendMode::Buffered
        } else {
            BodySendMode::None
        } as i32,
        response_body_mode: if response {
            BodySendMode::Streamed
        } else {
            BodySendMode::None
        } as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

/// Response header set when a budget is past its warning threshold.
pub const BUDGET_WARNING_HEADER: &str = "x-aigw-budget-warning";

/// A provider's `models` list, if it has one, must name the model.
fn check_model(p: &aigw_core::ProviderConfig, model: Option<&str>) -> Result<(), GatewayError> {
    let (Some(list), Some(model)) = (&p.models, model) else {
        return Ok(());
    };
    if list.iter().any(|m| m.name == model) {
        return Ok(());
    }
    Err(GatewayError::new(
        ErrorKind::ModelNotAllowed,
        format!("model '{model}' is not allowed on provider '{}'", p.name),
    ))
}

fn misconfigured() -> GatewayError {
    GatewayError::new(ErrorKind::Misconfigured, "the gateway is misconfigured")
}

fn signer<'a>(
    live: &'a Live,
    provider: &str,
) -> Result<&'a crate::providers::bedrock::BedrockSigner, GatewayError> {
    live.bedrock(provider).ok_or_else(|| {
        // Enabled in the filter's table but not in the sidecar's: a reload in between.
        GatewayError::new(
            ErrorKind::ProviderDisabled,
            format!("provider '{provider}' is disabled"),
        )
    })
}

fn reply(r: Reply) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(r),
        ..Default::default()
    }
}

fn headers_reply(mutation: HeaderMutation) -> Reply {
    Reply::RequestHeaders(HeadersResponse {
        response: Some(CommonResponse {
            header_mutation: Some(mutation),
            ..Default::default()
        }),
    })
}

/// A header as Envoy sent it (`raw_value`).
fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    let v = h?.headers.iter().find(|v| v.key == name)?;
    std::str::from_utf8(&v.raw_value)
        .ok()
        .filter(|s| !s.is_empty())
        .or(Some(v.value.as_str()))
}

/// A string attribute of the ext_proc attribute struct.
fn attribute<'a>(attrs: Option<&'a Struct>, key: &str) -> Option<&'a str> {
    match attrs?.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The gateway's JSON error as an ext_proc immediate response.
pub fn immediate(e: &GatewayError) -> Reply {
    let mut headers = Mutation::default();
    for (k, v) in e.headers() {
        headers.set(k, v.as_bytes().to_vec());
    }
    if let Some(secs) = e.retry_after_secs {
        headers.set("retry-after", secs.to_string().into_bytes());
    }
    Reply::ImmediateResponse(ImmediateResponse {
        status: Some(HttpStatus {
            code: i32::from(e.status()),
        }),
        headers: Some(headers.0),
        body: e.to_json().into_bytes(),
        grpc_status: None,
        details: format!("aigw_{}", e.kind.code()),
    })
}
