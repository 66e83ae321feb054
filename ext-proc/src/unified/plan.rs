//! Which targets a unified request tries, in which order.
//!
//! A model names a virtual model (a pool) or `<provider>/<model>` (one target). A pool's
//! targets are tried by priority (lowest first); among equal priorities the order is drawn
//! by weight for each request. Targets that failed recently are ejected: they go to the back
//! of the order until their ejection ends, so a dead primary costs one failed try per
//! ejection window, not one per request. When every target is ejected they are still tried,
//! in order: an ejection never turns into an outage by itself.
//!
//! The ejection state is one atomic deadline per pool target: no lock on the request path.

use crate::auth::{access, Principal};
use aigw_core::config::VirtualModel;
use aigw_core::{GatewayConfig, ProviderConfig, ProviderKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The endpoint a request came in on; decides which provider types can serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    /// Whether providers of this type serve the endpoint (chat: all of them, translated;
    /// embeddings: the OpenAI-shaped ones, passed through).
    pub fn served_by(self, kind: ProviderKind) -> bool {
        match self {
            Endpoint::Chat => true,
            Endpoint::Embeddings => {
                matches!(kind, ProviderKind::Openai | ProviderKind::OpenaiCompatible)
            }
        }
    }
}

/// Ejection deadlines (Unix ms) of every pool target, by virtual model name.
#[derive(Debug, Default)]
pub struct Ejections {
    by_pool: HashMap<String, Vec<AtomicI64>>,
}

impl Ejections {
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            by_pool: config
                .virtual_models
                .iter()
                .map(|v| {
                    let deadlines = v.targets.iter().map(|_| AtomicI64::new(0)).collect();
                    (v.name.clone(), deadlines)
                })
                .collect(),
        }
    }

    /// For a reloaded config: a pool whose targets did not change keeps its ejections.
    pub fn carried(config: &GatewayConfig, old: &GatewayConfig, ejections: &Ejections) -> Self {
        let fresh = Self::new(config);
        for v in &config.virtual_models {
            let same = old
                .virtual_models
                .iter()
                .find(|o| o.name == v.name)
                .is_some_and(|o| o.targets == v.targets);
            if let (true, Some(new), Some(old)) = (
                same,
                fresh.by_pool.get(&v.name),
                ejections.by_pool.get(&v.name),
            ) {
                for (n, o) in new.iter().zip(old) {
                    n.store(o.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
        fresh
    }
}

/// One target to try.
#[derive(Debug)]
pub struct Candidate<'a> {
    pub provider: &'a ProviderConfig,
    /// The provider's own model id.
    pub model: &'a str,
    /// Its ejection deadline (pool targets only).
    ejected_until: Option<&'a AtomicI64>,
    ejection_ms: u64,
}

impl Candidate<'_> {
    /// `<provider>/<model>`, as the target header reports it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider.name, self.model)
    }

    /// This target failed: skip it until the ejection window has passed.
    pub fn eject(&self, now_ms: i64) {
        if let Some(d) = self.ejected_until {
            if self.ejection_ms > 0 {
                d.store(
                    now_ms.saturating_add(self.ejection_ms as i64),
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// This target answered: it is healthy again.
    pub fn restore(&self) {
        if let Some(d) = self.ejected_until {
            if d.load(Ordering::Relaxed) != 0 {
                d.store(0, Ordering::Relaxed);
            }
        }
    }

    fn ejected(&self, now_ms: i64) -> bool {
        self.ejected_until
            .is_some_and(|d| d.load(Ordering::Relaxed) > now_ms)
    }
}

/// The targets of one request, in try order.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The virtual model, when the request named one (or a policy routed to one).
    pub pool: Option<&'a VirtualModel>,
    pub candidates: Vec<Candidate<'a>>,
}

impl Plan<'_> {
    /// How long to wait for a target's first byte before trying the next one.
    pub fn first_byte_timeout(&self) -> Option<Duration> {
        self.pool
            .map(|p| Duration::from_millis(p.first_byte_timeout_ms))
    }
}

/// Why no plan could be made.
#[derive(Debug, PartialEq, Eq)]
pub enum NoPlan {
    /// Neither a virtual model nor `<provider>/<model>` with a known provider.
    UnknownModel,
    /// The model is known but not on the provider's `models` list.
    NotListed { provider: String },
    /// The provider (or every target of the pool) is disabled.
    Disabled,
    /// No target's provider type serves this endpoint.
    Unserved,
    /// Every remaining target is closed to this caller.
    Denied,
}

/// The try order for `model` (or the pool a policy chose), for this caller and endpoint.
pub fn plan<'a>(
    config: &'a GatewayConfig,
    ejections: &'a Ejections,
    model: &'a str,
    routed_pool: Option<&'a str>,
    endpoint: Endpoint,
    principal: &Principal,
    now_ms: i64,
) -> Result<Plan<'a>, NoPlan> {
    let pool_name = routed_pool.unwrap_or(model);
    let (pool, mut candidates) = match config.virtual_model(pool_name) {
        Some(v) => {
            let deadlines = ejections.by_pool.get(&v.name);
            let all = v.targets.iter().enumerate().filter_map(|(i, t)| {
                Some(Candidate {
                    provider: config.provider(&t.provider)?,
                    model: &t.model,
                    ejected_until: deadlines.and_then(|d| d.get(i)),
                    ejection_ms: v.ejection_ms,
                })
            });
            (Some(v), order_by_priority(v, all.collect()))
        }
        None => {
            let (name, native) = model.split_once('/').ok_or(NoPlan::UnknownModel)?;
            let provider = config.provider(name).ok_or(NoPlan::UnknownModel)?;
            if native.is_empty() {
                return Err(NoPlan::UnknownModel);
            }
            if let Some(list) = &provider.models {
                if !list.iter().any(|m| m.name == native) {
                    return Err(NoPlan::NotListed {
                        provider: provider.name.clone(),
                    });
                }
            }
            let one = Candidate {
                provider,
                model: native,
                ejected_until: None,
                ejection_ms: 0,
            };
            (None, vec![one])
        }
    };
    candidates.retain(|c| c.provider.enabled);
    if candidates.is_empty() {
        return Err(NoPlan::Disabled);
    }
    candidates.retain(|c| endpoint.served_by(c.provider.kind));
    if candidates.is_empty() {
        return Err(NoPlan::Unserved);
    }
    candidates.retain(|c| access::permits(config.access_rules(c.provider), principal));
    if candidates.is_empty() {
        return Err(NoPlan::Denied);
    }
    // Ejected targets last, keeping the order within both groups.
    let (healthy, ejected): (Vec<_>, Vec<_>) =
        candidates.into_iter().partition(|c| !c.ejected(now_ms));
    let mut candidates = healthy;
    candidates.extend(ejected);
    Ok(Plan { pool, candidates })
}

