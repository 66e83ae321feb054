//! The AWS event-stream framing (`application/vnd.amazon.eventstream`) that Bedrock's
//! streaming operations answer with (smithy.io/2.0/aws/amazon-eventstream.html;
//! botocore `eventstream.py`). All integers are big-endian:
//!
//! ```text
//! total_len u32 | headers_len u32 | prelude_crc u32 (over bytes 0..8)
//! | headers | payload (total_len - headers_len - 16 bytes) | message_crc u32 (over all before it)
//! ```
//!
//! A frame is checked before anything in it is trusted: the prelude CRC before its lengths
//! are used (so a corrupt length cannot make us wait for, or allocate, gigabytes), the
//! message CRC before the frame is handed out. Only the current frame is buffered, and a
//! frame may be at most [`MAX_FRAME_BYTES`]. After any error the stream is unreadable (the
//! frame boundaries are lost), so the decoder stops.

/// A frame larger than this is refused. botocore allows 128 KiB of headers and 24 MiB of
/// payload; Bedrock chunks are kilobytes, so 16 MiB leaves ample room.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// botocore's header limit.
pub const MAX_HEADERS_BYTES: usize = 128 << 10;
const PRELUDE_BYTES: usize = 12;
/// Prelude plus message CRC.
const MIN_FRAME_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event-stream prelude CRC mismatch (frame says {expected:#010x}, bytes give {actual:#010x})")]
    PreludeCrc { expected: u32, actual: u32 },
    #[error("event-stream message CRC mismatch (frame says {expected:#010x}, bytes give {actual:#010x})")]
    MessageCrc { expected: u32, actual: u32 },
    #[error("event-stream frame of {0} bytes is larger than the {MAX_FRAME_BYTES}-byte limit")]
    FrameTooLarge(u32),
    #[error("event-stream frame of {0} bytes is shorter than its 16-byte prelude and CRC")]
    FrameTooSmall(u32),
    #[error("event-stream headers of {headers} bytes do not fit a {total}-byte frame (limit {MAX_HEADERS_BYTES})")]
    BadHeadersLength { headers: u32, total: u32 },
    #[error("event-stream header block is malformed: {0}")]
    BadHeader(&'static str),
    #[error("event-stream ended inside a frame ({0} bytes of it were read)")]
    Truncated(usize),
}

/// A header value, by wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A string header's value (`:message-type`, `:event-type`, ...).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Cuts a byte stream into checked frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// The current frame's length once its prelude has been checked.
    frame_len: Option<usize>,
    failed: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `input`, handing each complete frame to `on_frame`. After an error nothing
    /// more is read, and the same error is not reported twice.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(Frame),
    ) -> Result<(), FrameError> {
        while !input.is_empty() && !self.failed {
            let want = self.frame_len.unwrap_or(PRELUDE_BYTES);
            let take = (want - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() < want {
                break;
            }
            let result = match self.frame_len {
                None => self.check_prelude().map(|len| self.frame_len = Some(len)),
                Some(_) => {
                    let frame = parse_frame(&self.buf);
                    self.buf.clear();
                    self.frame_len = None;
                    frame.map(&mut on_frame)
                }
            };
            if let Err(e) = result {
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

    fn check_prelude(&self) -> Result<usize, FrameError> {
        let total = be_u32(&self.buf[0..4]);
        let headers = be_u32(&self.buf[4..8]);
        let expected = be_u32(&self.buf[8..12]);
        let actual = crc32fast::hash(&self.buf[0..8]);
        if expected != actual {
            return Err(FrameError::PreludeCrc { expected, actual });
        }
        check_lengths(total, headers)?;
        Ok(total as usize)
    }
}

fn check_lengths(total: u32, headers: u32) -> Result<(), FrameError> {
    if (total as usize) < MIN_FRAME_BYTES {
        return Err(FrameError::FrameTooSmall(total));
    }
    if total as usize > MAX_FRAME_BYTES {
        return Err(FrameError::FrameTooLarge(total));
    }
    if headers as usize > MAX_HEADERS_BYTES || headers as usize > total as usize - MIN_FRAME_BYTES {
        return Err(FrameError::BadHeadersLength { headers, total });
    }
    Ok(())
}

/// Checks and splits one whole frame.
pub fn parse_frame(frame: &[u8]) -> Result<Frame, FrameError> {
    if frame.len() < MIN_FRAME_BYTES {
        return Err(FrameError::Truncated(frame.len()));
    }
    let total = be_u32(&frame[0..4]);
    let headers_len = be_u32(&frame[4..8]);
    let prelude_crc = be_u32(&frame[8..12]);
    let actual = crc32fast::hash(&frame[0..8]);
    if prelude_crc != actual {
        return Err(FrameError::PreludeCrc {
            expected: prelude_crc,
            actual,
        });
    }
    check_lengths(total, headers_len)?;
    if frame.len() != total as usize {
        return Err(FrameError::Truncated(frame.len()));
    }
    let (body, crc) = frame.split_at(frame.len() - 4);
    let expected = be_u32(crc);
    let actual = crc32fast::hash(body);
    if expected != actual {
        return Err(FrameError::MessageCrc { expected, actual });
    }
    let headers_end = PRELUDE_BYTES + headers_len as usize;
    Ok(Frame {
        headers: parse_headers(&body[PRELUDE_BYTES..headers_end])?,
        payload: body[headers_end..].to_vec(),
    })
}

fn parse_headers(mut block: &[u8]) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let mut headers = Vec::new();
    while !block.is_empty() {
        let name_len = take(&mut block, 1)?[0] as usize;
        let name = std::str::from_utf8(take(&mut block, name_len)?)
            .map_err(|_| FrameError::BadHeader("header name is not UTF-8"))?
            .to_string();
        let value = match take(&mut block, 1)?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(take(&mut block, 1)?[0] as i8),
            3 => HeaderValue::Int16(i16::from_be_bytes(array(take(&mut block, 2)?))),
            4 => HeaderValue::Int32(i32::from_be_bytes(array(take(&mut block, 4)?))),
            5 => HeaderValue::Int64(i64::from_be_bytes(array(take(&mut block, 8)?))),
            6 => {
                let len = u16::from_be_bytes(array(take(&mut block, 2)?)) as usize;
                HeaderValue::Bytes(take(&mut block, len)?.to_vec())
            }
            7 => {
                let len = u16::from_be_bytes(array(take(&mut block, 2)?)) as usize;
                let s = std::str::from_utf8(take(&mut block, len)?)
                    .map_err(|_| FrameError::BadHeader("string header is not UTF-8"))?;
                HeaderValue::String(s.to_string())
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(array(take(&mut block, 8)?))),
            9 => HeaderValue::Uuid(array(take(&mut block, 16)?)),
            _ => return Err(FrameError::BadHeader("unknown header value type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

fn take<'a>(block: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    if block.len() < n {
        return Err(FrameError::BadHeader("header runs past the header block"));
    }
    let (head, rest) = block.split_at(n);
    *block = rest;
    Ok(head)
}

/// `bytes` has exactly N bytes (checked by [`take`]).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(array(&bytes[..4]))
}

/// Builds a frame; for tests and fixture generation.
pub fn encode_frame(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in headers {
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        match value {
            HeaderValue::Bool(true) => block.push(0),
            HeaderValue::Bool(false) => block.push(1),
            HeaderValue::Byte(v) => block.extend([2, *v as u8]),
            HeaderValue::Int16(v) => {
                block.push(3);
                block.extend(v.to_be_bytes());
            }
            HeaderValue::Int32(v) => {
                block.push(4);
                block.extend(v.to_be_bytes());
            }
            HeaderValue::Int64(v) => {
                block.push(5);
                block.extend(v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => {
                block.push(6);
                block.extend((v.len() as u16).to_be_bytes());
                block.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                block.push(7);
                block.extend((v.len() as u16).to_be_bytes());
                block.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Timestamp(v) => {
                block.push(8);
                block.extend(v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                block.push(9);
                block.extend_from_slice(v);
            }
        }
    }
    let total = (MIN_FRAME_BYTES + block.len() + payload.len()) as u32;
    let mut frame = Vec::with_capacity(total as usize);
    frame.extend(total.to_be_bytes());
    frame.extend((block.len() as u32).to_be_bytes());
    frame.extend(crc32fast::hash(&frame).to_be_bytes());
    frame.extend_from_slice(&block);
    frame.extend_from_slice(payload);
    frame.extend(crc32fast::hash(&frame).to_be_bytes());
    frame
}

#[cfg(test)]
mod tests;
