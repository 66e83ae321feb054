//! The sidecar's half of the filter's fast path (see [`aigw_core::feed`]): the snapshot of
//! what the filter may complete alone, and the records of the calls it did. Served on the
//! gRPC port, next to ext_proc, to Envoy only.
//!
//! A provider is on the fast path when the filter can do everything the sidecar would:
//! a static upstream key (not Bedrock's SigV4, not Anthropic passthrough), no `models`
//! list to check and no request log to keep. A key may use it there when access allows it, no budget applies to its
//! agent and no rate limit to the provider (both need a reservation before the call). Everything else keeps the sidecar
//! path, so the fast path never answers differently, it only skips the round trip.
//!
//! The snapshot also carries the live plugin configuration, so the filter's provider table
//! follows a config reload ([`crate::reload`]).

use crate::auth::access;
use crate::gateway::Gateway;
use crate::providers::{self, anthropic, Upstream};
use crate::record::UsageRecord;
use aigw_core::feed::{
    FastKey, FastProvider, Snapshot, RECORDS_PATH, SNAPSHOT_PATH, VERSION_PARAM,
};
use aigw_core::handoff::Route;
use aigw_core::hex;
use aigw_core::ProviderKind;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// What the fast path may do now.
pub fn snapshot(gw: &Gateway) -> Snapshot {
    let live = gw.live();
    let secrets = gw.secrets.snapshot();
    let mut providers = Vec::new();
    if live.config.fast_path {
        for p in &live.config.providers {
            let eligible = p.enabled
                && p.kind != ProviderKind::Bedrock
                && !p.authorization_passthrough
                && p.models.is_none()
                // The filter never sees bodies for the request log.
                && !p.log_requests;
            if !eligible {
                continue;
            }
            let route = Route::of(p);
            let up = Upstream {
                route: &route,
                headers: None,
            };
            // A missing upstream key: the sidecar path answers the error.
            let Ok(m) = providers::upstream_mutation(&up, &secrets) else {
                continue;
            };
            let mut fp = FastProvider {
                name: p.name.clone(),
                set_headers: Vec::new(),
                default_headers: Vec::new(),
            };
            for h in m.0.set_headers.into_iter().filter_map(|o| o.header) {
                let Ok(value) = String::from_utf8(h.raw_value) else {
                    continue;
                };
                if h.key == "anthropic-version" && value == anthropic::DEFAULT_VERSION {
                    fp.default_headers.push((h.key, value));
                } else {
                    fp.set_headers.push((h.key, value));
                }
            }
            providers.push(fp);
        }
    }
    let mut keys = Vec::new();
    if !providers.is_empty() {
        let budgets = live.budgets.config();
        for (digest, principal) in gw.api_keys.load().entries() {
            let agent = principal.agent.as_deref().unwrap_or(&principal.subject);
            if budgets.for_agent(agent).is_some() {
                continue;
            }
            let allowed: Vec<String> = providers
                .iter()
                // A rate limit is counted by the sidecar, before the call.
                .filter(|fp| !live.limits.covers_provider(&fp.name))
                .filter(|fp| {
                    let config = &live.config;
                    let rules = config
                        .provider(&fp.name)
                        .map_or(config.default_access.as_deref(), |p| config.access_rules(p));
                    access::permits(rules, principal)
                })
                .map(|fp| fp.name.clone())
                .collect();
            if allowed.is_empty() {
                continue;
            }
            keys.push(FastKey {
                sha256: hex::encode(digest),
                subject: principal.subject.clone(),
                user: principal.user.clone(),
                agent: principal.agent.clone(),
                providers: allowed,
            });
        }
    }
    let mut s = Snapshot {
        version: String::new(),
        keys,
        providers,
        config: live.plugin_json.clone(),
    };
    let digest = Sha256::digest(serde_json::to_vec(&s).unwrap_or_default());
    s.version = hex::encode(&digest)[..16].to_string();
    s
}

/// How many records of a batch were stored, and how many lines were refused.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub stored: usize,
    pub refused: usize,
}

/// Prices and stores the records of a batch (one JSON line each).
pub fn ingest(gw: &Gateway, body: &[u8]) -> Ingested {
    let live = gw.live();
    let mut n = Ingested::default();
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<UsageRecord>(line) {
            Ok(mut r) => {
                r.price(|provider, kind, model, usage| live.price(provider, kind, model, usage));
                gw.submit(r);
                n.stored += 1;
            }
            Err(e) => {
                // Not retried: the same line would be refused again.
                tracing::warn!(error = %e, "fast-path usage record refused");
                n.refused += 1;
            }
        }
    }
    n
}

/// The two endpoints, for the gRPC server's router.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route(SNAPSHOT_PATH, get(get_snapshot))
        .route(RECORDS_PATH, post(post_records))
        // A batch is at most 1 MiB (filter/src/fast_path.rs); leave room.
        .layer(DefaultBodyLimit::max(8 << 20))
        .with_state(gw)
}

async fn get_snapshot(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = snapshot(&gw);
    if q.get(VERSION_PARAM) == Some(&s.version) {
        return StatusCode::NO_CONTENT.into_response();
    }
    let body = serde_json::to_vec(&s).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn post_records(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let n = ingest(&gw, &body);
    (
        StatusCode::OK,
        format!("{{\"stored\":{},\"refused\":{}}}", n.stored, n.refused),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
