//! The sidecar's shared state: the validated config and what is built from it ([`Live`]),
//! the secret store and the gateway API keys. Requests read it lock-free; a background
//! task refreshes secrets and reloads the config ([`crate::reload`]).

use crate::auth::api_key::ApiKeys;
use crate::auth::oidc::Oidc;
use crate::budgets::Budgets;
use crate::config_file::Loaded;
use crate::pricing::{Catalog, PriceOverride};
use crate::providers::bedrock::{credentials, BedrockSigner};
use crate::secrets::{SecretSources, SecretStore};
use crate::unified::plan::Ejections;
use crate::unified::policy::Policies;
use crate::usage::Usage;
use aigw_core::{GatewayConfig, ProviderKind};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub struct Gateway {
    /// What the current config makes of everything; a reload swaps it whole.
    live: ArcSwap<Live>,
    pub secrets: Arc<SecretStore>,
    pub api_keys: ArcSwap<ApiKeys>,
    records: std::sync::OnceLock<crate::store::sink::RecordSink>,
    request_logs: std::sync::OnceLock<crate::request_log::RequestLogWriter>,
    /// The OTLP span exporter, when traces are on.
    traces: std::sync::OnceLock<crate::traces::Traces>,
    /// Budgets and limits shared with other replicas, when configured.
    shared: std::sync::OnceLock<crate::shared::SharedState>,
    /// The admin port's metrics; the request path only bumps lock-free counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    sources: SecretSources,
    /// The config file and what became of its last versions.
    pub reload: crate::reload::Reload,
    /// One replica: the store whose recorded spend budgets start from.
    spend_store: std::sync::OnceLock<Arc<dyn crate::store::UsageStore>>,
}

/// Everything one version of the config makes: the config itself and what is built from
/// it. A request takes the `Live` current when it starts and keeps it to its end; a reload
/// builds the next one beside it (the counters of budgets and limits carry over) and swaps.
pub struct Live {
    pub config: GatewayConfig,
    /// The plugin configuration as JSON: the filter's provider table follows it.
    pub plugin_json: String,
    pub oidc: Arc<Oidc>,
    /// Each provider's prices: the built-in catalog plus its `models` overrides.
    pricing: HashMap<String, Catalog>,
    /// Signers of the enabled Bedrock providers, by provider name.
    bedrock: HashMap<String, Arc<BedrockSigner>>,
    pub budgets: Budgets,
    pub limits: crate::limits::RateLimiter,
    /// The routing policies of the unified endpoint, compiled.
    pub policies: Policies,
    /// The unified endpoint's ejected pool targets.
    pub ejections: Ejections,
    /// The request logs' redaction rules, compiled.
    pub redactor: Arc<crate::request_log::redact::Redactor>,
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
    #[error("{0}")]
    Policy(String),
    #[error(transparent)]
    Redaction(#[from] crate::request_log::redact::BadRule),
}

impl Gateway {
    /// Loads every secret once and refuses a config whose secret references do not resolve
    /// or whose Bedrock providers cannot get AWS credentials.
    pub async fn start(loaded: Loaded, sources: SecretSources) -> Result<Self, StartError> {
        let snap = sources.load()?;
        let secrets = Arc::new(SecretStore::new(snap));
        let (live, keys) = Live::build(loaded.config, loaded.json, &secrets, None).await?;
        Ok(Self {
            live: ArcSwap::from_pointee(live),
            secrets,
            api_keys: ArcSwap::from_pointee(keys),
            records: std::sync::OnceLock::new(),
            request_logs: std::sync::OnceLock::new(),
            traces: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
            metrics: Default::default(),
            sources,
            reload: crate::reload::Reload::new(loaded.path, loaded.text),
            spend_store: std::sync::OnceLock::new(),
        })
    }

