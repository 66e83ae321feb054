//! A small AWS event-stream frame decoder (`application/vnd.amazon.eventstream`, the body
//! of Bedrock `converse-stream`; providers.md §7, smithy.io/2.0/aws/amazon-eventstream.html).
//!
//! ```text
//! total_len u32 | headers_len u32 | prelude_crc u32 (over bytes 0..8)
//! | headers | payload | message_crc u32 (over every byte before it)      (big-endian)
//! ```
//!
//! Why a copy here rather than `aigw_metering::usage::event_stream`: this crate stays
//! dependency-free (serde, serde_json only) so it builds anywhere and adds nothing to the
//! lock file; the metering decoder is the reference this one follows (prelude CRC checked
//! before its length is trusted, message CRC before the frame is handed out, one frame
//! buffered at most). Callers that already decode frames can skip this and hand
//! `(event_type, message_type, payload)` to
//! [`crate::bedrock::BedrockStreamTranslator::feed_event`].

/// A frame larger than this is refused (Bedrock frames are kilobytes).
pub const MAX_FRAME_BYTES: usize = 16 << 20;
const PRELUDE: usize = 12;
const MIN_FRAME: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    PreludeCrc,
    MessageCrc,
    BadLength(u32),
    BadHeader(&'static str),
    /// The body ended inside a frame (this many bytes of it were read).
    Truncated(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::PreludeCrc => write!(f, "event-stream prelude CRC mismatch"),
            FrameError::MessageCrc => write!(f, "event-stream message CRC mismatch"),
            FrameError::BadLength(n) => write!(f, "event-stream frame length {n} is invalid"),
            FrameError::BadHeader(why) => write!(f, "event-stream header block: {why}"),
            FrameError::Truncated(n) => {
                write!(f, "event-stream ended inside a frame ({n} bytes read)")
            }
        }
    }
}

