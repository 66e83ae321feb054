//! Command-line flags (each also readable from an `AIGW_*` environment variable).

use clap::Parser;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "aigw-ext-proc",
    version,
    about = "The LLM gateway's ext_proc sidecar"
)]
pub struct Settings {
    /// The Envoy YAML holding the gateway's wasm plugin configuration (or a bare gateway
    /// config file with `providers:`).
    #[arg(long, env = "AIGW_CONFIG", default_value = "envoy/envoy.yaml")]
    pub config: PathBuf,

    /// gRPC listen address: `host:port` or `unix:/path/to.sock`.
    #[arg(long, env = "AIGW_LISTEN", default_value = "127.0.0.1:9002")]
    pub listen: String,

    /// Directory with one file per secret (a mounted Kubernetes Secret). Looked up first.
    #[arg(long, env = "AIGW_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// Also look secrets up in environment variables (the default when no directory is given).
    #[arg(long, env = "AIGW_SECRETS_ENV")]
    pub secrets_env: bool,

    /// How often the secrets directory and the config file are re-read, in milliseconds
    /// (a changed config is reloaded; SIGHUP reloads at once).
    #[arg(long, env = "AIGW_SECRETS_REFRESH_MS", default_value_t = 1000)]
    pub secrets_refresh_ms: u64,

    /// The admin HTTP port: usage API, metrics, dashboard. `off` disables it.
    #[arg(long, env = "AIGW_ADMIN_LISTEN", default_value = "127.0.0.1:9003")]
    pub admin_listen: String,

    /// The secret holding the admin API's bearer token. Without it only /healthz answers.
    #[arg(
        long,
        env = "AIGW_ADMIN_TOKEN_SECRET",
        default_value = "AIGW_ADMIN_TOKEN"
    )]
    pub admin_token_secret: String,

    /// Where usage records go: a SQLite file, or a `postgres://` URL. PostgreSQL also holds
    /// the budgets and token limits every replica shares.
    #[arg(long, env = "AIGW_STORE", default_value = "aigw-usage.db")]
    pub store: PathBuf,

    /// Redis (`redis://host:port`) for request-rate limits shared by every replica. Without
    /// it they count per replica.
    #[arg(long, env = "AIGW_REDIS")]
    pub redis: Option<String>,

    /// What a call gets when PostgreSQL or Redis cannot check its budget or limits: `closed`
    /// refuses it (503 `shared_state_unavailable`), `open` forwards it unchecked.
    #[arg(
        long,
        env = "AIGW_SHARED_STATE_FAILURE",
        value_enum,
        default_value = "closed"
    )]
    pub shared_state_failure: crate::shared::FailureMode,

    /// A replica silent this long (no heartbeat into PostgreSQL) is dead: the others give
    /// back its budget and token holds.
    #[arg(long, env = "AIGW_HOLD_EXPIRY_MS", default_value_t = 30_000)]
    pub hold_expiry_ms: u64,

    /// Envoy's gateway listener, where the unified endpoint sends its native calls
    /// (`/llm/v1/providers/<name>/...`). Plain HTTP on loopback is the usual choice.
    #[arg(long, env = "AIGW_ENVOY_URL", default_value = "http://127.0.0.1:8080")]
    pub envoy_url: String,

    /// Where traces go: an OTLP/gRPC endpoint (`http://collector:4317`). Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The traces' `service.name`.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "aigw")]
    pub otel_service_name: String,

    /// Tokio worker threads (default: one per core).
    #[arg(long, env = "AIGW_WORKERS")]
    pub workers: Option<usize>,
}

impl Settings {
    /// The store setting as a PostgreSQL URL, if it is one.
    pub fn postgres_url(&self) -> Option<&str> {
        postgres_url(&self.store)
    }
}

fn postgres_url(store: &Path) -> Option<&str> {
    store
        .to_str()
        .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}
