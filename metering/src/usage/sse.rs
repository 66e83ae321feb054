//! Server-sent events, parsed incrementally by the WHATWG rules
//! (html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation), the
//! same rules as the OpenAI SDK's `SSEDecoder`:
//!
//! - lines end with CRLF, LF or CR (a CRLF split across two chunks is still one ending);
//! - a line starting with `:` is a comment;
//! - `field:value` loses one leading space from the value; a line without `:` is a field
//!   with an empty value;
//! - `data` lines of one event join with `\n`; a blank line dispatches the event;
//! - a leading UTF-8 BOM is skipped.
//!
//! Nothing of an event is buffered here: data arrives at the [`SseSink`] in pieces as it
//! is read (the `\n` between data lines is one of the pieces), so the caller decides how
//! much to keep. Only the field name (a few bytes) and the event type (capped) are held.

/// Field names we act on are short; a longer one is some other field.
const MAX_FIELD_NAME: usize = 16;
/// `event:` values longer than this are cut (event types are short words).
pub const MAX_EVENT_TYPE: usize = 64;
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Receives one event at a time.
pub trait SseSink {
    /// A piece of the current event's data.
    fn data(&mut self, piece: &[u8]);
    /// A blank line ended an event that had at least one `data` line.
    fn dispatch(&mut self, event_type: &[u8]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Nothing read on this line yet.
    Start,
    /// Reading the field name.
    Name,
    /// Just after the `:`; one space is dropped here.
    ValueStart(Field),
    Value(Field),
    Comment,
}

#[derive(Debug)]
pub struct SseParser {
    line: Line,
    /// The previous byte was CR: an LF right after it belongs to the same line ending.
    after_cr: bool,
    /// How many bytes of the BOM have matched at the start of the stream (3 = done).
    bom_matched: usize,
    name: Vec<u8>,
    name_too_long: bool,
    event_type: Vec<u8>,
    data_lines: u32,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        SseParser {
            line: Line::Start,
            after_cr: false,
            bom_matched: 0,
            name: Vec::with_capacity(MAX_FIELD_NAME),
            name_too_long: false,
            event_type: Vec::new(),
            data_lines: 0,
        }
    }

    /// Whether an event has begun (data or a partial line) but not been dispatched.
    pub fn has_pending_event(&self) -> bool {
        self.data_lines > 0 || self.line != Line::Start
    }

    /// Whether the pending event has at least one data line.
    pub fn pending_has_data(&self) -> bool {
        self.data_lines > 0
    }

    pub fn feed(&mut self, mut input: &[u8], sink: &mut impl SseSink) {
        while self.bom_matched < BOM.len() {
            let Some((&b, rest)) = input.split_first() else {
                return;
            };
            if b == BOM[self.bom_matched] {
                self.bom_matched += 1;
                input = rest;
            } else {
                // Not a BOM after all: the bytes matched so far are content.
                let matched = self.bom_matched;
                self.bom_matched = BOM.len();
                for &m in &BOM[..matched] {
                    self.byte(m, sink);
                }
            }
        }
        let mut i = 0;
        while i < input.len() {
            if let Line::Value(Field::Data) = self.line {
                // Fast path: hand over the rest of the data line at once.
                let rest = &input[i..];
                let run = rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                if run > 0 {
                    sink.data(&rest[..run]);
                    self.after_cr = false;
                    i += run;
                    continue;
                }
            }
            self.byte(input[i], sink);
            i += 1;
        }
    }

    fn byte(&mut self, b: u8, sink: &mut impl SseSink) {
        if std::mem::take(&mut self.after_cr) && b == b'\n' {
            return;
        }
        if b == b'\r' || b == b'\n' {
            self.after_cr = b == b'\r';
            self.end_line(sink);
            return;
        }
        match self.line {
            Line::Start if b == b':' => self.line = Line::Comment,
            Line::Start => {
                self.name.clear();
                self.name_too_long = false;
                self.line = Line::Name;
                self.name_byte(b);
            }
            Line::Name if b == b':' => {
                let field = self.field();
                self.begin_value(field, sink);
                self.line = Line::ValueStart(field);
            }
            Line::Name => self.name_byte(b),
            Line::ValueStart(field) => {
                self.line = Line::Value(field);
                if b != b' ' {
                    self.value_byte(field, b, sink);
                }
            }
            Line::Value(field) => self.value_byte(field, b, sink),
            Line::Comment => {}
        }
    }

    fn name_byte(&mut self, b: u8) {
        if self.name.len() < MAX_FIELD_NAME {
            self.name.push(b);
        } else {
            self.name_too_long = true;
        }
    }

    fn field(&self) -> Field {
        match self.name.as_slice() {
            _ if self.name_too_long => Field::Other,
            b"data" => Field::Data,
            b"event" => Field::Event,
            _ => Field::Other,
        }
    }

    /// A field's value begins: data lines after the first are preceded by `\n`.
    fn begin_value(&mut self, field: Field, sink: &mut impl SseSink) {
        match field {
            Field::Data => {
                if self.data_lines > 0 {
                    sink.data(b"\n");
                }
                self.data_lines = self.data_lines.saturating_add(1);
            }
            Field::Event => self.event_type.clear(),
            Field::Other => {}
        }
    }

    fn value_byte(&mut self, field: Field, b: u8, sink: &mut impl SseSink) {
        match field {
            Field::Data => sink.data(&[b]),
            Field::Event if self.event_type.len() < MAX_EVENT_TYPE => self.event_type.push(b),
            Field::Event | Field::Other => {}
        }
    }

    fn end_line(&mut self, sink: &mut impl SseSink) {
        match self.line {
            Line::Start => {
                if self.data_lines > 0 {
                    sink.dispatch(&self.event_type);
                }
                self.data_lines = 0;
                self.event_type.clear();
            }
            // A line with no colon is a field with an empty value.
            Line::Name => {
                let field = self.field();
                self.begin_value(field, sink);
            }
            Line::ValueStart(_) | Line::Value(_) | Line::Comment => {}
        }
        self.line = Line::Start;
    }
}

#[cfg(test)]
mod tests;
