//! # aigw-ext-proc
//!
//! The gateway's ext_proc sidecar. Envoy opens one gRPC stream per HTTP request that the
//! wasm filter routed to a provider; the sidecar answers it:
//!
//! - [`server`]: the gRPC service; one [`exchange::Exchange`] per stream.
//! - [`exchange`]: the request's phases, top to bottom: handoff from the filter, [`auth`],
//!   then [`providers`] (the upstream credential from [`secrets`]).
//! - [`gateway`]: shared state (config, secret store, API keys) and its refresh.
//! - [`config_file`]: reads the filter's plugin configuration out of the Envoy YAML.
//! - [`settings`]: the command-line flags.

pub mod admin;
pub mod accounting;
pub mod auth;
pub mod budgets;
pub mod config_file;
pub mod exchange;
pub mod gateway;
pub mod metrics;
pub mod pricing;
pub mod providers;
pub mod record;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod store;
pub mod usage;

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
}

/// Loads and validates everything, then serves until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let config = config_file::load(&settings.config)?;
    let sources = SecretSources {
        env: settings.secrets_env || settings.secrets_dir.is_none(),
        dir: settings.secrets_dir.clone(),
    };
    let gateway = Arc::new(Gateway::start(config, sources).await?);
    gateway.spawn_refresh(Duration::from_millis(settings.secrets_refresh_ms.max(50)));

    let service = ExternalProcessorServer::new(server::Processor::new(Arc::clone(&gateway)))
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service);

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
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown(),
            )
            .await?;
    }
    tracing::info!("stopped");
    Ok(())
}

fn announce(gw: &Gateway, addr: &str) {
    tracing::info!(
        providers = gw.config.providers.len(),
        api_keys = gw.api_keys.load().len(),
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
