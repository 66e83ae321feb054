//! A fast mock LLM upstream for `make bench`: an OpenAI-style chat completion, or an
//! Anthropic Messages answer, over HTTP/1.1 keep-alive, on loopback.
//!
//!     mock-upstream [--listen 127.0.0.1:0] [--threads 1] [--upstream-key KEY]
//!
//! Prints `listening on <addr>` on stdout once bound (port 0: the kernel picks one).
//!
//! Every POST is read in full and answered. A path ending in `/v1/messages` gets Anthropic
//! Messages, any other path OpenAI chat completions:
//! - `"stream": true` absent: OpenAI, a 264 B JSON chat completion with `usage`; Anthropic, a
//!   `message` with one text block, `stop_reason: end_turn` and `usage`; with content-length;
//! - `"stream": true`, OpenAI: an SSE stream, chunked: N-1 content chunks, the finish chunk,
//!   then (only when the request has `"include_usage": true`, as OpenAI does) a usage chunk,
//!   then `data: [DONE]`;
//! - `"stream": true`, Anthropic: Anthropic's SSE framing (`event:` + `data:`):
//!   `message_start` (usage input 9, output 1), `content_block_start`, N-1
//!   `content_block_delta` text deltas, `content_block_stop`, `message_delta` (`end_turn`,
//!   usage output N-1), `message_stop`.
//!
//! N and the gap come from the model name: `bench-chunks8-delay5` = 7 content chunks
//! (deltas) 5 ms apart (the first at once, after the stream's opening events), then the
//! closing events right after the last one, so asking for usage does not lengthen the
//! stream. Default 4, no delay; without a delay the body still yields between chunks, so
//! each leaves in its own write.
//!
//! Every answer carries `x-mock-auth`: `upstream` when `Authorization: Bearer <KEY>` or
//! `x-api-key: <KEY>` (Anthropic's header) matched `--upstream-key`, `other` for any other
//! Authorization / x-api-key, `none` without either; the benchmark uses it to check that the
//! gateway injected the upstream key. The same verdicts are counted, per API, for
//! `GET /mock/stats` (JSON), which the benchmark reads where the gateway does not pass the
//! upstream's headers on (the unified endpoint).
//! Any other GET answers 200 `ok` (readiness).
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Sleep;

const JSON_ANSWER: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;

const CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n";
const LAST_CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
const USAGE_CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":8,\"total_tokens\":17}}\n\n";
const DONE: &[u8] = b"data: [DONE]\n\n";

const ANTHROPIC_ANSWER: &[u8] = br#"{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","content":[{"type":"text","text":"Hello there!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":3}}"#;
const A_MESSAGE_START: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"bench-model\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n";
const A_BLOCK_START: &[u8] = b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const A_DELTA: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok \"}}\n\n";
const A_BLOCK_STOP: &[u8] =
    b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
const A_MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// `message_delta` with the cumulative output tokens (the only event that varies).
fn a_message_delta(output_tokens: u64) -> Bytes {
    Bytes::from(format!(
        "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{output_tokens}}}}}\n\n"
    ))
}

/// Auth verdicts per API, for `GET /mock/stats`: [api][verdict], api 0 = OpenAI chat
/// completions, 1 = Anthropic messages; verdict 0 = upstream, 1 = other, 2 = none.
struct Stats([[AtomicU64; 3]; 2]);

impl Stats {
    fn json(&self) -> String {
        let v = |a: usize, k: usize| self.0[a][k].load(Ordering::Relaxed);
        let api = |a: usize| {
            format!(
                "{{\"upstream\":{},\"other\":{},\"none\":{}}}",
                v(a, 0),
                v(a, 1),
                v(a, 2)
            )
        };
        format!("{{\"openai\":{},\"anthropic\":{}}}", api(0), api(1))
    }
}

struct Shared {
    key: Option<String>,
    stats: Stats,
}

struct Opts {
    listen: String,
    threads: usize,
    upstream_key: Option<String>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        listen: "127.0.0.1:0".into(),
        threads: 1,
        upstream_key: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--listen" => o.listen = val(),
            "--threads" => o.threads = val().parse().unwrap_or_else(|_| die("--threads: a number")),
            "--upstream-key" => o.upstream_key = Some(val()),
            "-h" | "--help" => {
                println!("mock-upstream [--listen 127.0.0.1:0] [--threads 1] [--upstream-key KEY]");
                std::process::exit(0);
            }
            _ => die(&format!("unknown argument {a}")),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("mock-upstream: {msg}");
    std::process::exit(2)
}

