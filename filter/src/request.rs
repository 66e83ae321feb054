//! The routing decision for one request, as a pure function of the request headers and the
//! provider table, so it is unit-tested without a host. [`crate::plugin`] applies it.

use crate::credential::{CredentialSources, CREDENTIAL_HEADERS};
use crate::table::{ProviderEntry, ProviderTable};
use aigw_core::handoff::INTERNAL_HEADER_PREFIX;
use aigw_core::path::{self, write_upstream_path};
use aigw_core::{ErrorKind, GatewayError, ProviderKind};

/// Headers the filter may remove, indexed by [`Forward::remove`] bits.
pub const REMOVABLE: [&str; 7] = [
    CREDENTIAL_HEADERS[0],
    CREDENTIAL_HEADERS[1],
    CREDENTIAL_HEADERS[2],
    CREDENTIAL_HEADERS[3],
    // A client's own SigV4 signature never verifies upstream; the sidecar re-signs.
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Not under `/llm/v1/providers`: leave the request alone.
    Pass,
    /// Answer with this error; nothing is forwarded.
    Reply(GatewayError),
    Forward(Forward<'a>),
}

/// How to rewrite the request for its upstream.
#[derive(Debug, PartialEq, Eq)]
pub struct Forward<'a> {
    pub provider: &'a ProviderEntry,
    /// New `:path`, query included.
    pub path: String,
    /// Bit `i` set: remove `REMOVABLE[i]`.
    pub remove: u8,
    pub credential: &'a str,
}

impl PartialEq for ProviderEntry {
    fn eq(&self, other: &Self) -> bool {
        self.config.name == other.config.name
    }
}
impl Eq for ProviderEntry {}

impl Forward<'_> {
    pub fn removed_headers(&self) -> impl Iterator<Item = &'static str> + '_ {
        REMOVABLE
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.remove & (1 << i) != 0)
            .map(|(_, h)| *h)
    }
}

pub struct Request;

impl Request {
    /// Decides what to do with a request from its headers (`:path` included).
    pub fn route<'a>(table: &'a ProviderTable, headers: &'a [(String, String)]) -> Decision<'a> {
        let mut path_header: Option<&str> = None;
        let mut method = "GET";
        let mut creds = CredentialSources::default();
        let mut present: u8 = 0;
        for (name, value) in headers {
            let name = name.as_str();
            if name == ":path" {
                path_header = Some(value);
                continue;
            }
            if name == ":method" {
                method = value;
                continue;
            }
            if starts_with_ci(name, INTERNAL_HEADER_PREFIX) {
                return Decision::Reply(GatewayError::new(
                    ErrorKind::InternalHeader,
                    format!("the header '{name}' is reserved for the gateway"),
                ));
            }
            creds.observe(name, value);
            if let Some(i) = REMOVABLE.iter().position(|h| *h == name) {
                present |= 1 << i;
            }
        }
        let Some(raw_path) = path_header else {
            return Decision::Pass;
        };
        let parsed = match path::parse(raw_path) {
            Ok(Some(p)) => p,
            Ok(None) => return Decision::Pass,
            Err(e) => return Decision::Reply(e),
        };
        let Some(entry) = table.get(parsed.provider) else {
            return Decision::Reply(GatewayError::new(
                ErrorKind::UnknownProvider,
                format!("no provider named '{}'", parsed.provider),
            ));
        };
        let p = &entry.config;
        if !p.enabled {
            return Decision::Reply(GatewayError::new(
                ErrorKind::ProviderDisabled,
                format!("provider '{}' is disabled", p.name),
            ));
        }

        if p.kind == ProviderKind::Bedrock {
            if let Err(e) = aigw_core::bedrock::check_path(method, parsed.rest) {
                return Decision::Reply(e);
            }
        }

        // Google clients other than google-genai may send the key as `?key=`.
        let lifted;
        let mut query = parsed.query;
        if p.kind == ProviderKind::Google {
            if let Some(q) = parsed.query {
                let (key, rest) = path::take_query_param(q, "key");
                if key.is_some() {
                    creds.query_key = key;
                    lifted = rest;
                    query = Some(lifted.as_str());
                }
            }
        }
        let picked = if p.authorization_passthrough {
            creds.pick_passthrough(p.gateway_token_required)
        } else {
            creds.pick()
        };
        let credential = match picked {
            Ok(c) => c,
            Err(e) => return Decision::Reply(e),
        };

        let mut remove = present;
        if p.authorization_passthrough {
            remove &= !0b0011; // authorization and x-api-key go to Anthropic
        }
        if p.kind != ProviderKind::Bedrock {
            remove &= 0b0000_1111;
        }
        let mut new_path = String::with_capacity(p.upstream.path_prefix.len() + raw_path.len());
        write_upstream_path(&p.upstream, parsed.rest, query, &mut new_path);
        Decision::Forward(Forward {
            provider: entry,
            path: new_path,
            remove,
            credential,
        })
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests;
