//! OpenAI-compatible servers (vLLM, Ollama, LM Studio, ...): `Authorization: Bearer <key>`
//! when a key is configured; many self-hosted servers take none.

use super::{bearer, Mutation};
use crate::secrets::SecretValue;

pub fn apply(key: Option<&SecretValue>, m: &mut Mutation) {
    if let Some(k) = key {
        m.set("authorization", bearer(k));
    }
}
