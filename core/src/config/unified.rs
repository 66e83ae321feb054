//! Configuration of the unified OpenAI-compatible endpoint (`/llm/v1/chat/completions`):
//! virtual models (provider pools with fallback) and routing policies.
//!
//! ```json
//! "virtual_models": [
//!   {"name": "chat",
//!    "targets": [
//!      {"provider": "anthropic", "model": "claude-sonnet-4-5"},
//!      {"provider": "openai", "model": "gpt-5", "priority": 1}
//!    ],
//!    "first_byte_timeout_ms": 20000, "ejection_ms": 30000}
//! ],
//! "policies": [
//!   {"when": "request.estimated_input_tokens > 100000", "deny": "prompt too long"},
//!   {"when": "'interns' in principal.groups", "route": "chat-cheap"}
//! ]
//! ```
//!
//! The CEL expressions are compiled by the sidecar at start-up (it refuses to start on an
//! invalid one); here only the structure is checked, so the filter, which parses the same
//! block, needs no CEL.

use super::ProviderConfig;
use serde::Deserialize;

/// Default wait for a target's first response byte before the next target is tried.
pub const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u64 = 30_000;
/// Default time a failing target is skipped for.
pub const DEFAULT_EJECTION_MS: u64 = 30_000;
/// Longest virtual model name.
pub const MAX_VIRTUAL_MODEL_NAME_LEN: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVirtualModel {
    name: String,
    targets: Vec<RawTarget>,
    first_byte_timeout_ms: Option<u64>,
    ejection_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    provider: String,
    model: String,
    #[serde(default)]
    priority: u32,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    when: String,
    route: Option<String>,
    deny: Option<String>,
}

/// A named pool of targets. `model: "<name>"` on the unified endpoint picks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualModel {
    pub name: String,
    /// In config order; the sidecar orders them by priority (lowest first), then weight.
    pub targets: Vec<Target>,
    pub first_byte_timeout_ms: u64,
    /// How long a target that failed is skipped (outlier ejection); 0: never skipped.
    pub ejection_ms: u64,
}

/// One provider and the native model id it is called with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: String,
    pub model: String,
    /// Lower is tried first.
    pub priority: u32,
    /// Share among targets of the same priority (at least 1).
    pub weight: u32,
}

/// A routing policy: when the CEL expression `when` is true, route to a virtual model or
/// deny with a 403. Policies are tried in order; the first true one decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub when: String,
    pub action: PolicyAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    /// The name of a virtual model.
    Route(String),
    /// The message of the 403.
    Deny(String),
}

pub(super) fn validate_virtual_models(
    raw: Vec<RawVirtualModel>,
    providers: &[ProviderConfig],
    err: &mut dyn FnMut(String, String),
) -> Vec<VirtualModel> {
    let mut out: Vec<VirtualModel> = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let f = |name: &str| format!("virtual_models[{i}].{name}");
        if v.name.is_empty()
            || v.name.len() > MAX_VIRTUAL_MODEL_NAME_LEN
            || v.name.contains('/')
            || v.name.chars().any(char::is_control)
        {
            err(
                f("name"),
                format!("'{}' must be 1-{MAX_VIRTUAL_MODEL_NAME_LEN} characters without '/' (a '/' names <provider>/<model>)", v.name),
            );
        }
        if out.iter().any(|o| o.name == v.name) {
            err(f("name"), format!("duplicate virtual model '{}'", v.name));
        }
        if v.targets.is_empty() {
            err(f("targets"), "must list at least one target".into());
        }
        if v.first_byte_timeout_ms == Some(0) {
            err(f("first_byte_timeout_ms"), "must be at least 1".into());
        }
        for (j, t) in v.targets.iter().enumerate() {
            let tf = |name: &str| format!("virtual_models[{i}].targets[{j}].{name}");
            match providers.iter().find(|p| p.name == t.provider) {
                None => err(
                    tf("provider"),
                    format!("no provider named '{}'", t.provider),
                ),
                Some(p) => {
                    if p.authorization_passthrough {
                        err(
                            tf("provider"),
                            format!("provider '{}' passes the client's Authorization through, so the gateway has no upstream key to call it with", p.name),
                        );
                    }
                    if let Some(list) = &p.models {
                        if !list.iter().any(|m| m.name == t.model) {
                            err(
                                tf("model"),
                                format!(
                                    "'{}' is not on provider '{}'s models list",
                                    t.model, p.name
                                ),
                            );
                        }
                    }
                }
            }
            if t.model.trim().is_empty() {
                err(tf("model"), "must not be empty".into());
            }
            if t.weight == 0 {
                err(tf("weight"), "must be at least 1".into());
            }
        }
        out.push(VirtualModel {
            name: v.name,
            targets: v
                .targets
                .into_iter()
                .map(|t| Target {
                    provider: t.provider,
                    model: t.model,
                    priority: t.priority,
                    weight: t.weight,
                })
                .collect(),
            first_byte_timeout_ms: v
                .first_byte_timeout_ms
                .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT_MS),
            ejection_ms: v.ejection_ms.unwrap_or(DEFAULT_EJECTION_MS),
        });
    }
    out
}

pub(super) fn validate_policies(
    raw: Vec<RawPolicy>,
    virtual_models: &[VirtualModel],
    err: &mut dyn FnMut(String, String),
) -> Vec<Policy> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let f = |name: &str| format!("policies[{i}].{name}");
        if p.when.trim().is_empty() {
            err(f("when"), "must be a CEL expression".into());
        }
        let action = match (p.route, p.deny) {
            (Some(r), None) => {
                if !virtual_models.iter().any(|v| v.name == r) {
                    err(f("route"), format!("no virtual model named '{r}'"));
                }
                PolicyAction::Route(r)
            }
            (None, Some(d)) => PolicyAction::Deny(d),
            _ => {
                err(
                    format!("policies[{i}]"),
                    "needs exactly one of `route` (a virtual model) or `deny` (a message)".into(),
                );
                continue;
            }
        };
        out.push(Policy {
            when: p.when,
            action,
        });
    }
    out
}
