//! The client's answer from the target's: OpenAI-shaped, a stream event by event.
//!
//! Errors from the target (its 4xx, or the last failure when every target failed) are
//! passed on with their status and body as the provider or the native path sent them;
//! the target header says whose they are.

use super::call::Native;
use super::plan::Candidate;
use super::{ATTEMPTS_HEADER, TARGET_HEADER};
use aigw_core::{ErrorKind, GatewayError};
use aigw_translate::{ResponseMeta, StreamTranslator};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use std::pin::Pin;

/// Largest non-streamed answer read whole for translation.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Headers of the native answer the client also gets (the rate-limit ones in OpenAI's
/// names, so the SDK's retry logic works here too).
const KEPT_HEADERS: [&str; 9] = [
    "retry-after",
    crate::exchange::BUDGET_WARNING_HEADER,
    "x-request-id",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
];

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

pub async fn respond(
    c: &Candidate<'_>,
    native: &Native,
    resp: reqwest::Response,
    first: Option<Bytes>,
    attempts: usize,
) -> Response {
    let status = resp.status();
    let mut headers = kept(resp.headers());
    headers.insert(
        HeaderName::from_static(TARGET_HEADER),
        HeaderValue::from_str(&c.label()).unwrap_or(HeaderValue::from_static("invalid")),
    );
    headers.insert(
        HeaderName::from_static(ATTEMPTS_HEADER),
        HeaderValue::from(attempts),
    );
    let target = match &native.target {
        Some(t) if status.is_success() => t,
        // The target speaks OpenAI, or this is its error: as it is.
        _ => {
            if let Some(ct) = resp.headers().get(header::CONTENT_TYPE) {
                headers.insert(header::CONTENT_TYPE, ct.clone());
            }
            let body = Body::from_stream(with_first(first, resp.bytes_stream().boxed()));
            return build(status, headers, body);
        }
    };
    let meta = ResponseMeta {
        id: format!(
            "chatcmpl-{:016x}{:08x}",
            fastrand::u64(..),
            fastrand::u32(..)
        ),
        model: c.model.to_string(),
        created: crate::store::time::now_ms() / 1000,
    };
    if native.stream {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let tr = aigw_translate::stream_translator(target, meta, native.include_usage);
        let body = Body::from_stream(translated(
            tr,
            with_first(first, resp.bytes_stream().boxed()),
        ));
        return build(status, headers, body);
    }
    let whole = match read_whole(first, resp).await {
        Ok(b) => b,
        Err(e) => return with_target(super::error_response(&e), headers),
    };
    match aigw_translate::translate_response(target, &whole, &meta) {
        Ok(json) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            build(status, headers, Body::from(json))
        }
        Err(e) => {
            tracing::warn!(target = %c.label(), error = %e, "unified: the provider's answer could not be translated");
            let err = GatewayError::new(
                ErrorKind::BadUpstreamResponse,
                format!(
                    "the answer of {} is not the documented shape: {e}",
                    c.label()
                ),
            );
            with_target(super::error_response(&err), headers)
        }
    }
}

/// The last failed try, passed on (every target failed).
pub fn failed(status: u16, native_headers: &HeaderMap, body: Bytes, attempts: usize) -> Response {
    let mut headers = kept(native_headers);
    if let Some(ct) = native_headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    headers.insert(
        HeaderName::from_static(ATTEMPTS_HEADER),
        HeaderValue::from(attempts),
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    build(status, headers, Body::from(body))
}

fn kept(from: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    for name in KEPT_HEADERS {
        if let Some(v) = from.get(name) {
            h.insert(HeaderName::from_static(name), v.clone());
        }
    }
    h
}

fn build(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

fn with_target(mut r: Response, headers: HeaderMap) -> Response {
    for name in [TARGET_HEADER, ATTEMPTS_HEADER] {
        if let Some(v) = headers.get(name) {
            r.headers_mut()
                .insert(HeaderName::from_static(name), v.clone());
        }
    }
    r
}

fn with_first(first: Option<Bytes>, rest: ByteStream) -> ByteStream {
    match first {
        Some(b) => futures_util::stream::once(async move { Ok(b) })
            .chain(rest)
            .boxed(),
        None => rest,
    }
}

async fn read_whole(
    first: Option<Bytes>,
    mut resp: reqwest::Response,
) -> Result<Vec<u8>, GatewayError> {
    let mut buf = first.map(Vec::from).unwrap_or_default();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > MAX_ANSWER_BYTES {
                    return Err(GatewayError::new(
                        ErrorKind::BadUpstreamResponse,
                        format!("the provider's answer is larger than {MAX_ANSWER_BYTES} bytes"),
                    ));
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(buf),
            Err(_) => {
                return Err(GatewayError::new(
                    ErrorKind::BadUpstreamResponse,
                    "the provider's answer broke off",
                ))
            }
        }
    }
}

struct Translating {
    translator: Box<dyn StreamTranslator + Send>,
    upstream: ByteStream,
    done: bool,
}

/// The native stream, translated piece by piece: what a piece completes goes out at once,
/// nothing else is held. A broken upstream breaks the client's stream too (an error, not
/// a clean end), so the SDK reports it.
fn translated(
    translator: Box<dyn StreamTranslator + Send>,
    upstream: ByteStream,
) -> impl Stream<Item = reqwest::Result<Bytes>> + Send {
    let st = Translating {
        translator,
        upstream,
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let mut out = Vec::new();
            match st.upstream.next().await {
                Some(Ok(piece)) => {
                    st.translator.feed(&piece, &mut out);
                    if out.is_empty() {
                        continue;
                    }
                    return Some((Ok(Bytes::from(out)), st));
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.translator.finish(&mut out);
                    st.done = true;
                    if out.is_empty() {
                        return None;
                    }
                    return Some((Ok(Bytes::from(out)), st));
                }
            }
        }
    })
}
