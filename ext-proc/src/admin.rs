//! The admin API: usage queries and Prometheus metrics, on the sidecar's admin port.
//!
//! | endpoint | auth | answer |
//! | --- | --- | --- |
//! | `GET /healthz` | none | `{"status":"ok"}` |
//! | `GET /metrics` | see [`MetricsAccess`] | Prometheus text ([`crate::metrics`]) |
//! | `GET /api/v1/providers/summary?days=` | admin | per provider, last `days` (7) UTC days |
//! | `GET /api/v1/usage/series?from=&to=&granularity=&group_by=&provider=&model=&user=&agent=` | admin | JSON series |
//! | `GET /api/v1/usage/series.csv?…` | admin | the same points as CSV |
//! | `GET /api/v1/usage/records.csv?from=&to=&limit=` | admin | raw records as CSV |
//! | `GET /api/v1/tool-calls?from=&to=&limit=` | admin | MCP tool calls, newest first ([`crate::mcp::record`]) |
//! | `GET /api/v1/mcp/servers` | admin | each upstream MCP server: connected, tools, last error |
//! | `GET /api/v1/budgets` | admin | every agent's budget now ([`budgets`]) |
//! | `GET /api/v1/config` | admin | the live config's version, reloads, the last refusal ([`config`]) |
//! | `GET /`, `GET /api/v1/providers`, `POST /api/v1/providers/{name}/test` | see [`dashboard`] | the operator dashboard |
//!
//! Times are RFC 3339 or `YYYY-MM-DD` (UTC midnight); ranges are `[from, to)`, `to`
//! defaulting to now and `from` to 7 days before `to`. Costs are integer `cost_nanousd`
//! plus an exact decimal-string `cost_usd`. Errors use the gateway's one JSON error shape.
//!
//! # Layout
//! - [`auth`]: [`AdminAuth`], the pluggable check, and the static [`BearerToken`].
//! - `api`: the handlers and their JSON shapes.
//! - `query`: parameter parsing and limits ([`MAX_BUCKETS`], [`MAX_RECORD_LIMIT`], …).
//! - `error`: every failure → [`aigw_core::GatewayError`], in one match.

mod api;
pub mod auth;
pub mod budgets;
pub mod config;
pub mod dashboard;
mod error;
mod query;

pub use auth::{AdminAuth, BearerToken, Denied};
pub use query::{
    DEFAULT_RECORD_LIMIT, DEFAULT_SUMMARY_DAYS, MAX_BUCKETS, MAX_RECORD_LIMIT, MAX_SUMMARY_DAYS,
};

use crate::metrics::Metrics;
use crate::store::UsageStore;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::ApiError;
use std::sync::Arc;

/// Who may read `GET /metrics`.
#[derive(Clone, Default)]
pub enum MetricsAccess {
    /// The admin credential, like the rest of the API (the default: metrics name
    /// providers, models and spend).
    #[default]
    Admin,
    /// Anyone who reaches the admin port: for a scraper on a private network.
    Public,
    /// A check of its own, e.g. a scrape-only [`BearerToken`], so the scraper does not hold
    /// the admin token.
    Separate(Arc<dyn AdminAuth>),
}

/// The configured providers' names, so the summary lists idle providers too.
pub type KnownProviders = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Builds the admin [`Router`].
///
/// ```no_run
/// # use std::sync::Arc;
/// # use aigw_ext_proc::{admin::{AdminApi, BearerToken}, metrics::Metrics, store::sqlite::SqliteStore};
/// # fn demo(store: Arc<SqliteStore>, metrics: Arc<Metrics>, token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let router = AdminApi::new(store, metrics, BearerToken::new(token)?).router();
/// # let _ = router; Ok(()) }
/// ```
pub struct AdminApi {
    store: Arc<dyn UsageStore>,
    metrics: Arc<Metrics>,
    auth: Arc<dyn AdminAuth>,
    metrics_access: MetricsAccess,
    known_providers: Option<KnownProviders>,
    /// More routes (with their state applied) behind the same admin check.
    protected: Vec<Router>,
}

pub(crate) struct AdminState {
    pub(crate) store: Arc<dyn UsageStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) known_providers: Option<KnownProviders>,
}

impl AdminApi {
    pub fn new(store: Arc<dyn UsageStore>, metrics: Arc<Metrics>, auth: impl AdminAuth) -> Self {
        Self {
            store,
            metrics,
            auth: Arc::new(auth),
            metrics_access: MetricsAccess::default(),
            known_providers: None,
            protected: Vec::new(),
        }
    }

    /// Adds routes that need the admin credential, e.g. [`budgets::router`].
    pub fn protect(mut self, routes: Router) -> Self {
        self.protected.push(routes);
        self
    }

    pub fn metrics_access(mut self, access: MetricsAccess) -> Self {
        self.metrics_access = access;
        self
    }

    pub fn known_providers(mut self, providers: KnownProviders) -> Self {
        self.known_providers = Some(providers);
        self
    }

    pub fn router(self) -> Router {
        let state = Arc::new(AdminState {
            store: self.store,
            metrics: self.metrics,
            known_providers: self.known_providers,
        });
        let admin = Router::new()
            .route("/api/v1/providers/summary", get(api::providers_summary))
            .route("/api/v1/usage/series", get(api::usage_series))
            .route("/api/v1/usage/series.csv", get(api::usage_series_csv))
            .route("/api/v1/usage/records.csv", get(api::records_csv))
            .route("/api/v1/tool-calls", get(api::tool_calls))
            .route("/api/v1/analytics/latency", get(api::latency))
            .route("/api/v1/requests", get(api::requests))
            .route("/api/v1/requests/{request_id}", get(api::request))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&self.auth),
                require,
            ));
        let mut extra = Router::new();
        // axum panics on a `route_layer` over no routes.
        let any_protected = !self.protected.is_empty();
        for r in self.protected {
            extra = extra.merge(r);
        }
        if any_protected {
            extra = extra.route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&self.auth),
                require,
            ));
        }
        let metrics = Router::new().route("/metrics", get(api::metrics));
        let metrics = match self.metrics_access {
            MetricsAccess::Public => metrics,
            MetricsAccess::Admin => {
                metrics.route_layer(axum::middleware::from_fn_with_state(self.auth, require))
            }
            MetricsAccess::Separate(auth) => {
                metrics.route_layer(axum::middleware::from_fn_with_state(auth, require))
            }
        };
        Router::new()
            .route("/healthz", get(api::healthz))
            .merge(admin)
            .merge(metrics)
            .fallback(api::not_found)
            .method_not_allowed_fallback(api::method_not_allowed)
            .with_state(state)
            .merge(extra)
            .merge(dashboard::shell())
    }
}

/// Runs the check before the handler; a refusal answers in the error shape.
async fn require(State(auth): State<Arc<dyn AdminAuth>>, request: Request, next: Next) -> Response {
    match auth.authorize(request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(denied) => ApiError::Denied(denied).into_response(),
    }
}

#[cfg(test)]
mod tests;
