//! Fixture-driven tests: every file pair under `tests/fixtures/<target>/` is a case.
//!
//! - `request/<case>.in.json` (OpenAI request; its `model` is used as the native model
//!   id) → `request/<case>.out.json` (`{"path", "headers", "body"}`); an optional
//!   `<case>.options.json` (`{"anthropic_version": "2026-10-21"}`, `{"gemini_api_version":
//!   "v1"}`) picks target options.
//! - `response/<case>.in.json` (native answer) → `response/<case>.out.json`
//!   (`chat.completion`).
//! - `stream/<case>.in.sse` (Anthropic, Gemini) or `stream/<case>.in.json` (Bedrock: a list
//!   of `{"headers": {...}, "payload": {...}}` frames, encoded here with the real framing)
//!   → `stream/<case>.out.sse`. Each is fed whole, one byte at a time and in random
//!   chunkings; all must give the same output. Cases named `*no_usage*` are run without
//!   `include_usage`.
//! - `errors/<case>.json`: `{"request", "options"?, "error": {"kind", "field"}}`.
//!
//! `TRANSLATE_BLESS=1 cargo test -p aigw-translate` rewrites the `.out` files (review the
//! diff before committing).

use crate::anthropic::{AnthropicOptions, AnthropicVersion};
use crate::gemini::{GeminiApiVersion, GeminiOptions};
use crate::{stream_translator, translate_request, translate_response};
use crate::{ResponseMeta, Target, TranslateError};
use aigw_metering::usage::event_stream::{self as eventstream, HeaderValue};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const TARGETS: &[&str] = &["anthropic", "gemini", "bedrock"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn bless() -> bool {
    std::env::var_os("TRANSLATE_BLESS").is_some()
}

fn meta() -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-aigw-0001".into(),
        model: "requested-model".into(),
        created: 1_767_225_600,
    }
}

fn target(name: &str, options: Option<&Value>) -> Target {
    let opt = |k: &str| options.and_then(|o| o.get(k)).and_then(Value::as_str);
    match name {
        "anthropic" => Target::Anthropic(AnthropicOptions {
            version: match opt("anthropic_version") {
                Some("2026-10-21") => AnthropicVersion::V2026_10_21,
                _ => AnthropicVersion::V2023_06_01,
            },
        }),
        "gemini" => Target::Gemini(GeminiOptions {
            api_version: match opt("gemini_api_version") {
                Some("v1") => GeminiApiVersion::V1,
                _ => GeminiApiVersion::V1beta,
            },
        }),
        "bedrock" => Target::Bedrock,
        other => panic!("unknown target {other}"),
    }
}

/// `(case name, path)` of the files in `dir` ending with `suffix`, sorted.
fn cases(dir: &Path, suffix: &str) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(suffix).map(|c| (c.to_string(), e.path()))
        })
        .collect();
    v.sort();
    v
}

