//! # aigw-ext-proc
//!
//! The gateway's ext_proc sidecar. Envoy opens one gRPC stream per HTTP request that the
//! wasm filter routed to a provider and did not complete alone (its fast path, which the
//! sidecar governs through [`feed`]); the sidecar answers it:
//!
//! - [`server`]: the gRPC service; one [`exchange::Exchange`] per stream.
//! - [`feed`]: the filter's fast path: what it may complete alone, and its usage records.
//! - [`exchange`]: the request's phases, top to bottom: handoff from the filter, [`auth`]
//!   and access, [`budgets`] (reserve), [`providers`] (the upstream credential from
//!   [`secrets`], or a SigV4 signature), then [`accounting`] along the response ([`usage`]
//!   extraction, [`pricing`]) into a [`record`].
//! - [`mcp`]: the MCP gateway at `/mcp`: upstream MCP servers aggregated, or behind a
//!   tool search (deferred loading).
//! - [`store`]: records written off the request path (SQLite or PostgreSQL); [`admin`]
//!   serves the usage API and [`metrics`] on the admin port.
//! - [`request_log`]: the bodies of calls to providers that log them, captured along the
//!   exchange, redacted and stored off the request path, pruned by retention.
//! - [`gateway`]: shared state (the [`gateway::Live`] config and what is built from it,
//!   secret store, API keys) and its refresh; [`reload`] swaps in a changed config file.
//! - [`traces`]: one OpenTelemetry span per call, from its record, exported over OTLP.
//! - [`config_file`]: reads the filter's plugin configuration out of the Envoy YAML.
//! - [`settings`]: the command-line flags.

pub mod admin;
pub mod admission;
pub mod auth;
pub mod budgets;
pub mod config_file;
pub mod exchange;
pub mod feed;
pub mod gateway;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod pricing;
pub mod providers;
pub mod reload;
pub mod request_log;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod shared;
pub mod store;
pub mod traces;
pub mod unified;

// Metering is shared with the filter (its fast path); re-exported under the old paths.
pub use aigw_metering::{accounting, record, usage};

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;
use gateway::Gateway;
use secrets::SecretSources;
use settings::Settings;
use std::sync::Arc;
use std::time::Duration;

/// Bedrock bodies (up to 10 MiB and more) arrive in one message; tonic's 4 MiB default
/// would fail them.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config_file::ConfigFileError),
    #[error(transparent)]
    Start(#[from] gateway::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("{0}")]
    Unified(String),
    #[error("usage store {path}: {reason}")]
    Store { path: String, reason: String },
    #[error("traces: {0}")]
    Traces(String),
}

/// Loads and validates everything, then serves until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let loaded = config_file::load(&settings.config)?;
    let sources = SecretSources {
        env: settings.secrets_env || settings.secrets_dir.is_none(),
        dir: settings.secrets_dir.clone(),
    };
    // Policies are compiled here, so an invalid one stops the start before anything listens.
    let gateway = Arc::new(Gateway::start(loaded, sources).await?);
    let unified = unified::Unified::new(Arc::clone(&gateway), &settings.envoy_url)
        .map_err(RunError::Unified)?;
    let mcp = mcp::McpGateway::start(Arc::clone(&gateway), Default::default())
        .map_err(RunError::Unified)?;
    gateway.spawn_refresh(Duration::from_millis(settings.secrets_refresh_ms.max(50)));

    // Usage records: a store fed by a writer thread; metrics follow the records.
    let store = open_store(&settings, &gateway).await?;
    let metrics = Arc::clone(&gateway.metrics);
    let sink =
        store::RecordSink::start(Arc::clone(&store), Arc::clone(&metrics), Default::default())
            .map_err(|e| store_error(&settings, e.to_string()))?;
    gateway.set_records(sink.clone());
    let retention = request_log::writer::Retention::of(&gateway.live().config.request_logs);
    let logs =
        request_log::RequestLogWriter::start(Arc::clone(&store), Arc::clone(&metrics), retention)
            .map_err(|e| store_error(&settings, e.to_string()))?;
    gateway.set_request_logs(logs);
    if let Some(endpoint) = &settings.otlp_endpoint {
        let traces = traces::Traces::start(endpoint, &settings.otel_service_name)
            .map_err(RunError::Traces)?;
        gateway.set_traces(traces);
        tracing::info!(endpoint = %endpoint, "traces exported over OTLP/gRPC");
    }
    if settings.admin_listen != "off" {
        serve_admin(&settings, &gateway, store, metrics, &mcp).await?;
    }

    let service = ExternalProcessorServer::new(server::Processor::new(Arc::clone(&gateway)))
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
    // ext_proc and, on the same port, the filter's fast-path feed and the unified endpoint.
    let http = feed::router(Arc::clone(&gateway))
        .merge(unified::router(Arc::new(unified)))
        .merge(mcp::router(Arc::clone(&mcp)));
    let routes = tonic::service::Routes::from(http).add_service(service);
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_routes(routes);

    let listen_err = |source| RunError::Listen {
        addr: settings.listen.clone(),
        source,
    };
    if let Some(path) = settings.listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).map_err(listen_err)?;
        announce(&gateway, &settings.listen);
        router
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                shutdown(),
            )
            .await?;
    } else {
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .map_err(listen_err)?;
        announce(&gateway, &settings.listen);
        router
            .serve_with_incoming_shutdown(
                // Accepted sockets need TCP_NODELAY themselves (the builder's setting is for
                // listeners tonic binds): the unified endpoint's answers go out as several
                // HTTP/2 frames, and Nagle would hold them for Envoy's delayed ACK (40 ms).
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown(),
            )
            .await?;
    }
    mcp.stop();
    gateway.shutdown_traces();
    // Every accepted record is committed before the process ends.
    let report = sink.shutdown(Duration::from_secs(5));
    tracing::info!(
        committed = report.stats.committed,
        dropped = report.stats.dropped,
        "stopped"
    );
    Ok(())
}

