//! Environment backend: a secret reference is an environment variable of the same name.
//! The process environment cannot change after start, so it is read once.

use super::{clean, SecretValue, Snapshot};
use aigw_core::config::is_valid_secret_ref;

pub fn load() -> Snapshot {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| is_valid_secret_ref(k))
        .map(|(k, v)| {
            let v = SecretValue::new(clean(&v));
            (k, v)
        })
        .collect()
}
