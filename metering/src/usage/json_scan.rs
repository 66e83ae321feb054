//! A streaming JSON scanner that keeps only the values it was asked for.
//!
//! A response body can be megabytes of generated text while the usage is a few hundred
//! bytes, so the body is never held: the scanner walks it byte by byte, remembers only the
//! keys on the way down to the current value, and copies out (up to [`MAX_CAPTURE_BYTES`])
//! the values whose path was asked for. Captured values are parsed with serde_json once
//! they are complete. Until they are taken, only the last value of each path is kept, so
//! memory stays bounded by the number of paths whatever the document holds (every format
//! here wants the last usage, or any `finishReason`).
//!
//! Paths are object keys from the top-level object down, with `"*"` for "any element of
//! this array": `["candidates", "*", "finishReason"]`. When the top-level value is an
//! array (Gemini's `streamGenerateContent` without `alt=sse`), paths are matched inside
//! each element, as if every element were a document of its own.
//!
//! The scanner checks structure (brackets, colons, commas) but not the contents of
//! numbers and literals; that is serde_json's job on the captured values.

use serde_json::Value;

/// The largest value copied out; usage objects are far smaller.
pub const MAX_CAPTURE_BYTES: usize = 64 * 1024;
/// Deeper nesting than this is refused (the stack is the scanner's only growing state).
pub const MAX_DEPTH: usize = 512;
/// Keys longer than this never match a wanted path (no wanted key is that long).
const MAX_KEY_BYTES: usize = 128;

/// A wanted path: object keys, `"*"` for an array element.
pub type Path = &'static [&'static str];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("invalid JSON at byte {offset}: {reason}")]
    Syntax { offset: u64, reason: &'static str },
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: u64 },
    #[error("the value of `{path}` is larger than {MAX_CAPTURE_BYTES} bytes")]
    ValueTooLarge { path: String },
    #[error("the value of `{path}` is not valid JSON: {reason}")]
    BadValue { path: String, reason: String },
}

/// An open object or array.
#[derive(Debug)]
struct Container {
    is_object: bool,
    /// The key whose value is being read (objects only), if it can match a path.
    key: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value is expected; `close_ok` right after `[` (empty array).
    Value { close_ok: bool },
    /// Inside a string; `is_key` for object keys.
    Str { is_key: bool, escaped: bool },
    /// Inside a number or `true`/`false`/`null`.
    Scalar,
    /// After a value inside a container: `,` or the closing bracket.
    AfterValue,
    /// A key is expected; `close_ok` right after `{` (empty object).
    Key { close_ok: bool },
    /// After a key: `:`.
    Colon,
    /// The top-level value is complete; anything after it is ignored.
    Done,
    /// A syntax error; nothing more is read.
    Failed,
}

#[derive(Debug)]
struct Capture<K> {
    field: K,
    path: Path,
    /// The stack depth the value started at; it ends when the stack is back there.
    depth: usize,
    buf: Vec<u8>,
    too_large: bool,
}

#[derive(Debug)]
pub struct JsonScanner<K: Copy + PartialEq + 'static> {
    paths: &'static [(K, Path)],
    longest_path: usize,
    state: State,
    stack: Vec<Container>,
    top_is_array: bool,
    /// The key being read, while it can still match.
    key: Vec<u8>,
    key_wanted: bool,
    capture: Option<Capture<K>>,
    captured: Vec<(K, Value)>,
    offset: u64,
    error: Option<ScanError>,
}

