use super::*;

/// Collects whole events: (type, data).
#[derive(Default)]
struct Events {
    data: Vec<u8>,
    events: Vec<(String, String)>,
}

impl SseSink for Events {
    fn data(&mut self, piece: &[u8]) {
        self.data.extend_from_slice(piece);
    }
    fn dispatch(&mut self, event_type: &[u8]) {
        self.events.push((
            String::from_utf8_lossy(event_type).into_owned(),
            String::from_utf8(std::mem::take(&mut self.data)).unwrap(),
        ));
    }
}

fn parse_pieces(pieces: &[&[u8]]) -> Vec<(String, String)> {
    let mut p = SseParser::new();
    let mut sink = Events::default();
    for piece in pieces {
        p.feed(piece, &mut sink);
    }
    sink.events
}

fn parse(text: &str) -> Vec<(String, String)> {
    let b = text.as_bytes();
    let whole = parse_pieces(&[b]);
    for at in 0..=b.len() {
        assert_eq!(parse_pieces(&[&b[..at], &b[at..]]), whole, "split at {at}");
    }
    let bytes: Vec<&[u8]> = b.chunks(1).collect();
    assert_eq!(parse_pieces(&bytes), whole);
    whole
}

fn ev(t: &str, d: &str) -> (String, String) {
    (t.into(), d.into())
}

#[test]
fn whatwg_rules() {
    let text = ": comment\ndata: a\ndata:b\ndata:  c\n\nevent: x\ndata\n\nid: 1\nretry: 5\nfoo: bar\n\n\n\nevent: only-type\n\n";
    assert_eq!(parse(text), vec![ev("", "a\nb\n c"), ev("x", "")]);
}

#[test]
fn line_endings_crlf_lf_cr() {
    let want = vec![ev("e", "1\n2"), ev("", "3")];
    assert_eq!(
        parse("event: e\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n"),
        want
    );
    assert_eq!(parse("event: e\rdata: 1\rdata: 2\r\rdata: 3\r\r"), want);
    assert_eq!(parse("event: e\ndata: 1\r\ndata: 2\r\rdata: 3\n\r\n"), want);
}

#[test]
fn bom_is_skipped_only_at_the_start() {
    assert_eq!(parse("\u{FEFF}data: x\n\n"), vec![ev("", "x")]);
    // Not a BOM: the bytes are part of a field name that is not `data`.
    assert_eq!(parse("\u{FEFF}\u{FEFF}data: x\n\n"), vec![]);
}

#[test]
fn an_event_without_its_blank_line_is_pending() {
    let mut p = SseParser::new();
    let mut sink = Events::default();
    p.feed(b"data: {\"a\":1}\n", &mut sink);
    assert!(sink.events.is_empty());
    assert!(p.pending_has_data());
    p.feed(b"\n", &mut sink);
    assert_eq!(sink.events, vec![ev("", "{\"a\":1}")]);
    assert!(!p.has_pending_event());
}

#[test]
fn long_event_types_are_cut_and_long_names_ignored() {
    let long = "e".repeat(100);
    let got = parse(&format!(
        "event: {long}\ndata: 1\n\n{}: 2\n\n",
        "data".repeat(10)
    ));
    assert_eq!(got, vec![ev(&"e".repeat(MAX_EVENT_TYPE), "1")]);
}
