//! Server-sent events: whole events read from the native stream (WHATWG rules,
//! providers.md §7, parsed by metering's [`SseParser`]) and OpenAI's `data:` lines written.
//! Only the current event is held (the translators need it whole to parse its JSON), never
//! the stream.

use aigw_metering::usage::sse::{SseParser, SseSink};

/// An event larger than this is refused (provider events are kilobytes).
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Whole events over metering's incremental parser ([`SseParser`], the one SSE reader of
/// the gateway), which hands data over in pieces; the translators need each event's JSON
/// whole, so this holds the current event's data (and only it).
#[derive(Debug, Default)]
pub struct SseDecoder {
    parser: SseParser,
    event: Event,
}

#[derive(Debug, Default)]
struct Event {
    data: Vec<u8>,
    too_large: bool,
}

/// One dispatched event.
pub struct SseEvent<'a> {
    /// The `event:` value, empty when there was none.
    pub event: &'a str,
    pub data: &'a [u8],
}

struct Sink<'a, F> {
    event: &'a mut Event,
    on_event: &'a mut F,
}

impl<F: FnMut(SseEvent<'_>)> SseSink for Sink<'_, F> {
    fn data(&mut self, piece: &[u8]) {
        if self.event.too_large {
            return;
        }
        if self.event.data.len() + piece.len() > MAX_EVENT_BYTES {
            self.event.too_large = true;
            self.event.data = Vec::new();
            return;
        }
        self.event.data.extend_from_slice(piece);
    }

    fn dispatch(&mut self, event_type: &[u8]) {
        if !self.event.too_large {
            (self.on_event)(SseEvent {
                event: std::str::from_utf8(event_type).unwrap_or(""),
                data: &self.event.data,
            });
        }
        self.event.data.clear();
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an event grew past [`MAX_EVENT_BYTES`]; the decoder then stops.
    pub fn too_large(&self) -> bool {
        self.event.too_large
    }

    pub fn feed(&mut self, input: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        let mut sink = Sink {
            event: &mut self.event,
            on_event,
        };
        self.parser.feed(input, &mut sink);
    }

    /// At the end of the body: an unterminated last line and an event not followed by a
    /// blank line are still read (lenient; a cut JSON payload fails to parse anyway).
    pub fn finish(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.parser.has_pending_event() {
            self.feed(b"\n\n", on_event);
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
