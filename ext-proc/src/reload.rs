//! Config reload without restart. The refresh task (every `--secrets-refresh-ms`, and at
//! once on SIGHUP) re-reads the `--config` file; when the gateway config in it changed, it
//! is validated exactly as at start-up (field-named errors, secret references, prices,
//! policies, Bedrock credentials) and, when valid, swapped in for new requests
//! ([`Gateway::apply`]). Requests already running finish under the config they started
//! with. A refused config changes nothing: the old one stays, the error is logged, counted
//! (`aigw_config_reload_failures_total`) and shown at `GET /api/v1/config`; it is tried
//! again when the file or the secrets change.
//!
//! The filter follows: the fast-path snapshot it polls every second carries the sidecar's
//! plugin configuration, and the filter rebuilds its provider table when that differs from
//! its own, so both sides route by the same table within a poll of each other.

use crate::config_file;
use crate::gateway::Gateway;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Mutex;

/// The config file and what became of its versions. Touched by the refresh task and the
/// admin API only, never by a request.
pub struct Reload {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// The file as last read, and whether its config was refused.
    text: String,
    refused: bool,
    status: Status,
}

/// `GET /api/v1/config`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub path: String,
    /// The live config's version: the first 16 hex digits of its JSON's SHA-256, as the
    /// log lines name it.
    pub version: String,
    pub loaded_at_ms: i64,
    /// Configs applied since start, and configs refused.
    pub reloads: u64,
    pub failures: u64,
    /// Why the file's current content was refused; `None` when the live config is the
    /// file's.
    pub error: Option<String>,
    pub error_at_ms: Option<i64>,
}

/// The version of a config, from its JSON.
pub fn version(json: &str) -> String {
    aigw_core::hex::encode(&Sha256::digest(json.as_bytes()))[..16].to_string()
}

impl Reload {
    pub fn new(path: PathBuf, text: String) -> Self {
        Self {
            state: Mutex::new(State {
                text,
                refused: false,
                status: Status {
                    path: path.display().to_string(),
                    version: String::new(),
                    loaded_at_ms: crate::store::time::now_ms(),
                    reloads: 0,
                    failures: 0,
                    error: None,
                    error_at_ms: None,
                },
            }),
            path,
        }
    }

    pub fn status(&self, gw: &Gateway) -> Status {
        let mut s = self.lock().status.clone();
        s.version = version(&gw.live().plugin_json);
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a check did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Applied { version: String },
    Refused(String),
}

/// Re-reads the config file and applies it if it changed. `secrets_changed`: a config
/// refused for its secrets is tried again.
pub async fn check(gw: &Gateway, secrets_changed: bool) -> Outcome {
    let path = gw.reload.path.clone();
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(t) => t,
        // Mid-replace (a ConfigMap's symlink swap) or gone: keep what runs and look again.
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "config file unreadable; keeping the live config");
            return Outcome::Unchanged;
        }
    };
    {
        let st = gw.reload.lock();
        if st.text == text && !(st.refused && secrets_changed) {
            return Outcome::Unchanged;
        }
    }
    let outcome = match config_file::parse(&path.display().to_string(), &text) {
        Err(e) => Outcome::Refused(e.to_string()),
        Ok((config, json)) => {
            let live = gw.live();
            if live.config == config && live.plugin_json == json {
                Outcome::Unchanged // the rest of the Envoy YAML changed
            } else {
                let v = version(&json);
                match gw.apply(config, json).await {
                    Ok(()) => Outcome::Applied { version: v },
                    Err(e) => Outcome::Refused(format!("{}: {e}", path.display())),
                }
            }
        }
    };
    let now = crate::store::time::now_ms();
    let mut st = gw.reload.lock();
    st.text = text;
    st.refused = matches!(outcome, Outcome::Refused(_));
    match &outcome {
        Outcome::Unchanged => {
            st.status.error = None;
            st.status.error_at_ms = None;
        }
        Outcome::Applied { version } => {
            tracing::info!(%version, "config reloaded");
            st.status.reloads += 1;
            st.status.loaded_at_ms = now;
            st.status.error = None;
            st.status.error_at_ms = None;
            gw.metrics.config_applied();
        }
        Outcome::Refused(why) => {
            tracing::error!(error = %why, "new config refused; the live config stays");
            st.status.failures += 1;
            st.status.error = Some(why.clone());
            st.status.error_at_ms = Some(now);
            gw.metrics.config_refused();
        }
    }
    gw.metrics.set_config_file_refused(st.refused);
    outcome
}

#[cfg(test)]
mod tests;