impl<K: Copy + PartialEq + 'static> JsonScanner<K> {
    pub fn new(paths: &'static [(K, Path)]) -> Self {
        JsonScanner {
            paths,
            longest_path: paths.iter().map(|(_, p)| p.len()).max().unwrap_or(0),
            state: State::Value { close_ok: false },
            stack: Vec::new(),
            top_is_array: false,
            key: Vec::new(),
            key_wanted: false,
            capture: None,
            captured: Vec::new(),
            offset: 0,
            error: None,
        }
    }

    /// Starts over for a new document, keeping the allocations.
    pub fn reset(&mut self) {
        self.state = State::Value { close_ok: false };
        self.stack.clear();
        self.top_is_array = false;
        self.key.clear();
        self.key_wanted = false;
        self.capture = None;
        self.captured.clear();
        self.offset = 0;
        self.error = None;
    }

    /// Whether the top-level value has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The first problem met, if any. A syntax error stops the scan; an oversized or
    /// unparsable captured value only loses that value.
    pub fn error(&self) -> Option<&ScanError> {
        self.error.as_ref()
    }

    /// The values captured since the last call: the last one of each path, in the order
    /// their paths were first met.
    pub fn take_captured(&mut self) -> Vec<(K, Value)> {
        std::mem::take(&mut self.captured)
    }

    pub fn feed(&mut self, input: &[u8]) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done | State::Failed => return,
                State::Str {
                    is_key,
                    escaped: false,
                } => {
                    // Fast path: copy the run of plain string bytes at once.
                    let rest = &input[i..];
                    let run = rest
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\')
                        .unwrap_or(rest.len());
                    self.take_string_bytes(&rest[..run], is_key);
                    i += run;
                    self.offset += run as u64;
                    if i < input.len() {
                        self.step(input[i]);
                        i += 1;
                        self.offset += 1;
                    }
                }
                _ => {
                    // A scalar ends at the byte after it, which is then read again.
                    let consumed = self.step(input[i]);
                    if consumed {
                        i += 1;
                        self.offset += 1;
                    }
                }
            }
        }
    }

    /// Reads one byte; returns false when the byte must be read again in the new state.
    fn step(&mut self, b: u8) -> bool {
        match self.state {
            State::Done | State::Failed => {}
            State::Str { is_key, escaped } => {
                if escaped {
                    self.take_string_bytes(&[b], is_key);
                    self.state = State::Str {
                        is_key,
                        escaped: false,
                    };
                } else if b == b'\\' {
                    self.take_string_bytes(&[b], is_key);
                    self.state = State::Str {
                        is_key,
                        escaped: true,
                    };
                } else if b == b'"' {
                    self.capture_bytes(&[b]);
                    if is_key {
                        self.end_key();
                        self.state = State::Colon;
                    } else {
                        self.end_value();
                    }
                } else {
                    self.take_string_bytes(&[b], is_key);
                }
            }
            State::Scalar => {
                if is_whitespace(b) || matches!(b, b',' | b']' | b'}') {
                    self.end_value();
                    return false;
                }
                self.capture_bytes(&[b]);
            }
            _ if is_whitespace(b) => {}
            State::Value { close_ok } => {
                if close_ok && b == b']' {
                    self.close_container(b, false);
                } else {
                    self.start_value(b);
                }
            }
            State::AfterValue => {
                let in_object = self.stack.last().is_some_and(|c| c.is_object);
                match b {
                    b',' => {
                        self.capture_bytes(&[b]);
                        self.state = if in_object {
                            State::Key { close_ok: false }
                        } else {
                            State::Value { close_ok: false }
                        };
                    }
                    b'}' if in_object => self.close_container(b, true),
                    b']' if !in_object => self.close_container(b, false),
                    _ => self.fail("expected ',' or a closing bracket"),
                }
            }
            State::Key { close_ok } => match b {
                b'"' => {
                    self.capture_bytes(&[b]);
                    self.key.clear();
                    self.key_wanted =
                        self.capture.is_none() && self.relative_depth() <= self.longest_path;
                    self.state = State::Str {
                        is_key: true,
                        escaped: false,
                    };
                }
                b'}' if close_ok => self.close_container(b, true),
                _ => self.fail("expected an object key"),
            },
            State::Colon => {
                if b == b':' {
                    self.capture_bytes(&[b]);
                    self.state = State::Value { close_ok: false };
                } else {
                    self.fail("expected ':'");
                }
            }
        }
        true
    }

    fn start_value(&mut self, b: u8) {
        if self.capture.is_none() {
            if let Some(&(field, path)) = self.wanted_here() {
                self.capture = Some(Capture {
                    field,
                    path,
                    depth: self.stack.len(),
                    buf: Vec::new(),
                    too_large: false,
                });
            }
        }
        self.capture_bytes(&[b]);
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    self.error.get_or_insert(ScanError::TooDeep {
                        offset: self.offset,
                    });
                    self.state = State::Failed;
                    return;
                }
                if self.stack.is_empty() && b == b'[' {
                    self.top_is_array = true;
                }
                self.stack.push(Container {
                    is_object: b == b'{',
                    key: None,
                });
                self.state = if b == b'{' {
                    State::Key { close_ok: true }
                } else {
                    State::Value { close_ok: true }
                };
            }
            b'"' => {
                self.state = State::Str {
                    is_key: false,
                    escaped: false,
                }
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.state = State::Scalar,
            _ => self.fail("expected a value"),
        }
    }

    fn close_container(&mut self, b: u8, object: bool) {
        debug_assert_eq!(self.stack.last().map(|c| c.is_object), Some(object));
        self.stack.pop();
        self.capture_bytes(&[b]);
        self.end_value();
    }

    /// A value just ended at the current depth.
    fn end_value(&mut self) {
        if self
            .capture
            .as_ref()
            .is_some_and(|c| c.depth == self.stack.len())
        {
            if let Some(c) = self.capture.take() {
                self.finish_capture(c);
            }
        }
        self.state = if self.stack.is_empty() {
            State::Done
        } else {
            State::AfterValue
        };
    }

    fn finish_capture(&mut self, c: Capture<K>) {
        if c.too_large {
            self.error.get_or_insert(ScanError::ValueTooLarge {
                path: c.path.join("."),
            });
            return;
        }
        match serde_json::from_slice::<Value>(&c.buf) {
            Ok(v) => match self.captured.iter_mut().find(|(f, _)| *f == c.field) {
                Some(slot) => slot.1 = v,
                None => self.captured.push((c.field, v)),
            },
            Err(e) => {
                self.error.get_or_insert(ScanError::BadValue {
                    path: c.path.join("."),
                    reason: e.to_string(),
                });
            }
        }
    }

    fn end_key(&mut self) {
        let key = if self.key_wanted && self.key.len() <= MAX_KEY_BYTES {
            unescape_key(&self.key)
        } else {
            None
        };
        if let Some(top) = self.stack.last_mut() {
            top.key = key;
        }
        self.key_wanted = false;
    }

    fn take_string_bytes(&mut self, bytes: &[u8], is_key: bool) {
        if is_key && self.key_wanted {
            if self.key.len() + bytes.len() <= MAX_KEY_BYTES + 1 {
                self.key.extend_from_slice(bytes);
            } else {
                self.key_wanted = false;
            }
        }
        self.capture_bytes(bytes);
    }

    fn capture_bytes(&mut self, bytes: &[u8]) {
        if let Some(c) = &mut self.capture {
            if c.too_large {
                return;
            }
            if c.buf.len() + bytes.len() > MAX_CAPTURE_BYTES {
                c.too_large = true;
                c.buf = Vec::new();
            } else {
                c.buf.extend_from_slice(bytes);
            }
        }
    }

    /// Depth below the document root (inside each element when the top is an array).
    fn relative_depth(&self) -> usize {
        self.stack.len() - usize::from(self.top_is_array && !self.stack.is_empty())
    }

    /// The wanted path, if any, that names the value about to start.
    fn wanted_here(&self) -> Option<&'static (K, Path)> {
        let skip = usize::from(self.top_is_array && !self.stack.is_empty());
        let here = &self.stack[skip..];
        if here.is_empty() || here.len() > self.longest_path {
            return None;
        }
        self.paths.iter().find(|(_, path)| {
            path.len() == here.len()
                && path.iter().zip(here).all(|(want, c)| match &c.key {
                    _ if !c.is_object => *want == "*",
                    Some(key) => want.as_bytes() == key.as_slice(),
                    None => false,
                })
        })
    }

    fn fail(&mut self, reason: &'static str) {
        self.error.get_or_insert(ScanError::Syntax {
            offset: self.offset,
            reason,
        });
        self.state = State::Failed;
    }
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The key's bytes, decoding escapes when there are any (`"us\u0061ge"` is `usage`).
fn unescape_key(raw: &[u8]) -> Option<Vec<u8>> {
    if !raw.contains(&b'\\') {
        return Some(raw.to_vec());
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .ok()
        .map(String::into_bytes)
}

#[cfg(test)]
mod tests;