    /// The current config and what is built from it.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Builds the next [`Live`] from a new config and, when it is valid, swaps it in; on
    /// error the current one stays.
    pub async fn apply(&self, config: GatewayConfig, json: String) -> Result<(), StartError> {
        let current = self.live();
        let (next, keys) = Live::build(config, json, &self.secrets, Some(&current)).await?;
        let next = Arc::new(next);
        if let Some(store) = self.spend_store.get() {
            // A window the reload opened starts from the spend recorded in it (a blocking
            // read, off the runtime's workers; nothing uses `next` yet).
            let (store, cur, new) = (Arc::clone(store), Arc::clone(&current), Arc::clone(&next));
            let _ = tokio::task::spawn_blocking(move || {
                let budgets = &new.budgets;
                budgets.preload_recorded(store.as_ref(), |agent| {
                    cur.budgets.window_changes(agent, budgets.config())
                })
            })
            .await;
        }
        if let Some(w) = self.request_logs.get() {
            w.set_retention(crate::request_log::writer::Retention::of(
                &next.config.request_logs,
            ));
        }
        self.api_keys.store(Arc::new(keys));
        self.live.store(next);
        Ok(())
    }

    /// Queues a request log for the store; never blocks (dropped and counted when full).
    pub fn submit_request_log(&self, log: crate::request_log::writer::PendingLog) {
        if let Some(w) = self.request_logs.get() {
            w.submit(log);
        }
    }

    /// Connects the request-log writer (once, at start-up).
    pub fn set_request_logs(&self, writer: crate::request_log::RequestLogWriter) {
        let _ = self.request_logs.set(writer);
    }

    /// Queues a usage record for the store; never blocks.
    pub fn submit(&self, record: crate::record::UsageRecord) {
        self.trace(&record);
        if let Some(sink) = self.records.get() {
            sink.submit(record);
        }
    }

    /// Queues an MCP tool call's record; never blocks.
    pub fn submit_tool_call(&self, record: crate::mcp::record::ToolCallRecord) {
        if let Some(sink) = self.records.get() {
            sink.submit_tool_call(record);
        }
    }

    /// Queues a usage record; the receiver fires once it is committed (PostgreSQL mode
    /// holds a response's end until then). `None`: not queued.
    pub fn submit_committed(
        &self,
        record: crate::record::UsageRecord,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.trace(&record);
        self.records.get()?.submit_committed(record)
    }

    /// The call's span, when traces are on (the SDK queues it; never blocks).
    fn trace(&self, record: &crate::record::UsageRecord) {
        if let Some(t) = self.traces.get() {
            let live = self.live.load();
            let server = live
                .config
                .provider(&record.provider)
                .map(|p| p.upstream.authority.as_str());
            t.record(record, server);
        }
    }

    /// Turns traces on (once, at start-up).
    pub fn set_traces(&self, traces: crate::traces::Traces) {
        let _ = self.traces.set(traces);
    }

    /// Exports the spans still queued.
    pub fn shutdown_traces(&self) {
        if let Some(t) = self.traces.get() {
            t.shutdown();
        }
    }

    /// The shared budgets and limits, if this replica uses them.
    pub fn shared(&self) -> Option<&crate::shared::SharedState> {
        self.shared.get()
    }

    /// Connects the shared backends (once, at start-up).
    pub fn set_shared(&self, shared: crate::shared::SharedState) {
        let _ = self.shared.set(shared);
    }

    /// One replica: counts the spend `store` recorded in the budgets' current windows, now
    /// and for the windows a reload opens.
    pub fn set_spend_store(&self, store: Arc<dyn crate::store::UsageStore>) {
        self.live()
            .budgets
            .preload_recorded(store.as_ref(), |_| true);
        let _ = self.spend_store.set(store);
    }

    /// Connects the record sink (once, at start-up).
    pub fn set_records(&self, sink: crate::store::sink::RecordSink) {
        let _ = self.records.set(sink);
    }

