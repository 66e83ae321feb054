//! OpenAI: `Authorization: Bearer <key>`.

use super::{bearer, Mutation};
use crate::secrets::SecretValue;

pub fn apply(key: &SecretValue, m: &mut Mutation) {
    m.set("authorization", bearer(key));
}
