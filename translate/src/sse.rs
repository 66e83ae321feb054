//! Incremental server-sent-events reading (WHATWG rules, providers.md §7) and writing.
//!
//! Lines end with CRLF, LF or CR, also when the CRLF is split across two reads; `:` starts
//! a comment; `field:value` loses one leading space; `data` lines join with `\n`; a blank
//! line dispatches the event. Only the current event is held (the translators need it
//! whole to parse its JSON), never the stream.

/// An event larger than this is refused (provider events are kilobytes).
pub const MAX_EVENT_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    after_cr: bool,
    bom_done: bool,
    event: String,
    data: Vec<u8>,
    has_data: bool,
    too_large: bool,
}

/// One dispatched event.
pub struct SseEvent<'a> {
    /// The `event:` value, empty when there was none.
    pub event: &'a str,
    pub data: &'a [u8],
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an event grew past [`MAX_EVENT_BYTES`]; the decoder then stops.
    pub fn too_large(&self) -> bool {
        self.too_large
    }

    pub fn feed(&mut self, mut input: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if !self.bom_done {
            // The BOM may only be split across reads at the very start; keep it simple:
            // strip it when the first read starts with it.
            if input.is_empty() {
                return;
            }
            if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
                input = &input[3..];
            }
            self.bom_done = true;
        }
        while !input.is_empty() && !self.too_large {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match input.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    self.line.extend_from_slice(&input[..i]);
                    self.after_cr = input[i] == b'\r';
                    input = &input[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line, on_event);
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(input);
                    input = &[];
                }
            }
            if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
                self.too_large = true;
                self.line = Vec::new();
                self.data = Vec::new();
            }
        }
    }

    /// At the end of the body: an unterminated last line and an event not followed by a
    /// blank line are still read (lenient; a cut JSON payload fails to parse anyway).
    pub fn finish(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.too_large {
            return;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, on_event);
        }
        self.process_line(b"", on_event);
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            if self.has_data {
                if self.data.last() == Some(&b'\n') {
                    self.data.pop();
                }
                on_event(SseEvent {
                    event: &self.event,
                    data: &self.data,
                });
            }
            self.data.clear();
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => {
                self.event = String::from_utf8_lossy(value).into_owned();
            }
            _ => {}
        }
    }
}

/// Appends `data: <json>\n\n`.
pub fn write_data(out: &mut Vec<u8>, value: &serde_json::Value) {
    out.extend_from_slice(b"data: ");
    // Serializing a Value cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

/// Appends `data: [DONE]\n\n`.
pub fn write_done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut d = SseDecoder::new();
        let mut got = Vec::new();
        let mut sink = |e: SseEvent<'_>| {
            got.push((
                e.event.to_string(),
                String::from_utf8_lossy(e.data).into_owned(),
            ))
        };
        for c in chunks {
            d.feed(c, &mut sink);
        }
        d.finish(&mut sink);
        got
    }

    #[test]
    fn line_endings_split_and_mixed() {
        let want = vec![
            ("a".to_string(), "1".to_string()),
            (String::new(), "2\n3".to_string()),
        ];
        assert_eq!(
            events(&[b"event: a\r", b"\ndata: 1\r\n\r\ndata:2\rdata: 3\n\n"]),
            want
        );
        assert_eq!(events(&[b"event: a\ndata: 1\n\ndata:2\ndata: 3\n\n"]), want);
    }

    #[test]
    fn comments_bom_and_unterminated_tail() {
        assert_eq!(
            events(&[b"\xEF\xBB\xBF: ping\ndata: x\n\ndata: {\"a\":1}"]),
            vec![
                (String::new(), "x".to_string()),
                (String::new(), "{\"a\":1}".to_string())
            ]
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert_eq!(events(&[b"event: ping\n\n"]), vec![]);
    }
}