/// One checked frame: its string headers (other header types are skipped) and payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    frame_len: Option<usize>,
    failed: bool,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `input`, handing each complete, checked frame to `on_frame`. After an error the
    /// stream is unreadable (frame boundaries are lost) and nothing more is read.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        on_frame: &mut impl FnMut(Frame),
    ) -> Result<(), FrameError> {
        while !input.is_empty() && !self.failed {
            let want = self.frame_len.unwrap_or(PRELUDE);
            let take = (want - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() < want {
                break;
            }
            let step = match self.frame_len {
                None => check_prelude(&self.buf).map(|len| {
                    self.frame_len = Some(len);
                }),
                Some(_) => {
                    let frame = parse_frame(&self.buf);
                    self.buf.clear();
                    self.frame_len = None;
                    frame.map(&mut *on_frame)
                }
            };
            if let Err(e) = step {
                self.failed = true;
                self.buf = Vec::new();
                return Err(e);
            }
        }
        Ok(())
    }

    /// At the end of the body: a partial frame means the stream was cut.
    pub fn finish(&self) -> Result<(), FrameError> {
        if !self.failed && !self.buf.is_empty() {
            return Err(FrameError::Truncated(self.buf.len()));
        }
        Ok(())
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn check_prelude(p: &[u8]) -> Result<usize, FrameError> {
    if crc32(&p[..8]) != be_u32(&p[8..12]) {
        return Err(FrameError::PreludeCrc);
    }
    let total = be_u32(&p[0..4]);
    let headers = be_u32(&p[4..8]) as usize;
    let t = total as usize;
    if !(MIN_FRAME..=MAX_FRAME_BYTES).contains(&t) || headers > t - MIN_FRAME {
        return Err(FrameError::BadLength(total));
    }
    Ok(t)
}

/// Checks and splits one whole frame.
pub fn parse_frame(frame: &[u8]) -> Result<Frame, FrameError> {
    if frame.len() < MIN_FRAME {
        return Err(FrameError::Truncated(frame.len()));
    }
    let total = check_prelude(&frame[..PRELUDE])?;
    if total != frame.len() {
        return Err(FrameError::Truncated(frame.len()));
    }
    let (body, crc) = frame.split_at(frame.len() - 4);
    if crc32(body) != be_u32(crc) {
        return Err(FrameError::MessageCrc);
    }
    let headers_end = PRELUDE + be_u32(&frame[4..8]) as usize;
    Ok(Frame {
        headers: parse_headers(&body[PRELUDE..headers_end])?,
        payload: body[headers_end..].to_vec(),
    })
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
        if b.len() < n {
            return Err(FrameError::BadHeader("header runs past the header block"));
        }
        let (h, rest) = b.split_at(n);
        *b = rest;
        Ok(h)
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = take(&mut b, 1)?[0] as usize;
        let name = String::from_utf8_lossy(take(&mut b, n)?).into_owned();
        let ty = take(&mut b, 1)?[0];
        match ty {
            0 | 1 => {}
            2 => {
                take(&mut b, 1)?;
            }
            3 => {
                take(&mut b, 2)?;
            }
            4 => {
                take(&mut b, 4)?;
            }
            5 | 8 => {
                take(&mut b, 8)?;
            }
            9 => {
                take(&mut b, 16)?;
            }
            6 | 7 => {
                let l = take(&mut b, 2)?;
                let len = u16::from_be_bytes([l[0], l[1]]) as usize;
                let v = take(&mut b, len)?;
                if ty == 7 {
                    let s = std::str::from_utf8(v)
                        .map_err(|_| FrameError::BadHeader("string header is not UTF-8"))?;
                    out.push((name, s.to_string()));
                }
            }
            _ => return Err(FrameError::BadHeader("unknown header value type")),
        }
    }
    Ok(out)
}

/// Builds a frame with string headers; for tests, fixtures and mock upstreams.
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in headers {
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(7);
        block.extend_from_slice(&(value.len() as u16).to_be_bytes());
        block.extend_from_slice(value.as_bytes());
    }
    let total = (MIN_FRAME + block.len() + payload.len()) as u32;
    let mut frame = Vec::with_capacity(total as usize);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&(block.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&frame);
    frame.extend_from_slice(&prelude_crc.to_be_bytes());
    frame.extend_from_slice(&block);
    frame.extend_from_slice(payload);
    let crc = crc32(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

/// CRC-32 (IEEE 802.3, zlib's `crc32`), table-driven.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c = TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The worked Bedrock vector of providers.md §7, fed in two pieces.
    #[test]
    fn worked_bedrock_vector_in_pieces() {
        let bytes = hex(
            "00000087 0000004b 87ea2bf3
             0b 3a6576656e742d74797065 07 0005 6368756e6b
             0d 3a636f6e74656e742d74797065 07 0010 6170706c69636174696f6e2f6a736f6e
             0d 3a6d6573736167652d74797065 07 0005 6576656e74
             7b226279746573223a2265794a306558426c496a6f696257567a6332466e5a56397a64473977496e303d227d
             ba48ab22",
        );
        assert_eq!(
            encode_frame(
                &[
                    (":event-type", "chunk"),
                    (":content-type", "application/json"),
                    (":message-type", "event")
                ],
                br#"{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0="}"#
            ),
            bytes
        );
        let mut d = FrameDecoder::new();
        let mut frames = Vec::new();
        d.feed(&bytes[..50], &mut |f| frames.push(f)).unwrap();
        assert!(frames.is_empty());
        d.feed(&bytes[50..], &mut |f| frames.push(f)).unwrap();
        d.finish().unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].header(":event-type"), Some("chunk"));
        assert_eq!(frames[0].header(":message-type"), Some("event"));
    }

    #[test]
    fn corruption_and_truncation() {
        let mut bytes = encode_frame(&[(":event-type", "messageStop")], b"{}");
        let mut d = FrameDecoder::new();
        d.feed(&bytes[..bytes.len() - 1], &mut |_| {}).unwrap();
        assert_eq!(d.finish(), Err(FrameError::Truncated(bytes.len() - 1)));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(parse_frame(&bytes), Err(FrameError::MessageCrc));
        bytes[1] ^= 1;
        assert_eq!(parse_frame(&bytes), Err(FrameError::PreludeCrc));
    }
}
