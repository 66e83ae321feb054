use super::*;

fn frames_of(pieces: &[&[u8]]) -> (Vec<Frame>, Result<(), FrameError>) {
    let mut d = Decoder::new();
    let mut frames = Vec::new();
    for p in pieces {
        if let Err(e) = d.feed(p, |f| frames.push(f)) {
            return (frames, Err(e));
        }
    }
    let end = d.finish();
    (frames, end)
}

fn sample() -> Vec<u8> {
    let mut body = encode_frame(
        &[
            (":event-type", HeaderValue::String("chunk".into())),
            ("flag", HeaderValue::Bool(true)),
            ("off", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-2)),
            ("s", HeaderValue::Int16(-300)),
            ("i", HeaderValue::Int32(70_000)),
            ("l", HeaderValue::Int64(-5_000_000_000)),
            ("raw", HeaderValue::Bytes(vec![0, 1, 2])),
            ("t", HeaderValue::Timestamp(1_790_000_000_000)),
            ("u", HeaderValue::Uuid([7; 16])),
        ],
        b"first",
    );
    body.extend(encode_frame(&[], b""));
    body.extend(encode_frame(
        &[(":message-type", HeaderValue::String("event".into()))],
        b"third",
    ));
    body
}

#[test]
fn all_header_types_round_trip_at_every_split() {
    let body = sample();
    let (whole, end) = frames_of(&[&body]);
    assert_eq!(end, Ok(()));
    assert_eq!(whole.len(), 3);
    assert_eq!(whole[0].header_str(":event-type"), Some("chunk"));
    assert_eq!(
        whole[0].headers[6],
        ("l".into(), HeaderValue::Int64(-5_000_000_000))
    );
    assert_eq!(whole[0].payload, b"first");
    assert!(whole[1].headers.is_empty() && whole[1].payload.is_empty());
    assert_eq!(whole[2].payload, b"third");
    for at in 0..=body.len() {
        assert_eq!(
            frames_of(&[&body[..at], &body[at..]]).0,
            whole,
            "split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(frames_of(&bytes).0, whole);
}

#[test]
fn truncated_stream_is_reported() {
    let body = sample();
    let (frames, end) = frames_of(&[&body[..body.len() - 3]]);
    assert_eq!(frames.len(), 2);
    assert!(matches!(end, Err(FrameError::Truncated(_))));
}

#[test]
fn crc_errors_stop_the_decoder() {
    let mut body = sample();
    let last = body.len() - 1;
    body[last] ^= 1;
    let (frames, end) = frames_of(&[&body]);
    assert_eq!(frames.len(), 2);
    assert!(matches!(end, Err(FrameError::MessageCrc { .. })));

    let mut body = sample();
    body[2] ^= 1;
    let (frames, end) = frames_of(&[&body]);
    assert!(frames.is_empty());
    assert!(matches!(end, Err(FrameError::PreludeCrc { .. })));
}

/// A prelude with a valid CRC over absurd lengths.
fn prelude(total: u32, headers: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(total.to_be_bytes());
    p.extend(headers.to_be_bytes());
    p.extend(crc32fast::hash(&p).to_be_bytes());
    p
}

#[test]
fn lengths_are_checked_before_waiting_for_the_frame() {
    let (_, end) = frames_of(&[&prelude(u32::MAX, 0)]);
    assert_eq!(end, Err(FrameError::FrameTooLarge(u32::MAX)));
    let (_, end) = frames_of(&[&prelude(15, 0)]);
    assert_eq!(end, Err(FrameError::FrameTooSmall(15)));
    let (_, end) = frames_of(&[&prelude(100, 90)]);
    assert_eq!(
        end,
        Err(FrameError::BadHeadersLength {
            headers: 90,
            total: 100
        })
    );
}

#[test]
fn malformed_headers_are_errors() {
    // A header whose string length runs past the block, with valid CRCs around it.
    let block = [3u8, b'a', b'b', b'c', 7, 0, 50, b'x'];
    let total = (16 + block.len()) as u32;
    let mut f = prelude(total, block.len() as u32);
    f.extend_from_slice(&block);
    f.extend(crc32fast::hash(&f).to_be_bytes());
    assert!(matches!(parse_frame(&f), Err(FrameError::BadHeader(_))));

    let block = [1u8, b'a', 42];
    let total = (16 + block.len()) as u32;
    let mut f = prelude(total, block.len() as u32);
    f.extend_from_slice(&block);
    f.extend(crc32fast::hash(&f).to_be_bytes());
    assert_eq!(
        parse_frame(&f),
        Err(FrameError::BadHeader("unknown header value type"))
    );
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The published vector of awslabs/aws-c-event-stream (providers.md §7).
#[test]
fn published_vector() {
    let bytes = hex("0000001d 00000000 fd528c5a 7b27666f6f273a27626172277d c3653936");
    let f = parse_frame(&bytes).unwrap();
    assert!(f.headers.is_empty());
    assert_eq!(f.payload, b"{'foo':'bar'}");
    assert_eq!(encode_frame(&[], b"{'foo':'bar'}"), bytes);
}

/// The worked Bedrock vector of providers.md §7, encoded, and decoded in two pieces.
#[test]
fn worked_bedrock_vector_in_pieces() {
    let bytes = hex("00000087 0000004b 87ea2bf3
         0b 3a6576656e742d74797065 07 0005 6368756e6b
         0d 3a636f6e74656e742d74797065 07 0010 6170706c69636174696f6e2f6a736f6e
         0d 3a6d6573736167652d74797065 07 0005 6576656e74
         7b226279746573223a2265794a306558426c496a6f696257567a6332466e5a56397a64473977496e303d227d
         ba48ab22");
    let s = |v: &str| HeaderValue::String(v.into());
    let headers = [
        (":event-type", s("chunk")),
        (":content-type", s("application/json")),
        (":message-type", s("event")),
    ];
    assert_eq!(
        encode_frame(&headers, br#"{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0="}"#),
        bytes
    );
    let (frames, end) = frames_of(&[&bytes[..50], &bytes[50..]]);
    end.unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].header_str(":event-type"), Some("chunk"));
    assert_eq!(frames[0].header_str(":message-type"), Some("event"));
}