    /// Re-reads the secret store; on change, swaps in the new snapshot and API keys and
    /// returns true.
    pub async fn refresh(self: &Arc<Self>) -> bool {
        let gw = Arc::clone(self);
        let loaded = tokio::task::spawn_blocking(move || gw.sources.load()).await;
        let snap = match loaded {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "secret store unreadable; keeping the last good secrets");
                return false;
            }
            Err(_) => return false,
        };
        let changed = self.secrets.replace(snap);
        if changed.is_empty() {
            return false;
        }
        tracing::info!(secrets = ?changed, "secrets changed");
        let (keys, unusable) =
            ApiKeys::build(&self.live().config.api_keys, &self.secrets.snapshot());
        for u in unusable {
            tracing::warn!(api_key = %u.name, secret = %u.secret, reason = u.reason, "gateway API key unusable");
        }
        self.api_keys.store(Arc::new(keys));
        true
    }

    /// Every `every`, and at once on SIGHUP, until the process ends: refreshes the secrets,
    /// then reloads the config file if it changed. One task does both, so a reload and a
    /// secret change never race.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        use tokio::signal::unix::{signal, SignalKind};
        let gw = Arc::clone(self);
        let mut hangup = signal(SignalKind::hangup()).ok();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let sighup = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = sighup => tracing::info!("SIGHUP: reloading"),
                }
                let changed = gw.refresh().await;
                crate::reload::check(&gw, changed).await;
            }
        });
    }
}

impl Live {
    /// Validates `config` against the secret store and builds everything from it. What
    /// did not change is taken over from `previous`: OIDC key caches, Bedrock credentials,
    /// and the counters of budgets, limits and ejections.
    async fn build(
        config: GatewayConfig,
        plugin_json: String,
        secrets: &Arc<SecretStore>,
        previous: Option<&Live>,
    ) -> Result<(Self, ApiKeys), StartError> {
        let snap = secrets.snapshot();
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
        let pricing = catalogs(&config)?;
        let policies = Policies::compile(&config.policies).map_err(StartError::Policy)?;
        let redactor = Arc::new(crate::request_log::redact::Redactor::new(
            &config.request_logs,
        )?);
        let mut bedrock = HashMap::new();
        for p in config
            .providers
            .iter()
            .filter(|p| p.enabled && p.kind == ProviderKind::Bedrock)
        {
            let same = previous.and_then(|prev| {
                let signer = prev.bedrock.get(&p.name)?;
                (prev.config.provider(&p.name) == Some(p)).then(|| Arc::clone(signer))
            });
            let signer = match same {
                Some(s) => s,
                None => {
                    let source = credentials::build(p, secrets).await.map_err(|reason| {
                        StartError::Bedrock {
                            provider: p.name.clone(),
                            reason,
                        }
                    })?;
                    Arc::new(BedrockSigner {
                        provider: p.name.clone(),
                        region: p.region.clone().unwrap_or_default(),
                        credentials: source,
                    })
                }
            };
            bedrock.insert(p.name.clone(), signer);
        }
        let oidc = match previous {
            Some(prev) if prev.config.oidc == config.oidc => Arc::clone(&prev.oidc),
            _ => Arc::new(Oidc::start(&config.oidc).map_err(StartError::Oidc)?),
        };
        let (budgets, limits, ejections) = match previous {
            Some(prev) => (
                prev.budgets.reconfigured(config.budgets.clone()),
                prev.limits.reconfigured(config.rate_limits.clone()),
                Ejections::carried(&config, &prev.config, &prev.ejections),
            ),
            None => (
                Budgets::new(config.budgets.clone()),
                crate::limits::RateLimiter::new(config.rate_limits.clone()),
                Ejections::new(&config),
            ),
        };
        let live = Self {
            config,
            plugin_json,
            oidc,
            pricing,
            bedrock,
            budgets,
            limits,
            policies,
            ejections,
            redactor,
        };
        Ok((live, keys))
    }

    /// The signer of an enabled Bedrock provider.
    pub fn bedrock(&self, provider: &str) -> Option<&BedrockSigner> {
        self.bedrock.get(provider).map(|s| s.as_ref())
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
