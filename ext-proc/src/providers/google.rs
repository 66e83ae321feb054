//! Google AI Studio (Gemini): `x-goog-api-key: <key>`. The filter already lifted any
//! client `?key=` out of the query, so the upstream sees only ours.

use super::Mutation;
use crate::secrets::SecretValue;

pub fn apply(key: &SecretValue, m: &mut Mutation) {
    m.set("x-goog-api-key", key.expose().as_bytes().to_vec());
}
