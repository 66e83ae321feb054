use super::*;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Usage,
    Model,
    Reason,
    Nested,
}

const PATHS: &[(F, Path)] = &[
    (F::Usage, &["usage"]),
    (F::Model, &["model"]),
    (F::Reason, &["candidates", "*", "finishReason"]),
    (F::Nested, &["response", "usage"]),
];

fn scan_pieces(pieces: &[&[u8]]) -> (Vec<(F, Value)>, bool, Option<ScanError>) {
    let mut s = JsonScanner::new(PATHS);
    let mut got: Vec<(F, Value)> = Vec::new();
    for p in pieces {
        s.feed(p);
        // Keep the last value per path across takes too, so any split compares equal.
        for (field, value) in s.take_captured() {
            match got.iter_mut().find(|(f, _)| *f == field) {
                Some(slot) => slot.1 = value,
                None => got.push((field, value)),
            }
        }
    }
    (got, s.is_done(), s.error().cloned())
}

/// Whole, at every split, and byte by byte: the same answer.
fn scan(text: &str) -> (Vec<(F, Value)>, bool, Option<ScanError>) {
    let b = text.as_bytes();
    let whole = scan_pieces(&[b]);
    for at in 0..=b.len() {
        assert_eq!(scan_pieces(&[&b[..at], &b[at..]]), whole, "split at {at}");
    }
    let bytes: Vec<&[u8]> = b.chunks(1).collect();
    assert_eq!(scan_pieces(&bytes), whole);
    whole
}

#[test]
fn captures_only_wanted_top_level_values() {
    let (got, done, err) = scan(
        r#" {"id":"x","model":"m-1","choices":[{"usage":{"no":1}}],"text":"\"usage\": {\"a\":1}","usage":{"a":[1,2,{"b":null}],"c":"d\\"},"z":true} "#,
    );
    assert!(done);
    assert_eq!(err, None);
    assert_eq!(
        got,
        vec![
            (F::Model, json!("m-1")),
            (F::Usage, json!({"a":[1,2,{"b":null}],"c":"d\\"}))
        ]
    );
}

#[test]
fn nested_paths_and_array_wildcards() {
    let (got, done, _) = scan(
        r#"{"candidates":[{"finishReason":"STOP"},{"x":1},{"finishReason":"MAX_TOKENS"}],"response":{"usage":{"n":1},"model":"ignored"}}"#,
    );
    assert!(done);
    // Only the last value of a path is kept until taken.
    assert_eq!(
        got,
        vec![
            (F::Reason, json!("MAX_TOKENS")),
            (F::Nested, json!({"n":1}))
        ]
    );
}

#[test]
fn top_level_array_elements_are_documents() {
    let (got, done, _) =
        scan(r#"[{"usage":{"n":1},"model":"a"},{"usage":{"n":2}}, {"deep":{"usage":3}}]"#);
    assert!(done);
    assert_eq!(
        got,
        vec![(F::Usage, json!({"n":2})), (F::Model, json!("a"))]
    );
    // Taken piece by piece, every value is seen.
    let mut s = JsonScanner::new(PATHS);
    let mut seen = Vec::new();
    for piece in [&br#"[{"usage":{"n":1}},"#[..], br#"{"usage":{"n":2}}]"#] {
        s.feed(piece);
        seen.extend(s.take_captured());
    }
    assert_eq!(
        seen,
        vec![(F::Usage, json!({"n":1})), (F::Usage, json!({"n":2}))]
    );
}

#[test]
fn scalars_and_empty_containers() {
    let (got, done, err) = scan(r#"{"a":[],"b":{},"usage":-12.5e3,"model":null,"c":[[],{}]}"#);
    assert!(done);
    assert_eq!(err, None);
    assert_eq!(
        got,
        vec![(F::Usage, json!(-12500.0)), (F::Model, Value::Null)]
    );
}

#[test]
fn escaped_keys_match() {
    let (got, _, _) = scan(r#"{"us\u0061ge":1}"#);
    assert_eq!(got, vec![(F::Usage, json!(1))]);
}

#[test]
fn syntax_errors_stop_the_scan() {
    let (got, done, err) = scan(r#"{"model":"a" "usage":1}"#);
    assert_eq!(got, vec![(F::Model, json!("a"))]);
    assert!(!done);
    assert!(matches!(err, Some(ScanError::Syntax { offset: 13, .. })));
    assert!(matches!(scan("[DONE]").2, Some(ScanError::Syntax { .. })));
    assert!(matches!(scan("}").2, Some(ScanError::Syntax { .. })));
}

#[test]
fn a_truncated_document_is_not_done() {
    let (got, done, err) = scan(r#"{"model":"a","usage":{"n":1"#);
    assert_eq!(got, vec![(F::Model, json!("a"))]);
    assert!(!done);
    assert_eq!(err, None);
}

#[test]
fn depth_is_limited() {
    let deep = "[".repeat(MAX_DEPTH + 1);
    let (_, _, err) = scan_pieces(&[deep.as_bytes()]);
    assert!(matches!(err, Some(ScanError::TooDeep { .. })));
}

#[test]
fn oversized_values_are_dropped_with_an_error() {
    let text = format!(
        r#"{{"usage":"{}","model":"m"}}"#,
        "x".repeat(MAX_CAPTURE_BYTES)
    );
    let (got, done, err) = scan_pieces(&[text.as_bytes()]);
    assert!(done);
    assert_eq!(got, vec![(F::Model, json!("m"))]);
    assert_eq!(
        err,
        Some(ScanError::ValueTooLarge {
            path: "usage".into()
        })
    );
}

#[test]
fn trailing_bytes_after_the_document_are_ignored() {
    let (got, done, err) = scan(r#"{"model":"m"} {"model":"n"}"#);
    assert!(done);
    assert_eq!(err, None);
    assert_eq!(got, vec![(F::Model, json!("m"))]);
}

#[test]
fn pending_values_stay_bounded() {
    let many = format!(
        r#"{{"candidates":[{}]}}"#,
        vec![r#"{"finishReason":"STOP"}"#; 10_000].join(",")
    );
    let mut s = JsonScanner::new(PATHS);
    s.feed(many.as_bytes());
    assert_eq!(s.take_captured(), vec![(F::Reason, json!("STOP"))]);
}

#[test]
fn reset_starts_a_new_document() {
    let mut s = JsonScanner::new(PATHS);
    s.feed(br#"{"model":"a"#);
    s.reset();
    s.feed(br#"{"model":"b"}"#);
    assert_eq!(s.take_captured(), vec![(F::Model, json!("b"))]);
    assert!(s.is_done());
}
