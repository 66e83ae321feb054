//! Gateway API keys. The secret store holds each key (or `sha256:<hex>` of it, so the key
//! itself need not be stored); only SHA-256 digests are kept in memory, and a presented key
//! is compared against every digest in constant time.

use super::{Method, Principal};
use crate::secrets::Snapshot;
use aigw_core::config::ApiKeyConfig;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Debug, Default)]
pub struct ApiKeys {
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

/// A key whose secret is missing or malformed (names only, never values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableKey {
    pub name: String,
    pub secret: String,
    pub reason: &'static str,
}

impl ApiKeys {
    /// Builds the table from the config and a secret snapshot; keys whose secret is missing
    /// or malformed are skipped and reported.
    pub fn build(config: &[ApiKeyConfig], secrets: &Snapshot) -> (Self, Vec<UnusableKey>) {
        let mut entries = Vec::with_capacity(config.len());
        let mut unusable = Vec::new();
        for k in config {
            let bad = |reason| UnusableKey {
                name: k.name.clone(),
                secret: k.secret.clone(),
                reason,
            };
            let Some(v) = secrets.get(&k.secret) else {
                unusable.push(bad("secret not found"));
                continue;
            };
            let digest = match v.expose().strip_prefix("sha256:") {
                Some(hex) => match aigw_core::hex::decode32(hex.trim()) {
                    Some(d) => d,
                    None => {
                        unusable.push(bad("sha256: value is not 64 hex digits"));
                        continue;
                    }
                },
                None if v.expose().is_empty() => {
                    unusable.push(bad("secret is empty"));
                    continue;
                }
                None => Sha256::digest(v.expose().as_bytes()).into(),
            };
            entries.push((
                digest,
                Arc::new(Principal {
                    method: Method::ApiKey,
                    subject: k.name.clone(),
                    issuer: None,
                    client_id: None,
                    user: Some(k.user.clone().unwrap_or_else(|| k.name.clone())),
                    agent: Some(k.agent.clone().unwrap_or_else(|| k.name.clone())),
                    groups: Vec::new(),
                    scopes: Vec::new(),
                }),
            ));
        }
        (Self { entries }, unusable)
    }

    /// The principal of `presented`, comparing against every key (no early exit).
    pub fn authenticate(&self, presented: &str) -> Option<&Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (d, p) in &self.entries {
            if bool::from(d.ct_eq(&digest)) && found.is_none() {
                found = Some(p);
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Each key's SHA-256 digest and principal (for the filter's fast-path snapshot).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8; 32], &Arc<Principal>)> {
        self.entries.iter().map(|(d, p)| (d, p))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;

    fn cfg(pairs: &[(&str, &str)]) -> Vec<ApiKeyConfig> {
        pairs
            .iter()
            .map(|(n, s)| ApiKeyConfig {
                name: n.to_string(),
                secret: s.to_string(),
                user: None,
                agent: None,
            })
            .collect()
    }

    #[test]
    fn plain_and_hashed_keys() {
        let hashed = format!(
            "sha256:{}",
            aigw_core::hex::encode(&Sha256::digest(b"gw-two"))
        );
        let secrets = Snapshot::from([
            ("K1".into(), SecretValue::new("gw-one")),
            ("K2".into(), SecretValue::new(&hashed)),
        ]);
        let (keys, bad) = ApiKeys::build(
            &cfg(&[("one", "K1"), ("two", "K2"), ("three", "K3")]),
            &secrets,
        );
        assert_eq!(keys.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].secret, "K3");
        assert_eq!(&*keys.authenticate("gw-one").unwrap().subject, "one");
        assert_eq!(&*keys.authenticate("gw-two").unwrap().subject, "two");
        assert!(keys.authenticate("gw-three").is_none());
        assert!(keys.authenticate("").is_none());
        assert!(keys.authenticate(&hashed).is_none());
    }

    #[test]
    fn malformed_hash_is_reported() {
        let secrets = Snapshot::from([("K".into(), SecretValue::new("sha256:abc"))]);
        let (keys, bad) = ApiKeys::build(&cfg(&[("k", "K")]), &secrets);
        assert!(keys.is_empty());
        assert_eq!(bad[0].reason, "sha256: value is not 64 hex digits");
    }
}
