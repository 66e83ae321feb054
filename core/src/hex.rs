//! Lower-case hex for SHA-256 digests: how the secret store and the fast-path snapshot write
//! API key digests, read by the sidecar and the filter alike.

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A 32-byte digest from exactly 64 hex digits (either case).
pub fn decode32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_refusals() {
        let d: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let h = super::encode(&d);
        assert_eq!(h.len(), 64);
        assert_eq!(super::decode32(&h), Some(d));
        assert_eq!(super::decode32(&h.to_uppercase()), Some(d));
        assert_eq!(super::decode32(&h[1..]), None);
        assert_eq!(super::decode32(&format!("{}zz", &h[2..])), None);
    }
}