fn read_json(p: &Path) -> Value {
    let s = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check_json(expected_path: &Path, got: &Value, failures: &mut Vec<String>) {
    if bless() {
        let mut s = serde_json::to_string_pretty(got).unwrap();
        s.push('\n');
        std::fs::write(expected_path, s).unwrap();
        return;
    }
    if !expected_path.exists() {
        failures.push(format!(
            "{}: missing; got\n{}",
            expected_path.display(),
            serde_json::to_string_pretty(got).unwrap()
        ));
        return;
    }
    let want = read_json(expected_path);
    if &want != got {
        failures.push(format!(
            "{}: mismatch\n--- want\n{}\n--- got\n{}",
            expected_path.display(),
            serde_json::to_string_pretty(&want).unwrap(),
            serde_json::to_string_pretty(got).unwrap()
        ));
    }
}

fn finish(failures: Vec<String>, what: &str, count: usize) {
    assert!(count > 0, "no {what} fixtures found");
    assert!(
        failures.is_empty(),
        "{} of {count} {what} fixtures failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn request_fixtures() {
    let mut failures = Vec::new();
    let mut count = 0;
    for t in TARGETS {
        let dir = root().join(t).join("request");
        for (case, input) in cases(&dir, ".in.json") {
            count += 1;
            let req = read_json(&input);
            let options = dir.join(format!("{case}.options.json"));
            let options = options.exists().then(|| read_json(&options));
            let model = req["model"].as_str().unwrap_or("").to_string();
            let body = serde_json::to_vec(&req).unwrap();
            let got = match translate_request(&target(t, options.as_ref()), &body, &model) {
                Ok(r) => {
                    let headers: serde_json::Map<String, Value> = r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect();
                    json!({
                        "path": r.path,
                        "headers": headers,
                        "stream": r.stream,
                        "include_usage": r.include_usage,
                        "body": serde_json::from_slice::<Value>(&r.body).unwrap(),
                    })
                }
                Err(e) => json!({"error": e.to_string()}),
            };
            check_json(&dir.join(format!("{case}.out.json")), &got, &mut failures);
        }
    }
    finish(failures, "request", count);
}

#[test]
fn response_fixtures() {
    let mut failures = Vec::new();
    let mut count = 0;
    for t in TARGETS {
        let dir = root().join(t).join("response");
        for (case, input) in cases(&dir, ".in.json") {
            count += 1;
            let body = std::fs::read(&input).unwrap();
            let got = match translate_response(&target(t, None), &body, &meta()) {
                Ok(b) => serde_json::from_slice(&b).unwrap(),
                Err(e) => json!({"error": e.to_string()}),
            };
            check_json(&dir.join(format!("{case}.out.json")), &got, &mut failures);
        }
    }
    finish(failures, "response", count);
}

#[test]
fn error_fixtures() {
    let mut failures = Vec::new();
    let mut count = 0;
    for t in TARGETS {
        let dir = root().join(t).join("errors");
        for (_case, path) in cases(&dir, ".json") {
            count += 1;
            let f = read_json(&path);
            let model = f["request"]["model"].as_str().unwrap_or("").to_string();
            let body = serde_json::to_vec(&f["request"]).unwrap();
            let got = match translate_request(&target(t, f.get("options")), &body, &model) {
                Ok(_) => json!({"ok": true}),
                Err(TranslateError::Unsupported { field, .. }) => {
                    json!({"kind": "unsupported", "field": field})
                }
                Err(TranslateError::Invalid { field, .. }) => {
                    json!({"kind": "invalid", "field": field})
                }
            };
            if got != f["error"] {
                failures.push(format!(
                    "{}: want {} got {}",
                    path.display(),
                    f["error"],
                    got
                ));
            }
        }
    }
    finish(failures, "error", count);
}

/// The native stream bytes of a case.
fn stream_input(t: &str, dir: &Path, case: &str) -> Option<Vec<u8>> {
    if t == "bedrock" {
        let p = dir.join(format!("{case}.in.json"));
        if !p.exists() {
            return None;
        }
        let frames = read_json(&p);
        let mut bytes = Vec::new();
        for f in frames.as_array().expect("a list of frames") {
            let headers: Vec<(String, String)> = f["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let h: Vec<(&str, HeaderValue)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), HeaderValue::String(v.clone())))
                .collect();
            let payload = serde_json::to_vec(&f["payload"]).unwrap();
            bytes.extend(eventstream::encode_frame(&h, &payload));
        }
        if let Some(cut) = frames_cut(&p) {
            bytes.truncate(bytes.len() - cut);
        }
        Some(bytes)
    } else {
        std::fs::read(dir.join(format!("{case}.in.sse"))).ok()
    }
}

/// A Bedrock case named `*cut*` loses the last 5 bytes (a stream cut inside a frame).
fn frames_cut(p: &Path) -> Option<usize> {
    p.file_name()?.to_str()?.contains("cut").then_some(5)
}

fn run_stream(t: &str, input: &[u8], include_usage: bool, chunks: &[usize]) -> Vec<u8> {
    let mut tr = stream_translator(&target(t, None), meta(), include_usage);
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks[i % chunks.len()].clamp(1, rest.len());
        tr.feed(&rest[..n], &mut out);
        rest = &rest[n..];
        i += 1;
    }
    tr.finish(&mut out);
    out
}

/// A small deterministic generator for chunk sizes.
fn chunkings(len: usize) -> Vec<Vec<usize>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut all = vec![vec![len.max(1)], vec![1], vec![2, 3, 5, 7]];
    for _ in 0..20 {
        all.push((0..64).map(|_| (next() % 97) as usize + 1).collect());
    }
    all
}

#[test]
fn stream_fixtures_any_chunking() {
    let mut failures = Vec::new();
    let mut count = 0;
    for t in TARGETS {
        let dir = root().join(t).join("stream");
        let suffix = if *t == "bedrock" {
            ".in.json"
        } else {
            ".in.sse"
        };
        for (case, _) in cases(&dir, suffix) {
            count += 1;
            let input = stream_input(t, &dir, &case).unwrap();
            let include_usage = !case.contains("no_usage");
            let whole = run_stream(t, &input, include_usage, &[input.len().max(1)]);
            for c in chunkings(input.len()) {
                let got = run_stream(t, &input, include_usage, &c);
                if got != whole {
                    failures.push(format!(
                        "{t}/{case}: chunking {:?} differs:\n{}\n--- vs whole\n{}",
                        &c[..c.len().min(8)],
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&whole)
                    ));
                    break;
                }
            }
            let expected = dir.join(format!("{case}.out.sse"));
            if bless() {
                std::fs::write(&expected, &whole).unwrap();
                continue;
            }
            match std::fs::read(&expected) {
                Ok(want) if want == whole => {}
                Ok(want) => failures.push(format!(
                    "{}: mismatch\n--- want\n{}\n--- got\n{}",
                    expected.display(),
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&whole)
                )),
                Err(_) => failures.push(format!(
                    "{}: missing; got\n{}",
                    expected.display(),
                    String::from_utf8_lossy(&whole)
                )),
            }
            check_sse_shape(&whole, include_usage, &case, &mut failures);
        }
    }
    finish(failures, "stream", count);
}

