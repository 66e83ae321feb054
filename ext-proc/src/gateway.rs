//! The sidecar's shared state: the validated config, the secret store and the gateway API
//! keys derived from it. Requests read it lock-free; a background task refreshes secrets.

use crate::auth::api_key::ApiKeys;
use crate::auth::oidc::Oidc;
use crate::budgets::Budgets;
use crate::pricing::{Catalog, PriceOverride};
use crate::providers::bedrock::{credentials, BedrockSigner};
use crate::secrets::{SecretSources, SecretStore};
use crate::usage::Usage;
use aigw_core::{GatewayConfig, ProviderKind};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub struct Gateway {
    pub config: GatewayConfig,
    pub secrets: Arc<SecretStore>,
    pub api_keys: ArcSwap<ApiKeys>,
    pub oidc: Oidc,
    pub budgets: Budgets,
    pub limits: crate::limits::RateLimiter,
    records: std::sync::OnceLock<crate::store::sink::RecordSink>,
    /// Budgets and limits shared with other replicas, when configured.
    shared: std::sync::OnceLock<crate::shared::SharedState>,
    /// The admin port's metrics; the request path only bumps lock-free counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Each provider's prices: the built-in catalog plus its `models` overrides.
    pricing: HashMap<String, Catalog>,
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
    #[error("{field}: {reason}")]
    Pricing { field: String, reason: String },
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
        let pricing = catalogs(&config)?;
        let limits = crate::limits::RateLimiter::new(config.rate_limits.clone());
        let budgets = Budgets::new(config.budgets.clone());
        Ok(Self {
            config,
            secrets,
            api_keys: ArcSwap::from_pointee(keys),
            oidc,
            budgets,
            limits,
            records: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
            metrics: Default::default(),
            pricing,
            bedrock,
            sources,
        })
    }

    /// The exact cost of `usage` in nano-USD, or why there is none.
    pub fn price(
        &self,
        provider: &str,
        kind: ProviderKind,
        model: Option<&str>,
        usage: &Usage,
    ) -> Result<u64, String> {
        let catalog = self.pricing.get(provider).ok_or("provider has no prices")?;
        let model = model.ok_or("no model name to price")?;
        match catalog.cost(kind, model, usage) {
            crate::pricing::Cost::Priced { nanousd, .. } => {
                Ok(u64::try_from(nanousd).unwrap_or(u64::MAX))
            }
            crate::pricing::Cost::Unpriced { reason } => Err(reason.to_string()),
        }
    }

    /// The most a request can cost: every input byte as a token (a token is at least a byte
    /// of text) in the dearest input bucket the model has a price for, plus its output cap,
    /// priced together so that long-prompt tiers apply to both.
    pub fn estimate(
        &self,
        provider: &str,
        kind: ProviderKind,
        model: Option<&str>,
        input_bytes: u64,
        max_output_tokens: u64,
    ) -> Result<u64, String> {
        let with_input = |set: fn(&mut Usage, u64)| {
            let mut u = Usage {
                output: max_output_tokens,
                ..Default::default()
            };
            set(&mut u, input_bytes);
            self.price(provider, kind, model, &u)
        };
        let buckets: [fn(&mut Usage, u64); 5] = [
            |u, n| u.input = n,
            |u, n| u.cache_write_5m = n,
            |u, n| u.cache_write_1h = n,
            |u, n| u.cache_write_30m = n,
            |u, n| u.cache_write_12h = n,
        ];
        // Plain input must have a price; a cache bucket without one cannot be charged.
        let plain = with_input(buckets[0])?;
        Ok(buckets[1..]
            .iter()
            .filter_map(|b| with_input(*b).ok())
            .fold(plain, u64::max))
    }

    /// Queues a usage record for the store; never blocks.
    pub fn submit(&self, record: crate::record::UsageRecord) {
        if let Some(sink) = self.records.get() {
            sink.submit(record);
        }
    }

    /// Queues a usage record; the receiver fires once it is committed (PostgreSQL mode
    /// holds a response's end until then). `None`: not queued.
    pub fn submit_committed(
        &self,
        record: crate::record::UsageRecord,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.records.get()?.submit_committed(record)
    }

    /// The shared budgets and limits, if this replica uses them.
    pub fn shared(&self) -> Option<&crate::shared::SharedState> {
        self.shared.get()
    }

    /// Connects the shared backends (once, at start-up).
    pub fn set_shared(&self, shared: crate::shared::SharedState) {
        let _ = self.shared.set(shared);
    }

    /// Connects the record sink (once, at start-up).
    pub fn set_records(&self, sink: crate::store::sink::RecordSink) {
        let _ = self.records.set(sink);
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

/// The built-in catalog, with each provider's `models` price overrides on top.
fn catalogs(config: &GatewayConfig) -> Result<HashMap<String, Catalog>, StartError> {
    let builtin = Catalog::builtin();
    let mut out = HashMap::new();
    for (i, p) in config.providers.iter().enumerate() {
        let mut c = builtin.clone();
        for (j, m) in p.models.iter().flatten().enumerate() {
            if m.prices.is_empty() {
                continue;
            }
            let mut obj = serde_json::Map::new();
            obj.insert("model".into(), m.name.clone().into());
            for (k, v) in &m.prices {
                obj.insert(k.clone(), v.clone().into());
            }
            let field = format!("providers[{i}].models[{j}]");
            let o: PriceOverride =
                serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| {
                    StartError::Pricing {
                        field: field.clone(),
                        reason: e.to_string(),
                    }
                })?;
            c.set_override(p.kind, o).map_err(|e| StartError::Pricing {
                field,
                reason: e.to_string(),
            })?;
        }
        out.insert(p.name.clone(), c);
    }
    Ok(out)
}
