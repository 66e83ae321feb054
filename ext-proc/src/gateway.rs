//! The sidecar's shared state: the validated config, the secret store and the gateway API
//! keys derived from it. Requests read it lock-free; a background task refreshes secrets.

use crate::auth::api_key::ApiKeys;
use crate::auth::oidc::Oidc;
use crate::providers::bedrock::{credentials, BedrockSigner};
use crate::secrets::{SecretSources, SecretStore};
use aigw_core::{GatewayConfig, ProviderKind};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Gateway {
    pub config: GatewayConfig,
    pub secrets: Arc<SecretStore>,
    pub api_keys: ArcSwap<ApiKeys>,
    pub oidc: Oidc,
    /// Signers of the enabled Bedrock providers, by provider name.
    pub bedrock: HashMap<String, BedrockSigner>,
    sources: SecretSources,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the secret store: {0}")]
    Secrets(#[from] std::io::Error),
    #[error("secret references do not resolve: {}", .0.join(", "))]
    Unresolved(Vec<String>),
    #[error("provider '{provider}': {reason}")]
    Bedrock { provider: String, reason: String },
    #[error("{0}")]
    Oidc(String),
}

impl Gateway {
    /// Loads every secret once and refuses a config whose secret references do not resolve
    /// or whose Bedrock providers cannot get AWS credentials.
    pub async fn start(config: GatewayConfig, sources: SecretSources) -> Result<Self, StartError> {
        let snap = sources.load()?;
        let unresolved: Vec<String> = config
            .secret_refs()
            .into_iter()
            .filter(|(_, name)| !snap.contains_key(*name))
            .map(|(field, name)| format!("{name} (from {field})"))
            .collect();
        if !unresolved.is_empty() {
            return Err(StartError::Unresolved(unresolved));
        }
        let (keys, unusable) = ApiKeys::build(&config.api_keys, &snap);
        if let Some(u) = unusable.first() {
            return Err(StartError::Unresolved(vec![format!(
                "{} (API key '{}': {})",
                u.secret, u.name, u.reason
            )]));
        }
        let secrets = Arc::new(SecretStore::new(snap));
        let mut bedrock = HashMap::new();
        for p in config
            .providers
            .iter()
            .filter(|p| p.enabled && p.kind == ProviderKind::Bedrock)
        {
            let source =
                credentials::build(p, &secrets)
                    .await
                    .map_err(|reason| StartError::Bedrock {
                        provider: p.name.clone(),
                        reason,
                    })?;
            let signer = BedrockSigner {
                provider: p.name.clone(),
                region: p.region.clone().unwrap_or_default(),
                credentials: source,
            };
            bedrock.insert(p.name.clone(), signer);
        }
        let oidc = Oidc::start(&config.oidc).map_err(StartError::Oidc)?;
        Ok(Self {
            config,
            secrets,
            api_keys: ArcSwap::from_pointee(keys),
            oidc,
            bedrock,
            sources,
        })
    }

    /// The exact cost of `usage` in nano-USD, or why there is none.
    pub fn price(&self, _kind: ProviderKind, _model: Option<&str>, _usage: &crate::usage::Usage) -> Result<u64, String> {
        Err("pricing not loaded".into())
    }

    /// Queues a usage record for the store; never blocks.
    pub fn submit(&self, record: crate::record::UsageRecord) {
        tracing::debug!(?record, "usage record");
    }

    /// Re-reads the secret store; on change, swaps in the new snapshot and API keys.
    pub async fn refresh(self: &Arc<Self>) {
        let gw = Arc::clone(self);
        let loaded = tokio::task::spawn_blocking(move || gw.sources.load()).await;
        let snap = match loaded {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "secret store unreadable; keeping the last good secrets");
                return;
            }
            Err(_) => return,
        };
        let changed = self.secrets.replace(snap);
        if changed.is_empty() {
            return;
        }
        tracing::info!(secrets = ?changed, "secrets changed");
        let (keys, unusable) = ApiKeys::build(&self.config.api_keys, &self.secrets.snapshot());
        for u in unusable {
            tracing::warn!(api_key = %u.name, secret = %u.secret, reason = u.reason, "gateway API key unusable");
        }
        self.api_keys.store(Arc::new(keys));
    }

    /// Refreshes every `every` until the process ends.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        let gw = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                gw.refresh().await;
            }
        });
    }
}