/// Every output event is `data: <json>` or `data: [DONE]`; a complete stream has the role
/// chunk first, one finish chunk, the usage chunk iff asked, then `[DONE]`.
fn check_sse_shape(out: &[u8], include_usage: bool, case: &str, failures: &mut Vec<String>) {
    let text = String::from_utf8_lossy(out);
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let mut parsed = Vec::new();
    for e in &events {
        let Some(d) = e.strip_prefix("data: ") else {
            failures.push(format!("{case}: event without data: {e}"));
            return;
        };
        parsed.push(d);
    }
    if parsed.last() != Some(&"[DONE]") {
        return; // a cut or failed stream: no shape promise beyond the lines
    }
    let chunks: Vec<Value> = parsed[..parsed.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    if chunks
        .first()
        .map(|c| c["choices"][0]["delta"]["role"].clone())
        != Some(json!("assistant"))
    {
        failures.push(format!("{case}: first chunk is not the role chunk"));
    }
    let finishes = chunks
        .iter()
        .filter(|c| {
            !c["choices"][0]["finish_reason"].is_null()
                && c["choices"].as_array().is_some_and(|a| !a.is_empty())
        })
        .count();
    if finishes != 1 {
        failures.push(format!("{case}: {finishes} finish chunks"));
    }
    let usage_chunks = chunks.iter().filter(|c| c["choices"] == json!([])).count();
    if usage_chunks != usize::from(include_usage) {
        failures.push(format!(
            "{case}: {usage_chunks} usage chunks with include_usage={include_usage}"
        ));
    }
}
