//! The proxy-wasm contexts. The root context parses the plugin configuration and, off the
//! request path (`on_tick`), polls the sidecar's fast-path snapshot (which also carries a
//! reloaded config: the provider table follows it) and sends the queued records. Each HTTP context applies [`Request::route`] to its request, then either takes
//! the fast path (credential, metering along the request and the answer, the record at the
//! end) or hands the request to the sidecar.

use crate::fast_path::{Call, FastPath, FastTable};
use crate::reply;
use crate::request::{Decision, Forward, Request};
use crate::table::ProviderTable;
use aigw_core::feed::{
    Snapshot, FLUSH_INTERVAL_MS, RECORDS_PATH, SIDECAR_CLUSTER, SNAPSHOT_PATH, VERSION_PARAM,
};
use aigw_core::handoff::{CREDENTIAL_PROPERTY, ROUTE_PROPERTY, UPSTREAM_SCHEME_HEADER};
use aigw_metering::accounting::{Accounting, RequestInfo, CONVERSATION_HEADER};
use aigw_metering::request_body::{self, UsageChunkFilter};
use aigw_metering::usage::{self, ApiFormat};
use log::{debug, error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    table: Rc<ProviderTable>,
    /// The configuration `table` was built from: the plugin's, until the sidecar's live
    /// one (a reload) differs.
    table_json: String,
    fast: Rc<RefCell<FastPath>>,
}

fn now_ms(ctx: &dyn Context) -> u64 {
    ctx.get_current_time()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(call) = self.fast.borrow_mut().answered(token) else {
            return;
        };
        let status = self.get_http_call_response_header(":status");
        let now = now_ms(self);
        match call {
            Call::Poll => {
                let answer = match status.as_deref() {
                    Some("204") => Ok(None),
                    Some("200") => {
                        let body = self
                            .get_http_call_response_body(0, body_size)
                            .unwrap_or_default();
                        serde_json::from_slice::<Snapshot>(&body)
                            .map_err(|e| e.to_string())
                            .and_then(|s| {
                                self.follow_config(&s.config);
                                FastTable::new(s)
                            })
                            .map(Some)
                    }
                    s => Err(format!("answered {s:?}")),
                };
                let mut fast = self.fast.borrow_mut();
                match answer {
                    Ok(t) => fast.confirmed(now, t),
                    Err(e) => {
                        // The sidecar is down, refusing or garbled: every call takes the
                        // sidecar path, which fails closed.
                        debug!("aigw: fast-path snapshot poll failed: {e}");
                        fast.lost();
                    }
                }
            }
            Call::Flush => {
                let delivered = status.as_deref() == Some("200");
                let mut fast = self.fast.borrow_mut();
                if !delivered {
                    warn!(
                        "aigw: usage records not accepted by the sidecar ({status:?}); {} bytes kept for the next try",
                        fast.pending_bytes()
                    );
                }
                fast.flushed(delivered);
            }
        }
    }
}

impl Root {
    /// Rebuilds the provider table from the sidecar's live configuration when it differs
    /// from ours: the sidecar reloaded its config file. New requests route by the new
    /// table; those running keep theirs.
    fn follow_config(&mut self, json: &str) {
        match ProviderTable::reloaded(&self.table_json, json) {
            None => {}
            Some(Ok(t)) => {
                info!(
                    "aigw: provider table reloaded from the sidecar: {} provider(s)",
                    t.len()
                );
                self.table = Rc::new(t);
                self.table_json = json.to_string();
            }
            // The sidecar validated it with the same code; keep routing by ours.
            Some(Err(e)) => error!("aigw: the sidecar's configuration is invalid here: {e}"),
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            error!("aigw: no plugin configuration");
            return false;
        };
        let Ok(json) = std::str::from_utf8(&bytes) else {
            error!("aigw: plugin configuration is not UTF-8");
            return false;
        };
        match ProviderTable::from_json(json) {
            Ok(t) => {
                info!(
                    "aigw: {} provider(s) configured, fast path {}",
                    t.len(),
                    if t.fast_path { "on" } else { "off" }
                );
                // Polled with the fast path off too: the snapshot carries config reloads.
                self.set_tick_period(Duration::from_millis(FLUSH_INTERVAL_MS));
                self.table = Rc::new(t);
                self.table_json = json.to_string();
                true
            }
            Err(e) => {
                error!("aigw: invalid plugin configuration: {e}");
                false
            }
        }
    }