/// Sorts by priority; within a priority, a weighted random order (drawn per request).
fn order_by_priority<'a>(v: &VirtualModel, all: Vec<Candidate<'a>>) -> Vec<Candidate<'a>> {
    let mut keyed: Vec<(u32, Candidate<'a>, u32)> = all
        .into_iter()
        .zip(&v.targets)
        .map(|(c, t)| (t.priority, c, t.weight))
        .collect();
    keyed.sort_by_key(|(p, _, _)| *p);
    let mut out = Vec::with_capacity(keyed.len());
    let mut rest = keyed.as_mut_slice();
    while !rest.is_empty() {
        let priority = rest[0].0;
        let n = rest.iter().take_while(|(p, _, _)| *p == priority).count();
        let (group, tail) = rest.split_at_mut(n);
        weighted_shuffle(group);
        rest = tail;
    }
    out.extend(keyed.into_iter().map(|(_, c, _)| c));
    out
}

/// Picks each position in turn with probability proportional to weight.
fn weighted_shuffle<T>(group: &mut [(u32, T, u32)]) {
    for i in 0..group.len() {
        let total: u64 = group[i..].iter().map(|(_, _, w)| u64::from(*w)).sum();
        if total == 0 {
            return;
        }
        let mut r = fastrand::u64(0..total);
        let mut pick = i;
        for (j, (_, _, w)) in group.iter().enumerate().skip(i) {
            if r < u64::from(*w) {
                pick = j;
                break;
            }
            r -= u64::from(*w);
        }
        group.swap(i, pick);
    }
}

#[cfg(test)]
mod tests;
