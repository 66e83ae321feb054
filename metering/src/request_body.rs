//! What the gateway reads from a request body: the model asked for, whether the answer
//! streams, and the output cap (for budgets). The body is forwarded unchanged, except that a
//! streamed OpenAI chat completion that did not ask for usage gets
//! `stream_options.include_usage` (else the stream reports none and goes unmetered); the
//! usage chunk that adds is then taken out of the answer ([`UsageChunkFilter`]), so a client
//! that never asked for it sees the stream it expects.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BodyFacts {
    pub model: Option<String>,
    pub stream: bool,
    /// `max_tokens`, `max_completion_tokens`, `max_output_tokens` or
    /// `generationConfig.maxOutputTokens`, whichever the request carries.
    pub max_output_tokens: Option<u64>,
    /// How many answers are asked for (`n`, `candidateCount`); each can reach the cap.
    pub choices: u64,
    /// The body with `include_usage` added, when it had to be.
    pub rewritten: Option<Vec<u8>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Fields {
    model: Option<String>,
    stream: Option<bool>,
    #[serde(rename = "stream_options")]
    stream_options: Option<Value>,
    #[serde(rename = "max_tokens")]
    max_tokens: Option<u64>,
    #[serde(rename = "max_completion_tokens")]
    max_completion_tokens: Option<u64>,
    #[serde(rename = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    #[serde(alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
    inference_config: Option<InferenceConfig>,
    n: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    #[serde(alias = "candidate_count")]
    candidate_count: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    max_tokens: Option<u64>,
}

/// The body is not a JSON object the gateway can read (or repeats a field): it cannot be
/// checked against a model list or a budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// Reads `body`; `openai_chat` says whether it is an OpenAI(-compatible) chat completion,
/// the one API whose streams carry usage only on request. Strict: a repeated `model` or a
/// field of the wrong type makes the body [`Unreadable`] rather than silently unchecked.
pub fn read(body: &[u8], openai_chat: bool) -> Result<BodyFacts, Unreadable> {
    let f = serde_json::from_slice::<Fields>(body).map_err(|e| Unreadable(e.to_string()))?;
    let stream = f.stream.unwrap_or(false);
    let include_usage = f
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool);
    let rewritten = (openai_chat && stream && include_usage != Some(true))
        .then(|| with_include_usage(body, f.stream_options.is_none()))
        .flatten();
    let (gen_max, candidates) = f
        .generation_config
        .map(|g| (g.max_output_tokens, g.candidate_count))
        .unwrap_or_default();
    Ok(BodyFacts {
        model: f.model,
        stream,
        max_output_tokens: f
            .max_tokens
            .or(f.max_completion_tokens)
            .or(f.max_output_tokens)
            .or(gen_max)
            .or(f.inference_config.and_then(|c| c.max_tokens)),
        choices: f.n.or(candidates).unwrap_or(1).max(1),
        rewritten,
    })
}

/// The body with `stream_options.include_usage = true`. Without `stream_options` the field
/// is inserted after the opening brace, leaving every other byte as sent; a body that has
/// none (`absent`: not a value, and no such key anywhere) is not parsed again for that.
fn with_include_usage(body: &[u8], absent: bool) -> Option<Vec<u8>> {
    let insert = |body: &[u8]| {
        let start = body.iter().position(|b| *b == b'{')?;
        let mut out = Vec::with_capacity(body.len() + 40);
        out.extend_from_slice(&body[..=start]);
        out.extend_from_slice(br#""stream_options":{"include_usage":true},"#);
        out.extend_from_slice(&body[start + 1..]);
        Some(out)
    };
    if absent && !contains(body, br#""stream_options""#) {
        return insert(body);
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    if !obj.contains_key("stream_options") {
        return insert(body);
    }
    match obj.get_mut("stream_options") {
        Some(Value::Object(opts)) => {
            opts.insert("include_usage".into(), Value::Bool(true));
        }
        // `null` or something odd: replace it with what we need.
        _ => {
            obj.insert(
                "stream_options".into(),
                serde_json::json!({"include_usage": true}),
            );
        }
    }
    serde_json::to_vec(&v).ok()
}

/// Takes the usage-only chunk (`"choices":[]` with a `usage`) out of an OpenAI chat SSE
/// stream whose client did not ask for it. Complete events pass at once; only a partial
/// event at the end of a chunk waits for the rest of itself.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    pending: Vec<u8>,
}

impl UsageChunkFilter {
    /// The bytes to send on for `chunk` (all of them at end of stream); `None`: the chunk
    /// as it is (whole events, none to take out: the common case, with no copy).
    pub fn filter(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            let mut start = 0;
            while let Some(end) = event_end(&chunk[start..]) {
                if is_usage_only(&chunk[start..start + end]) {
                    break;
                }
                start += end;
            }
            if start == chunk.len() || (end_of_stream && event_end(&chunk[start..]).is_none()) {
                return None;
            }
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        let mut start = 0;
        while let Some(end) = event_end(&self.pending[start..]) {
            let event = &self.pending[start..start + end];
            if !is_usage_only(event) {
                out.extend_from_slice(event);
            }
            start += end;
        }
        self.pending.drain(..start);
        if end_of_stream {
            out.append(&mut self.pending);
        }
        Some(out)
    }
}

/// Length of the first complete SSE event (through its blank line), if there is one.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut line_start = 0;
    while i < buf.len() {
        let eol = match buf[i] {
            b'\n' => 1,
            b'\r' if buf.get(i + 1) == Some(&b'\n') => 2,
            b'\r' if i + 1 < buf.len() => 1,
            b'\r' => return None, // a CR at the end may be half of CRLF
            _ => {
                i += 1;
                continue;
            }
        };
        let blank = i == line_start;
        i += eol;
        line_start = i;
        if blank {
            return Some(i);
        }
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `"usage"` is followed by `:` and an object somewhere (whitespace allowed).
fn has_usage_object(event: &[u8]) -> bool {
    const KEY: &[u8] = br#""usage""#;
    let mut rest = event;
    while let Some(i) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[i + KEY.len()..];
        let mut after = rest.iter().copied().skip_while(u8::is_ascii_whitespace);
        if after.next() == Some(b':') && after.find(|b| !b.is_ascii_whitespace()) == Some(b'{') {
            return true;
        }
    }
    false
}

fn is_usage_only(event: &[u8]) -> bool {
    // This runs on every chunk of the stream: only one with a usage object is parsed.
    if !has_usage_object(event) {
        return false;
    }
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    let Ok(v) = serde_json::from_str::<Value>(&data) else {
        return false;
    };
    v.get("choices")
        .and_then(Value::as_array)
        .is_some_and(|c| c.is_empty())
        && v.get("usage").is_some_and(|u| !u.is_null())
}

#[cfg(test)]
mod tests;
