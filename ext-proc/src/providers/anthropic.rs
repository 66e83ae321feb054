//! Anthropic: `x-api-key: <key>`, and `anthropic-version` when the client sent none (the
//! API refuses requests without it). With `authorization_passthrough` the client's own
//! `Authorization` (an enterprise or Max-plan credential) goes upstream untouched.

use super::{Mutation, Upstream};
use crate::secrets::SecretValue;

/// The version sent when the client names none: the long-stable one every model accepts.
pub const DEFAULT_VERSION: &str = "2023-06-01";

pub fn apply(up: &Upstream<'_>, key: Option<&SecretValue>, m: &mut Mutation) {
    if !up.route.authorization_passthrough {
        if let Some(k) = key {
            m.set("x-api-key", k.expose().as_bytes().to_vec());
        }
    }
    if !up.has_header("anthropic-version") {
        m.set("anthropic-version", DEFAULT_VERSION.as_bytes().to_vec());
    }
}
