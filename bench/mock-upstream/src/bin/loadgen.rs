//! A small load generator for `make bench` (wrk2 is not in Debian): fixed request rate
//! (open loop) or closed loop for a fixed number of requests, HTTP/1.1 keep-alive, one thread.
//!
//!     loadgen --url http://127.0.0.1:8080/path [-H 'name: value']... --body JSON [--body JSON]...
//!             [--rate 1000] [--connections 8] [--duration 10] [--warmup 1] [--requests N]
//!             [--drain 5]
//!
//! `--rate R`: request k is due at start + k/R; a pacer thread (nanosleep, not tokio's 1 ms
//! timer) releases it when due to the connection idle longest. `late_us` is how far behind
//! schedule sends were; `late_sends` counts those more than 2 ms behind (all connections
//! busy, or the generator not scheduled: the machine could not keep up). When the target
//! cannot keep up with the rate, the due requests queue; those still queued `--drain`
//! seconds after the run's end are not sent but counted as `unsent`, so an overloaded
//! target cannot stretch the run without bound.
//! `--rate 0` (closed loop): every connection sends its next request as soon as the previous
//! answer ended, until `--requests` (or `--duration`) is done.
//! Several `--body`: request k sends body k mod n (a mix of plain and streamed calls).
//!
//! Measured per request from the moment it is written: `latency` (to the end of the answer),
//! `ttfb` (response headers), `ttft` (the first body bytes that hold an SSE `data:` event;
//! streamed answers only). Requests due in the first `--warmup` seconds are not recorded.
//! A streamed answer must end with `data: [DONE]`, any answer must be 200, else it counts
//! as an error. Prints one JSON object on stdout.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

struct Opts {
    host: String,
    port: u16,
    path: String,
    headers: Vec<(String, String)>,
    bodies: Vec<Bytes>,
    rate: f64,
    connections: usize,
    duration: f64,
    warmup: f64,
    requests: Option<u64>,
    timeout: f64,
    drain: f64,
}

fn die(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut url = None;
    let mut o = Opts {
        host: String::new(),
        port: 80,
        path: "/".into(),
        headers: vec![],
        bodies: vec![],
        rate: 1000.0,
        connections: 8,
        duration: 10.0,
        warmup: 1.0,
        requests: None,
        timeout: 10.0,
        drain: 5.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--url" => url = Some(val()),
            "-H" | "--header" => {
                let h = val();
                let (k, v) = h
                    .split_once(':')
                    .unwrap_or_else(|| die("header must be 'name: value'"));
                o.headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "--body" => o.bodies.push(Bytes::from(val())),
            "--rate" => o.rate = val().parse().unwrap_or_else(|_| die("--rate: a number")),
            "--connections" | "-c" => {
                o.connections = val()
                    .parse()
                    .unwrap_or_else(|_| die("--connections: a number"))
            }
            "--duration" | "-d" => {
                o.duration = val().parse().unwrap_or_else(|_| die("--duration: seconds"))
            }
            "--warmup" => o.warmup = val().parse().unwrap_or_else(|_| die("--warmup: seconds")),
            "--requests" | "-n" => {
                o.requests = Some(
                    val()
                        .parse()
                        .unwrap_or_else(|_| die("--requests: a number")),
                )
            }
            "--timeout" => o.timeout = val().parse().unwrap_or_else(|_| die("--timeout: seconds")),
            "--drain" => o.drain = val().parse().unwrap_or_else(|_| die("--drain: seconds")),
            _ => die(&format!("unknown argument {a}")),
        }
    }
    let url = url.unwrap_or_else(|| die("--url is required"));
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| die("only http:// URLs"));
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or_else(|_| die("bad port"))),
        None => (hostport.to_string(), 80),
    };
    o.host = host;
    o.port = port;
    o.path = path.to_string();
    if o.bodies.is_empty() {
        die("at least one --body");
    }
    if o.connections == 0 {
        die("--connections must be > 0");
    }
    o
}

#[derive(Default)]
struct Stats {
    latency: Vec<u32>,
    ttfb: Vec<u32>,
    ttft: Vec<u32>,
    late: Vec<u32>,
    ok: u64,
    errors: u64,
    status_errors: u64,
    incomplete_streams: u64,
    late_sends: u64,
    max_late_us: u64,
    sent: u64,
    /// Due at the fixed rate but still queued `--drain` s after the end: not sent.
    unsent: u64,
    bytes: u64,
    first_error: Option<String>,
}