/// The usage store the settings name and, with PostgreSQL or Redis, the budgets and limits
/// shared with other replicas. Everything is connected and migrated before anything listens.
async fn open_store(
    settings: &Settings,
    gw: &Arc<Gateway>,
) -> Result<Arc<dyn store::UsageStore>, RunError> {
    let err = |reason: String| store_error(settings, reason);
    let mut shared = shared::SharedState {
        postgres: None,
        redis: None,
        failure: settings.shared_state_failure,
    };
    if let Some(url) = &settings.redis {
        let counters = shared::redis::RequestCounters::connect(url)
            .await
            .map_err(|e| RunError::Store {
                path: "redis".into(),
                reason: e,
            })?;
        shared.redis = Some(counters);
    }
    let store: Arc<dyn store::UsageStore> = match settings.postgres_url() {
        Some(url) => {
            let url_owned = url.to_string();
            let pg = tokio::task::spawn_blocking(move || {
                store::postgres::PostgresStore::open(&url_owned)
            })
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(e.to_string()))?;
            let name = format!("{}:{}", hostname(), std::process::id());
            let expiry = Duration::from_millis(settings.hold_expiry_ms.max(100));
            let counters = shared::postgres::Counters::connect(url, &name, expiry)
                .await
                .map_err(err)?;
            counters.spawn_heartbeat();
            shared.postgres = Some(counters);
            Arc::new(pg)
        }
        None => {
            let sqlite = store::sqlite::SqliteStore::open(&settings.store, Default::default())
                .map_err(|e| err(e.to_string()))?;
            let sqlite: Arc<dyn store::UsageStore> = Arc::new(sqlite);
            // One replica: spend already recorded this window counts against its budgets.
            gw.set_spend_store(Arc::clone(&sqlite));
            sqlite
        }
    };
    if shared.postgres.is_none() && settings.redis.is_none() {
        return Ok(store);
    }
    if shared.redis.is_none()
        && gw
            .live()
            .config
            .rate_limits
            .iter()
            .any(|r| r.limits.iter().any(|(k, _)| !k.counts_tokens()))
    {
        tracing::warn!("request-rate limits count per replica: give --redis to share them");
    }
    gw.set_shared(shared);
    Ok(store)
}

fn store_error(settings: &Settings, reason: String) -> RunError {
    RunError::Store {
        // A URL's password never reaches a log.
        path: match settings.postgres_url() {
            Some(url) => redact_url(url),
            None => settings.store.display().to_string(),
        },
        reason,
    }
}

/// `postgres://user:secret@host/db?password=x` as `postgres://user@host/db`: the password
/// and the query (libpq takes a `password` parameter there too) are left out.
fn redact_url(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(u, _)| u);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The host part starts after the last `@` (a password may contain one).
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}@{host}")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "replica".into())
}

/// The admin port: the usage API, metrics, budgets and the dashboard, behind the admin token.
async fn serve_admin(
    settings: &Settings,
    gw: &Arc<Gateway>,
    store: Arc<dyn store::UsageStore>,
    metrics: Arc<metrics::Metrics>,
    mcp: &Arc<mcp::McpGateway>,
) -> Result<(), RunError> {
    let secret_name = settings.admin_token_secret.clone();
    let token = gw
        .secrets
        .snapshot()
        .get(&secret_name)
        .map(|v| v.expose().to_string());
    let live_gw = Arc::clone(gw);
    let names = move || {
        let live = live_gw.live();
        live.config
            .providers
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    let api = match token.as_deref().map(admin::BearerToken::new) {
        Some(Ok(t)) => admin::AdminApi::new(store, metrics, t),
        _ => {
            tracing::warn!(secret = %secret_name, "no admin token in the secret store: the admin API refuses every request");
            admin::AdminApi::new(store, metrics, |_: &axum::http::HeaderMap| {
                Err(admin::Denied::Forbidden(
                    "the admin token is not configured".into(),
                ))
            })
        }
    };
    let router = api
        .known_providers(Arc::new(names))
        .protect(admin::budgets::router(Arc::clone(gw)))
        .protect(admin::config::router(Arc::clone(gw)))
        .protect(mcp::admin_router(Arc::clone(mcp)))
        .protect(admin::dashboard::router(Arc::clone(gw)))
        .router();
    let listener = tokio::net::TcpListener::bind(&settings.admin_listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: settings.admin_listen.clone(),
            source,
        })?;
    tracing::info!("admin API listening on {}", settings.admin_listen);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok(())
}

fn announce(gw: &Gateway, addr: &str) {
    let live = gw.live();
    tracing::info!(
        providers = live.config.providers.len(),
        api_keys = gw.api_keys.load().len(),
        config = %reload::version(&live.plugin_json),
        "aigw-ext-proc listening on {addr}"
    );
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_urls_lose_their_passwords() {
        use super::redact_url;
        assert_eq!(
            redact_url("postgres://aigw:s3cr@t@db:5432/aigw"),
            "postgres://aigw@db:5432/aigw"
        );
        assert_eq!(
            redact_url("postgresql://db/aigw?user=a&password=s3cret"),
            "postgresql://db/aigw"
        );
        assert_eq!(redact_url("postgres://db/aigw"), "postgres://db/aigw");
    }
}
