//! The secret store: upstream API keys and gateway API keys, looked up by reference name.
//!
//! Backends, looked up in this order: [`dir`] (one file per secret, as a Kubernetes Secret is
//! mounted) and [`env`] (environment variables). The store is a snapshot behind an
//! [`ArcSwap`]: a request reads it without a lock or any I/O, and a background task re-reads
//! the directory and swaps in a new snapshot when something changed, so a rotated key takes
//! effect for new requests without a restart.

pub mod dir;
pub mod env;

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Arc<str>);

impl SecretValue {
    pub fn new(v: &str) -> Self {
        Self(Arc::from(v))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// One consistent view of every secret.
pub type Snapshot = HashMap<String, SecretValue>;

/// Where secrets come from.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    pub dir: Option<PathBuf>,
    pub env: bool,
}

impl SecretSources {
    /// Reads every backend once. Blocking: call at start-up or from a blocking task.
    pub fn load(&self) -> std::io::Result<Snapshot> {
        let mut snap = if self.env {
            env::load()
        } else {
            Snapshot::new()
        };
        if let Some(d) = &self.dir {
            // The directory wins over the environment.
            snap.extend(dir::load(d)?);
        }
        Ok(snap)
    }
}

/// The live store.
#[derive(Debug)]
pub struct SecretStore {
    current: ArcSwap<Snapshot>,
}

impl SecretStore {
    pub fn new(initial: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// Lock-free read of the current snapshot.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Installs `next` if it differs; returns the names that changed (values never logged).
    pub fn replace(&self, next: Snapshot) -> Vec<String> {
        let cur = self.current.load();
        let mut changed: Vec<String> = next
            .iter()
            .filter(|(k, v)| cur.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(cur.keys().filter(|k| !next.contains_key(*k)).cloned())
            .collect();
        if !changed.is_empty() {
            changed.sort();
            self.current.store(Arc::new(next));
        }
        changed
    }
}

/// Trims the line ending a file or `echo` adds; keys never end in whitespace.
pub(crate) fn clean(v: &str) -> &str {
    v.trim_end_matches(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let v = SecretValue::new("sk-live-123");
        assert!(!format!("{v:?}").contains("sk-live"));
    }

    #[test]
    fn replace_reports_changes_only() {
        let s = SecretStore::new(Snapshot::from([("A".into(), SecretValue::new("1"))]));
        assert!(s
            .replace(Snapshot::from([("A".into(), SecretValue::new("1"))]))
            .is_empty());
        let changed = s.replace(Snapshot::from([
            ("A".into(), SecretValue::new("2")),
            ("B".into(), SecretValue::new("3")),
        ]));
        assert_eq!(changed, ["A", "B"]);
        assert_eq!(s.snapshot().get("A").unwrap().expose(), "2");
        assert_eq!(s.replace(Snapshot::new()), ["A", "B"]);
    }
}
