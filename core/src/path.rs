//! The proxy path: `/llm/v1/providers/<name>/<upstream path>?<query>`, parsed once per request.
//!
//! Bad input is refused here, before anything is forwarded: dot segments (raw or
//! percent-encoded), empty segments (`//`), backslashes, control characters, a malformed
//! provider name, an over-long path. Percent-encoded bytes are otherwise forwarded as sent
//! (Bedrock model ids carry `%3A` and `%2F`, and SigV4 signs the encoded form).

use crate::config::{is_valid_provider_name, UpstreamUrl};
use crate::error::{ErrorKind, GatewayError};

/// Every proxied request starts with this.
pub const PROXY_PREFIX: &str = "/llm/v1/providers";

/// Longest `:path` (with query) accepted. Real SDK paths are far below it.
pub const MAX_PATH_LEN: usize = 8 * 1024;

/// A parsed proxy path, borrowing from `:path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyPath<'a> {
    pub provider: &'a str,
    /// The path after the provider name: empty or starting with `/`.
    pub rest: &'a str,
    /// The query string without its `?`.
    pub query: Option<&'a str>,
}

/// `Ok(None)` when the path is not under [`PROXY_PREFIX`] at all (not ours: pass it on).
pub fn parse(path: &str) -> Result<Option<ProxyPath<'_>>, GatewayError> {
    let Some(after) = path.strip_prefix(PROXY_PREFIX) else {
        return Ok(None);
    };
    // `/llm/v1/providersfoo` is somebody else's path.
    if !(after.is_empty() || after.starts_with('/') || after.starts_with('?')) {
        return Ok(None);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(GatewayError::new(
            ErrorKind::PathTooLong,
            format!("the request path is longer than {MAX_PATH_LEN} bytes"),
        ));
    }
    let (path_part, query) = match after.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (after, None),
    };
    let Some(named) = path_part.strip_prefix('/') else {
        return Err(invalid(
            "the path must name a provider: /llm/v1/providers/<name>/...",
        ));
    };
    let (provider, rest) = match named.find('/') {
        Some(i) => named.split_at(i),
        None => (named, ""),
    };
    if provider.is_empty() {
        return Err(invalid(
            "the path must name a provider: /llm/v1/providers/<name>/...",
        ));
    }
    if !is_valid_provider_name(provider) {
        return Err(invalid(
            "the provider name in the path must match ^[a-z][a-z0-9-]*$ (at most 63 characters)",
        ));
    }
    check_segments(rest)?;
    if let Some(q) = query {
        if q.bytes().any(is_forbidden_byte) {
            return Err(invalid("the query string contains a control character"));
        }
    }
    Ok(Some(ProxyPath {
        provider,
        rest,
        query,
    }))
}

fn invalid(msg: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidPath, msg)
}

fn is_forbidden_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'\\' || b == b'#'
}

fn check_segments(rest: &str) -> Result<(), GatewayError> {
    if rest.bytes().any(is_forbidden_byte) {
        return Err(invalid(
            "the path contains a control character, a backslash or a fragment",
        ));
    }
    if rest.is_empty() {
        return Ok(());
    }
    // rest starts with '/', so the first split item is empty; a single trailing '/' is fine.
    let body = rest[1..].strip_suffix('/').unwrap_or(&rest[1..]);
    if rest == "/" {
        return Ok(());
    }
    for seg in body.split('/') {
        if seg.is_empty() {
            return Err(invalid("the path contains an empty segment ('//')"));
        }
        if is_dot_segment(seg) {
            return Err(invalid("the path contains a '.' or '..' segment"));
        }
        if contains_ci(seg, "%5c") || contains_ci(seg, "%00") {
            return Err(invalid("the path contains an encoded backslash or NUL"));
        }
    }
    Ok(())
}

/// `.`, `..` and every percent-encoded spelling of them (`%2e`, `.%2E`, `%2e%2e`, ...).
fn is_dot_segment(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut dots = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b.len() - i >= 3 && b[i] == b'%' && b[i + 1] == b'2' && (b[i + 2] | 0x20) == b'e'
        {
            i += 3;
        } else {
            return false;
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    true
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Writes the upstream `:path` into `out`: base path prefix + the rest + `?query`.
/// A client whose base URL already ends in `/v1` (`{proxy}/v1`) does not get `/v1/v1`.
pub fn write_upstream_path(
    upstream: &UpstreamUrl,
    rest: &str,
    query: Option<&str>,
    out: &mut String,
) {
    out.clear();
    let rest = if upstream.ends_with_v1() && (rest.starts_with("/v1/") || rest == "/v1") {
        &rest[3..]
    } else {
        rest
    };
    out.push_str(&upstream.path_prefix);
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
}

/// Splits `name=value` out of a query string (first occurrence) and returns the value and
/// the query without it. Used to lift `?key=` (Google API keys) out of the URL.
pub fn take_query_param<'a>(query: &'a str, name: &str) -> (Option<&'a str>, String) {
    let mut found = None;
    let mut kept = String::with_capacity(query.len());
    for pair in query.split('&') {
        let key = pair.split('=').next().unwrap_or("");
        if key == name {
            if found.is_none() {
                found = Some(pair.get(name.len() + 1..).unwrap_or(""));
            }
            continue;
        }
        if !kept.is_empty() {
            kept.push('&');
        }
        kept.push_str(pair);
    }
    (found, kept)
}

#[cfg(test)]
mod tests;