impl Stats {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

fn summary(xs: &mut [u32]) -> String {
    if xs.is_empty() {
        return "null".into();
    }
    xs.sort_unstable();
    let pct = |p: f64| xs[(((p / 100.0) * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
    format!(
        "{{\"count\":{},\"mean\":{:.1},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
        xs.len(),
        mean,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        xs[xs.len() - 1]
    )
}

struct Shared {
    opts: Opts,
    next: std::cell::Cell<u64>,
    end: Instant,
    record_from: Instant,
    stats: RefCell<Stats>,
    paced: Option<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>>>,
}

impl Shared {
    /// The next request's index and due time, or None when the run is over.
    /// Closed loop: the next request's index, due now, or None when the run is over.
    fn take(&self) -> Option<(u64, Instant)> {
        let k = self.next.get();
        if let Some(n) = self.opts.requests {
            if k >= n {
                return None;
            }
        }
        let now = Instant::now();
        if now >= self.end {
            return None;
        }
        self.next.set(k + 1);
        Some((k, now))
    }

    /// The next request: from the pacer at a fixed rate (idle connections queue on the
    /// mutex, so each due request goes to the one idle longest), else closed loop.
    async fn next_job(&self) -> Option<(u64, Instant)> {
        match &self.paced {
            Some(rx) => rx.lock().await.recv().await,
            None => self.take(),
        }
    }
}

/// Fixed rate: a plain thread sleeps (`nanosleep`, ~50 µs slack) until each request is due
/// and hands it to the runtime, whose own timer only has 1 ms granularity.
fn pacer(
    tx: tokio::sync::mpsc::UnboundedSender<(u64, Instant)>,
    start: Instant,
    end: Instant,
    rate: f64,
    requests: Option<u64>,
) {
    let mut k = 0u64;
    loop {
        if requests.is_some_and(|n| k >= n) {
            return;
        }
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= end {
            return;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if tx.send((k, due)).is_err() {
            return;
        }
        k += 1;
    }
}

async fn connect(o: &Opts) -> Result<http1::SendRequest<Full<Bytes>>, String> {
    let sock = TcpStream::connect((o.host.as_str(), o.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).ok();
    let (send, conn) = http1::handshake(TokioIo::new(sock))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn build(o: &Opts, body: &Bytes) -> Request<Full<Bytes>> {
    let mut r = Request::builder().method("POST").uri(o.path.as_str());
    if !o
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        r = r.header("host", format!("{}:{}", o.host, o.port));
    }
    let mut r = r
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string());
    for (k, v) in &o.headers {
        r = r.header(
            HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|_| die("bad header name")),
            HeaderValue::from_str(v).unwrap_or_else(|_| die("bad header value")),
        );
    }
    r.body(Full::new(body.clone())).expect("request")
}

async fn worker(sh: Rc<Shared>) {
    let mut send: Option<http1::SendRequest<Full<Bytes>>> = None;
    let timeout = Duration::from_secs_f64(sh.opts.timeout);
    let drained = sh.end + Duration::from_secs_f64(sh.opts.drain);
    while let Some((k, due)) = sh.next_job().await {
        if sh.paced.is_some() && Instant::now() >= drained {
            sh.stats.borrow_mut().unsent += 1;
            continue;
        }
        let body = &sh.opts.bodies[(k % sh.opts.bodies.len() as u64) as usize];
        let streamed = body.windows(6).any(|w| w == b"stream") && {
            let s = std::str::from_utf8(body).unwrap_or("");
            s.contains("\"stream\":true") || s.contains("\"stream\": true")
        };
        if send.as_ref().is_none_or(|s| s.is_closed()) {
            match connect(&sh.opts).await {
                Ok(s) => send = Some(s),
                Err(e) => {
                    sh.stats.borrow_mut().error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let s = send.as_mut().expect("connected");
        if s.ready().await.is_err() {
            send = None;
            sh.stats.borrow_mut().error("connection closed".into());
            continue;
        }
        let t0 = Instant::now();
        let record = due >= sh.record_from;
        let late = t0.saturating_duration_since(due);
        let res = tokio::time::timeout(timeout, async {
            let resp = s
                .send_request(build(&sh.opts, body))
                .await
                .map_err(|e| format!("request: {e}"))?;
            let ttfb = t0.elapsed();
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut ttft = None;
            let mut tail: Vec<u8> = Vec::new();
            let mut bytes = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("body: {e}"))?;
                if let Some(d) = frame.data_ref() {
                    bytes += d.len() as u64;
                    if ttft.is_none() && d.windows(5).any(|w| w == b"data:") {
                        ttft = Some(t0.elapsed());
                    }
                    tail.extend_from_slice(d);
                    if tail.len() > 64 {
                        tail.drain(..tail.len() - 64);
                    }
                }
            }
            Ok::<_, String>((status, ttfb, ttft, t0.elapsed(), tail, bytes))
        })
        .await;
        let mut st = sh.stats.borrow_mut();
        st.sent += 1;
        match res {
            Err(_) => {
                send = None;
                st.error(format!("timeout after {}s", sh.opts.timeout));
            }
            Ok(Err(e)) => {
                send = None;
                st.error(e);
            }
            Ok(Ok((status, ttfb, ttft, total, tail, bytes))) => {
                st.bytes += bytes;
                if status != 200 {
                    st.status_errors += 1;
                    if st.first_error.is_none() {
                        st.first_error = Some(format!("status {status}"));
                    }
                } else if streamed && !tail.ends_with(b"data: [DONE]\n\n") {
                    st.incomplete_streams += 1;
                    if st.first_error.is_none() {
                        st.first_error = Some(format!(
                            "stream did not end with [DONE]: {:?}",
                            String::from_utf8_lossy(&tail)
                        ));
                    }
                } else {
                    st.ok += 1;
                    if record {
                        st.latency.push(micros(total));
                        st.ttfb.push(micros(ttfb));
                        st.late.push(micros(late));
                        if streamed {
                            if let Some(t) = ttft {
                                st.ttft.push(micros(t));
                            }
                        }
                    }
                }
                if sh.opts.rate > 0.0 && late > Duration::from_millis(2) {
                    st.late_sends += 1;
                }
                st.max_late_us = st.max_late_us.max(late.as_micros() as u64);
            }
        }
    }
}

fn main() {
    let o = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let start = Instant::now() + Duration::from_millis(50);
    let horizon = if o.requests.is_some() && o.rate <= 0.0 && o.duration <= 0.0 {
        Duration::from_secs(365 * 86400)
    } else {
        Duration::from_secs_f64(o.warmup + o.duration)
    };
    let end = start + horizon;
    let mut pacer_thread = None;
    let paced = (o.rate > 0.0).then(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (rate, requests) = (o.rate, o.requests);
        pacer_thread = Some(std::thread::spawn(move || {
            pacer(tx, start, end, rate, requests)
        }));
        tokio::sync::Mutex::new(rx)
    });
    let sh = Rc::new(Shared {
        next: std::cell::Cell::new(0),
        end,
        record_from: start + Duration::from_secs_f64(o.warmup),
        stats: RefCell::new(Stats::default()),
        paced,
        opts: o,
    });
    local.block_on(&rt, async {
        tokio::time::sleep_until(start.into()).await;
        let mut tasks = vec![];
        for _ in 0..sh.opts.connections {
            tasks.push(tokio::task::spawn_local(worker(Rc::clone(&sh))));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    if let Some(t) = pacer_thread {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut st = sh.stats.borrow_mut();
    let recorded = st.latency.len();
    let measured_s = (elapsed - sh.opts.warmup).max(1e-9);
    let first_error = match &st.first_error {
        Some(e) => json_string(e),
        None => "null".into(),
    };
    let (lat, ttfb, ttft, late) = {
        let s = &mut *st;
        (
            summary(&mut s.latency),
            summary(&mut s.ttfb),
            summary(&mut s.ttft),
            summary(&mut s.late),
        )
    };
    println!(
        "{{\"sent\":{},\"unsent\":{},\"ok\":{},\"errors\":{},\"status_errors\":{},\"incomplete_streams\":{},\"late_sends\":{},\"max_late_us\":{},\"bytes\":{},\"elapsed_s\":{:.3},\"rate_target\":{},\"rate_achieved\":{:.1},\"connections\":{},\"latency_us\":{},\"ttfb_us\":{},\"ttft_us\":{},\"late_us\":{},\"first_error\":{}}}",
        st.sent,
        st.unsent,
        st.ok,
        st.errors,
        st.status_errors,
        st.incomplete_streams,
        st.late_sends,
        st.max_late_us,
        st.bytes,
        elapsed,
        sh.opts.rate,
        if sh.opts.rate > 0.0 { recorded as f64 / measured_s } else { st.ok as f64 / elapsed.max(1e-9) },
        sh.opts.connections,
        lat,
        ttfb,
        ttft,
        late,
        first_error
    );
}
