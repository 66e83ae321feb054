"""AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock streams it.

Frame layout (smithy.io/2.0/aws/amazon-eventstream.html; all integers big-endian):

    total_len u32 | headers_len u32 | prelude_crc u32 (CRC32 of bytes 0-7)
    | headers | payload | message_crc u32 (CRC32 of every byte before it)

Each header: name length (u8), name, type (u8), value. String (7) and bytes (6) values carry a
u16 length prefix. The CRC is standard CRC32 (zlib). Stdlib only, so the mocks and the tests
share one implementation; it is checked against the published vectors in
`tests/test_bedrock_mocks.py`.
"""

from __future__ import annotations

import struct
import uuid as _uuid
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

# Header value types.
TRUE, FALSE, BYTE, INT16, INT32, INT64, BYTES, STRING, TIMESTAMP, UUID = range(10)

PRELUDE_LEN = 12
MAX_HEADERS_LEN = 128 * 1024  # botocore's limits
MAX_PAYLOAD_LEN = 24 * 1024 * 1024


class FrameError(ValueError):
    """A frame that does not decode (bad length, CRC or header)."""


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_header(name: str, value: Any, type_: int | None = None) -> bytes:
    """One header. `type_` defaults from the value: str → string, bytes → bytes, bool → true/
    false, int → int32, uuid.UUID → uuid."""
    n = name.encode()
    if not 0 < len(n) < 256:
        raise ValueError(f"header name length {len(n)} out of range")
    if type_ is None:
        if isinstance(value, bool):
            type_ = TRUE if value else FALSE
        elif isinstance(value, str):
            type_ = STRING
        elif isinstance(value, (bytes, bytearray)):
            type_ = BYTES
        elif isinstance(value, int):
            type_ = INT32
        elif isinstance(value, _uuid.UUID):
            type_ = UUID
        else:
            raise TypeError(f"no event-stream header type for {type(value).__name__}")
    out = bytes([len(n)]) + n + bytes([type_])
    if type_ in (TRUE, FALSE):
        return out
    if type_ == BYTE:
        return out + struct.pack(">b", value)
    if type_ == INT16:
        return out + struct.pack(">h", value)
    if type_ == INT32:
        return out + struct.pack(">i", value)
    if type_ in (INT64, TIMESTAMP):
        return out + struct.pack(">q", value)
    if type_ == UUID:
        raw = value.bytes if isinstance(value, _uuid.UUID) else bytes(value)
        if len(raw) != 16:
            raise ValueError("uuid header needs 16 bytes")
        return out + raw
    if type_ in (BYTES, STRING):
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if len(raw) > 0xFFFF:
            raise ValueError("header value too long")
        return out + struct.pack(">H", len(raw)) + raw
    raise ValueError(f"unknown header type {type_}")


def encode_frame(headers: Iterable[tuple] | dict[str, Any], payload: bytes = b"") -> bytes:
    """One complete frame. `headers`: a dict or `(name, value)` / `(name, value, type)` tuples,
    written in the given order."""
    items = headers.items() if isinstance(headers, dict) else headers
    hdr = b"".join(encode_header(*h) for h in items)
    total = PRELUDE_LEN + len(hdr) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdr))
    prelude += struct.pack(">I", _crc(prelude))
    body = prelude + hdr + payload
    return body + struct.pack(">I", _crc(body))


def event_frame(event_type: str, payload: bytes, content_type: str = "application/json") -> bytes:
    """A Bedrock event: `:event-type`, `:content-type`, `:message-type: event` (AWS's order)."""
    return encode_frame(
        [(":event-type", event_type), (":content-type", content_type), (":message-type", "event")], payload
    )


def exception_frame(exception_type: str, payload: bytes, content_type: str = "application/json") -> bytes:
    """A modelled in-stream error (`:message-type: exception`, camelCase `:exception-type`)."""
    return encode_frame(
        [(":exception-type", exception_type), (":content-type", content_type), (":message-type", "exception")],
        payload,
    )


# --------------------------------------------------------------------------- decoding


@dataclass
class Frame:
    headers: dict[str, Any]
    payload: bytes
    raw: bytes  # the frame's exact bytes

    @property
    def event_type(self) -> str | None:
        return self.headers.get(":event-type")

    @property
    def message_type(self) -> str | None:
        return self.headers.get(":message-type")


def _decode_headers(b: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(b):
        n = b[i]
        name = b[i + 1:i + 1 + n].decode()
        i += 1 + n
        t = b[i]
        i += 1
        if t in (TRUE, FALSE):
            v: Any = t == TRUE
        elif t == BYTE:
            v = struct.unpack_from(">b", b, i)[0]
            i += 1
        elif t == INT16:
            v = struct.unpack_from(">h", b, i)[0]
            i += 2
        elif t == INT32:
            v = struct.unpack_from(">i", b, i)[0]
            i += 4
        elif t in (INT64, TIMESTAMP):
            v = struct.unpack_from(">q", b, i)[0]
            i += 8
        elif t == UUID:
            v = _uuid.UUID(bytes=b[i:i + 16])
            i += 16
        elif t in (BYTES, STRING):
            ln = struct.unpack_from(">H", b, i)[0]
            raw = b[i + 2:i + 2 + ln]
            v = raw.decode() if t == STRING else raw
            i += 2 + ln
        else:
            raise FrameError(f"unknown header type {t}")
        if i > len(b):
            raise FrameError("header runs past the header block")
        out[name] = v
    return out


def decode_frame(data: bytes) -> Frame:
    """Decodes exactly one frame, checking both CRCs and the lengths."""
    if len(data) < PRELUDE_LEN + 4:
        raise FrameError(f"frame of {len(data)} bytes is shorter than prelude + CRC")
    total, hlen, pcrc = struct.unpack_from(">III", data, 0)
    if total != len(data):
        raise FrameError(f"total_len {total} != {len(data)} bytes")
    if _crc(data[:8]) != pcrc:
        raise FrameError("prelude CRC mismatch")
    if _crc(data[:-4]) != struct.unpack_from(">I", data, total - 4)[0]:
        raise FrameError("message CRC mismatch")
    if hlen > MAX_HEADERS_LEN or PRELUDE_LEN + hlen + 4 > total:
        raise FrameError(f"headers_len {hlen} invalid")
    headers = _decode_headers(data[PRELUDE_LEN:PRELUDE_LEN + hlen])
    return Frame(headers, data[PRELUDE_LEN + hlen:total - 4], bytes(data))


class FrameReader:
    """Incremental decoder: `feed(bytes)` returns the frames completed so far."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out = []
        while len(self._buf) >= PRELUDE_LEN:
            total = struct.unpack_from(">I", self._buf, 0)[0]
            if total < PRELUDE_LEN + 4 or total > PRELUDE_LEN + MAX_HEADERS_LEN + MAX_PAYLOAD_LEN + 4:
                raise FrameError(f"implausible total_len {total}")
            if len(self._buf) < total:
                break
            out.append(decode_frame(bytes(self._buf[:total])))
            del self._buf[:total]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buf)


def decode_all(data: bytes) -> list[Frame]:
    r = FrameReader()
    frames = r.feed(data)
    if r.pending:
        raise FrameError(f"{r.pending} trailing bytes after the last frame")
    return frames


def iter_frames(chunks: Iterable[bytes]) -> Iterator[Frame]:
    r = FrameReader()
    for c in chunks:
        yield from r.feed(c)
    if r.pending:
        raise FrameError(f"stream ended inside a frame ({r.pending} bytes)")