    /// Off the request path: refresh the snapshot, send the records. The state is not
    /// borrowed across a call to Envoy, which could answer before returning.
    fn on_tick(&mut self) {
        let now = now_ms(self);
        let poll_path = {
            let mut fast = self.fast.borrow_mut();
            fast.poll_due(now).then(|| match fast.version() {
                Some(v) => format!("{SNAPSHOT_PATH}?{VERSION_PARAM}={v}"),
                None => SNAPSHOT_PATH.to_string(),
            })
        };
        if let Some(path) = poll_path {
            let headers = vec![
                (":method", "GET"),
                (":path", path.as_str()),
                (":authority", SIDECAR_CLUSTER),
            ];
            let sent = self.dispatch_http_call(
                SIDECAR_CLUSTER,
                headers,
                None,
                vec![],
                Duration::from_secs(1),
            );
            if let Err(e) = &sent {
                debug!("aigw: fast-path snapshot poll not sent: {e:?}");
            }
            self.fast.borrow_mut().polled(now, sent.ok());
        }
        let batch = self.fast.borrow_mut().next_batch(now);
        if let Some(batch) = batch {
            let headers = vec![
                (":method", "POST"),
                (":path", RECORDS_PATH),
                (":authority", SIDECAR_CLUSTER),
                ("content-type", "application/x-ndjson"),
            ];
            let sent = self.dispatch_http_call(
                SIDECAR_CLUSTER,
                headers,
                Some(&batch),
                vec![],
                Duration::from_secs(5),
            );
            if let Err(e) = &sent {
                warn!("aigw: usage records not sent: {e:?}");
            }
            self.fast.borrow_mut().flush_sent(now, sent.ok());
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Exchange {
            table: Rc::clone(&self.table),
            fast: Rc::clone(&self.fast),
            meter: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Envoy's response flags (`response.flags`, the legacy bitmask) that put the end on the
/// upstream's side: request timeout (UT), remote reset (UR), connection failure (UF) and
/// termination (UC), overflow (UO), stream idle timeout (SI), max stream duration (UMSDR),
/// protocol error (UPE: e.g. a chunked body cut off).
const UPSTREAM_FAILURE_FLAGS: u64 =
    0x4 | 0x10 | 0x20 | 0x40 | 0x80 | 0x1_0000 | 0x8_0000 | 0x80_0000;
/// The client went away: connection termination (DC), protocol error (DPE), remote
/// reset (DR).
const DOWNSTREAM_TERMINATION: u64 = 0x4000 | 0x4_0000 | 0x1000_0000;

struct Exchange {
    table: Rc<ProviderTable>,
    fast: Rc<RefCell<FastPath>>,
    /// A fast-path call's accounting, from its request headers to its end.
    meter: Option<Meter>,
}

struct Meter {
    accounting: Accounting,
    openai_chat: bool,
    /// Waiting for the whole request body (model, stream, `include_usage`).
    reading_body: bool,
    /// Set when the filter added `include_usage` the client did not ask for.
    usage_chunk_filter: Option<UsageChunkFilter>,
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // One hostcall for the whole map: we need :path, every credential header, and to
        // see that no internal header came from the client.
        let headers = self.get_http_request_headers();
        let table = Rc::clone(&self.table);
        match Request::route(&table, &headers) {
            Decision::Pass => Action::Continue,
            Decision::Reply(e) => {
                debug!("aigw: refused: {}", e.kind.code());
                reply::send(self, &e);
                Action::Pause
            }
            Decision::Forward(f) => {
                for h in f.removed_headers() {
                    self.set_http_request_header(h, None);
                }
                let p = &f.provider.config;
                self.set_http_request_header(":path", Some(&f.path));
                self.set_http_request_header(":authority", Some(&p.upstream.authority));
                let action = if self.try_fast_path(&f, &headers, end_of_stream) {
                    self.set_http_request_header(
                        UPSTREAM_SCHEME_HEADER,
                        Some(p.upstream.scheme.fast_route()),
                    );
                    Action::Continue
                } else {
                    self.set_http_request_header(
                        UPSTREAM_SCHEME_HEADER,
                        Some(p.upstream.scheme.as_str()),
                    );
                    self.set_property(vec![ROUTE_PROPERTY], Some(f.provider.route_line.as_bytes()));
                    self.set_property(vec![CREDENTIAL_PROPERTY], Some(f.credential.as_bytes()));
                    Action::Continue
                };
                // Header changes clear the route cache on this ABI; say so explicitly anyway,
                // since Envoy ties the automatic clear to the ABI version.
                let _ = proxy_wasm::hostcalls::call_foreign_function("clear_route_cache", None);
                action
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(m) = self.meter.as_mut().filter(|m| m.reading_body) else {
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause; // Envoy buffers until the end (route body limit: 413)
        }
        m.reading_body = false;
        let openai_chat = m.openai_chat;
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        // Not JSON: forwarded as sent; the upstream will say why (as on the sidecar path).
        let facts = request_body::read(&body, openai_chat).unwrap_or_default();
        if let Some(new_body) = &facts.rewritten {
            // The headers went on without `content-length` (see `try_fast_path`).
            self.set_http_request_body(0, body_size, new_body);
        }
        if let Some(m) = self.meter.as_mut() {
            m.accounting.streamed |= facts.stream;
            if m.accounting.model_requested.is_none() {
                m.accounting.model_requested = facts.model;
            }
            if facts.rewritten.is_some() {
                m.usage_chunk_filter = Some(UsageChunkFilter::default());
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.meter.is_none() {
            return Action::Continue;
        }
        let status = self
            .get_http_response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut done = end_of_stream;
        if let Some(mut m) = self.meter.take() {
            if status >= 400 {
                m.usage_chunk_filter = None; // an error answer carries no usage chunk
            }
            m.accounting
                .on_response_headers(status, |name| self.get_http_response_header(name));
            done |= !m.accounting.is_metered();
            self.meter = Some(m);
        }
        if done {
            self.finish(false);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.meter.is_none() {
            return Action::Continue;
        }
        let chunk = if body_size > 0 {
            self.get_http_response_body(0, body_size)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let Some(m) = self.meter.as_mut() else {
            return Action::Continue;
        };
        m.accounting.on_response_body(&chunk);
        if let Some(f) = &mut m.usage_chunk_filter {
            if let Some(out) = f.filter(&chunk, end_of_stream) {
                self.set_http_response_body(0, body_size, &out);
            }
        }
        if end_of_stream {
            self.finish(false);
        }
        Action::Continue
    }

    /// The stream is over; a fast-path call not finished by now was cut short, by the
    /// upstream or by the client (Envoy's response flags say which).
    fn on_log(&mut self) {
        if self.meter.is_none() {
            return;
        }
        let flags = self
            .get_property(vec!["response", "flags"])
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        let upstream = flags & UPSTREAM_FAILURE_FLAGS != 0 && flags & DOWNSTREAM_TERMINATION == 0;
        if upstream {
            if let Some(m) = self.meter.as_mut() {
                m.accounting.upstream_broke();
            }
        }
        self.finish(!upstream);
    }
}

impl Exchange {
    /// Admits the call to the fast path if the sidecar's snapshot allows it: sets the
    /// upstream credential and starts the call's accounting.
    fn try_fast_path(
        &mut self,
        f: &Forward<'_>,
        headers: &[(String, String)],
        end_of_stream: bool,
    ) -> bool {
        let p = &f.provider.config;
        let Some(fast) = self.fast.borrow().table(now_ms(self)) else {
            return false;
        };
        let Some(admitted) = fast.admit(&p.name, f.credential) else {
            return false;
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        for (name, value) in &admitted.provider.set_headers {
            self.set_http_request_header(name, Some(value));
        }
        for (name, value) in &admitted.provider.default_headers {
            if header(name).is_none() {
                self.set_http_request_header(name, Some(value));
            }
        }
        let method = header(":method").unwrap_or("GET");
        let accounting = Accounting::new(RequestInfo {
            request_id: header("x-request-id").unwrap_or(""),
            provider: &p.name,
            kind: p.kind,
            method,
            path: &f.path,
            principal: admitted.principal.clone(),
            conversation_id: header(CONVERSATION_HEADER),
            traceparent: header("traceparent"),
        });
        if accounting.is_metered() {
            // Usage must be readable: ask the upstream for an uncompressed answer.
            self.set_http_request_header("accept-encoding", None);
        }
        let openai_chat = matches!(
            usage::detect(p.kind, method, &f.path, None),
            Some(ApiFormat::OpenaiChat(_))
        );
        if openai_chat && !end_of_stream {
            // The body may get `include_usage`, and only the body says so; the headers cannot
            // wait for it (a paused request's body is not delivered to the filter), so the
            // upstream gets the body without a length (HTTP/2 DATA frames, HTTP/1.1 chunked).
            self.set_http_request_header("content-length", None);
        }
        self.meter = Some(Meter {
            reading_body: accounting.is_metered() && !end_of_stream,
            accounting,
            openai_chat,
            usage_chunk_filter: None,
        });
        true
    }

    /// Queues the call's record for the sidecar, once.
    fn finish(&mut self, client_gone: bool) {
        if let Some(m) = self.meter.take() {
            let record = m.accounting.finish(client_gone);
            self.fast.borrow_mut().push_record(&record);
        }
    }
}