/// The answer body: one buffer, or SSE chunks with a gap (or a yield) between them.
struct MockBody {
    /// Each chunk, and whether the gap comes after it (else only a yield).
    chunks: VecDeque<(Bytes, bool)>,
    delay: Duration,
    /// Between chunks: the timer, or (no delay) one `Pending` so hyper flushes each chunk.
    gap: Option<Pin<Box<Sleep>>>,
    yielded: bool,
    stream: bool,
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(sleep) = this.gap.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.gap = None;
        } else if this.stream && this.yielded {
            this.yielded = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match this.chunks.pop_front() {
            None => Poll::Ready(None),
            Some((c, gap_after)) => {
                if this.stream && !this.chunks.is_empty() {
                    if this.delay.is_zero() || !gap_after {
                        this.yielded = true;
                    } else {
                        this.gap = Some(Box::pin(tokio::time::sleep(this.delay)));
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.stream {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.chunks.iter().map(|(c, _)| c.len() as u64).sum())
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `"key": true` with or without spaces after the colon.
fn json_true(body: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = find(&body[from..], key) {
        let rest = &body[from + i + key.len()..];
        let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
        let mut j = 0;
        while j < rest.len() && (rest[j] == b' ' || rest[j] == b':') {
            j += 1;
        }
        if rest[j..].starts_with(b"true") {
            return true;
        }
        from += i + key.len();
    }
    false
}

/// The number after `tag` in the body (`chunks8` -> 8).
fn number_after(body: &[u8], tag: &[u8]) -> Option<u64> {
    let i = find(body, tag)? + tag.len();
    let digits: Vec<u8> = body[i..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// `upstream` / `other` / `none` (index 0 / 1 / 2) for one credential header.
fn verdict(key: Option<&str>, got: Option<&[u8]>) -> Option<usize> {
    let got = got?;
    Some(match key {
        Some(k) if k.as_bytes() == got => 0,
        _ => 1,
    })
}

async fn handle(req: Request<Incoming>, sh: Arc<Shared>) -> Result<Response<MockBody>, Infallible> {
    let key = sh.key.as_deref();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().strip_prefix(b"Bearer ").unwrap_or(b"\0"));
    let x_api_key = req.headers().get("x-api-key").map(|v| v.as_bytes());
    // Either header may carry the key (OpenAI: Authorization; Anthropic: x-api-key).
    let v = match (verdict(key, bearer), verdict(key, x_api_key)) {
        (Some(0), _) | (_, Some(0)) => 0,
        (None, None) => 2,
        _ => 1,
    };
    let auth = ["upstream", "other", "none"][v];
    let post = req.method() == http::Method::POST;
    let anthropic = req.uri().path().ends_with("/v1/messages");
    if !post {
        let (ct, body) = if req.uri().path() == "/mock/stats" {
            ("application/json", Bytes::from(sh.stats.json()))
        } else {
            ("text/plain", Bytes::from_static(b"ok"))
        };
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, ct)
            .status(StatusCode::OK)
            .body(one(body))
            .expect("valid response"));
    }
    sh.stats.0[anthropic as usize][v].fetch_add(1, Ordering::Relaxed);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut resp = Response::builder().header("x-mock-auth", HeaderValue::from_static(auth));
    let body = if json_true(&body, b"\"stream") {
        let n = number_after(&body, b"chunks").unwrap_or(4).clamp(1, 10_000);
        let delay = Duration::from_millis(number_after(&body, b"delay").unwrap_or(0));
        // The gap separates the content chunks; the closing chunks (OpenAI: finish, usage,
        // [DONE]; Anthropic: block stop, message delta, message stop) follow each other at
        // once (so asking for usage does not lengthen the stream).
        let (content, mut chunks): (&'static [u8], VecDeque<(Bytes, bool)>) = if anthropic {
            let opening = [A_MESSAGE_START, A_BLOCK_START];
            (
                A_DELTA,
                opening
                    .into_iter()
                    .map(|c| (Bytes::from_static(c), false))
                    .collect(),
            )
        } else {
            (CHUNK, VecDeque::new())
        };
        chunks.extend((1..n).map(|i| (Bytes::from_static(content), i + 1 < n)));
        if anthropic {
            chunks.push_back((Bytes::from_static(A_BLOCK_STOP), false));
            chunks.push_back((a_message_delta(n - 1), false));
            chunks.push_back((Bytes::from_static(A_MESSAGE_STOP), false));
        } else {
            chunks.push_back((Bytes::from_static(LAST_CHUNK), false));
            if json_true(&body, b"\"include_usage") {
                chunks.push_back((Bytes::from_static(USAGE_CHUNK), false));
            }
            chunks.push_back((Bytes::from_static(DONE), false));
        }
        resp = resp
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache");
        MockBody {
            chunks,
            delay,
            gap: None,
            yielded: false,
            stream: true,
        }
    } else {
        resp = resp.header(header::CONTENT_TYPE, "application/json");
        one(Bytes::from_static(if anthropic {
            ANTHROPIC_ANSWER
        } else {
            JSON_ANSWER
        }))
    };
    Ok(resp
        .status(StatusCode::OK)
        .body(body)
        .expect("valid response"))
}

fn one(b: Bytes) -> MockBody {
    MockBody {
        chunks: VecDeque::from([(b, false)]),
        delay: Duration::ZERO,
        gap: None,
        yielded: false,
        stream: false,
    }
}

fn main() {
    let o = parse_args();
    let rt = if o.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&o.listen)
            .await
            .unwrap_or_else(|e| die(&format!("bind {}: {e}", o.listen)));
        let addr = listener.local_addr().expect("local addr");
        println!("listening on {addr}");
        std::io::stdout().flush().ok();
        let shared = Arc::new(Shared {
            key: o.upstream_key,
            stats: Stats(Default::default()),
        });
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, Arc::clone(&shared)));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
}
