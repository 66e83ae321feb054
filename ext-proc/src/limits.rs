//! Rate limits that hold under concurrency: a call takes its share of every matching counter
//! **before** the upstream call, all or nothing, so concurrent calls can never pass a limit.
//!
//! - Windows are fixed and UTC-aligned (a second, a minute, a day), as their reset times say.
//! - Each counter is one atomic word, `(window << 32) | used`, updated by compare-and-swap:
//!   no request waits on a lock (one is taken only to add a counter for a new caller).
//! - Request limits count the call. Token limits reserve an upper bound (the body's bytes,
//!   at least one per token, plus the output cap) and settle the actual total when the call
//!   ends; an upstream error releases the hold, a call without reported usage keeps it.
//! - These counters are per sidecar (per replica): one machine's limits. With a shared
//!   store ([`crate::shared`]) request counters live in Redis and token counters in
//!   PostgreSQL instead; [`RateLimiter::matching`] says which counters a call takes.

use crate::auth::{Method, Principal};
use aigw_core::config::{LimitKey, LimitKind, RateLimit};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct RateLimiter {
    rules: Vec<RateLimit>,
    /// Each rule's id in `counters` (by its name, so a reload keeps the counts).
    rule_ids: Vec<u32>,
    /// Shared with the limiters of the configs before and after a reload.
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    by_key: ArcSwap<HashMap<CounterKey, Arc<Counter>>>,
    /// Taken only to add a counter.
    grow: Mutex<()>,
    /// Rule names to ids; touched when a config is loaded, never by a call.
    ids: Mutex<HashMap<String, u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterKey {
    rule: u32,
    kind: LimitKind,
    /// The caller's key under the rule's `per`; empty when shared.
    who: String,
}

#[derive(Debug, Default)]
struct Counter {
    packed: AtomicU64,
}

fn pack(window: u32, used: u32) -> u64 {
    (u64::from(window) << 32) | u64::from(used)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// What a call is, for matching and counting.
pub struct Call<'a> {
    pub principal: &'a Principal,
    pub provider: &'a str,
    pub model: Option<&'a str>,
    /// The most tokens the call can use (input bound plus output cap).
    pub max_tokens: u64,
    pub now_ms: i64,
}

/// Room left in the tightest limit of a kind (requests or tokens), for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: String,
    pub kind: LimitKind,
    pub limit: u64,
    pub per: Option<LimitKey>,
    pub reset_ms: u64,
    /// The state of the limits at refusal, for the headers.
    pub requests: Option<Room>,
    pub tokens: Option<Room>,
}

/// One counter of a rule that applies to a call.
#[derive(Debug, Clone)]
pub struct Match<'r, 'c> {
    pub rule: &'r RateLimit,
    index: usize,
    pub kind: LimitKind,
    pub limit: u64,
    /// The caller's key under the rule's `per`; empty when shared.
    pub who: &'c str,
    /// The fixed window's number (Unix seconds / window length) and start.
    pub window: u64,
    pub window_start_s: i64,
    pub reset_ms: u64,
    /// 1 for request limits; the call's token bound for token limits.
    pub amount: u64,
}

impl Match<'_, '_> {
    /// The counter's name in a shared store: rule, kind, caller.
    pub fn shared_key(&self) -> String {
        format!(
            "limit:{}:{}:{}",
            self.rule.name,
            self.kind.field(),
            self.who
        )
    }

    /// The room left once `used` is counted.
    pub fn room(&self, used: u64) -> Room {
        Room {
            limit: self.limit,
            remaining: self.limit.saturating_sub(used),
            reset_ms: self.reset_ms,
        }
    }

    /// This counter refused, `used` of its limit taken; `requests`/`tokens`: the rooms of the
    /// counters checked before it.
    pub fn refusal(
        &self,
        used: u64,
        mut requests: Option<Room>,
        mut tokens: Option<Room>,
    ) -> Refusal {
        let room = self.room(used);
        tighter(
            if self.kind.counts_tokens() {
                &mut tokens
            } else {
                &mut requests
            },
            room,
        );
        Refusal {
            rule: self.rule.name.clone(),
            kind: self.kind,
            limit: self.limit,
            per: self.rule.per,
            reset_ms: self.reset_ms,
            requests,
            tokens,
        }
    }
}

/// The holds of one admitted call; settle the tokens at the end.
#[derive(Debug, Default)]
pub struct Holds {
    tokens: Vec<(Arc<Counter>, u32, u32)>,
    pub requests_room: Option<Room>,
    pub tokens_room: Option<Room>,
}

impl Holds {
    /// Replaces the token holds with the call's actual total (0: release them).
    pub fn settle(self, actual_tokens: u64) {
        let actual = u32::try_from(actual_tokens).unwrap_or(u32::MAX);
        for (counter, window, held) in self.tokens {
            counter.adjust(window, held, actual);
        }
    }
}

impl Counter {
    /// Adds `amount` in `window` if it stays within `limit`; returns the used count after,
    /// or the used count that refused it.
    fn take(&self, window: u32, amount: u32, limit: u64) -> Result<u32, u32> {
        let mut cur = self.packed.load(Ordering::Acquire);
        loop {
            let (w, used) = unpack(cur);
            let used = if w == window { used } else { 0 };
            let next = u64::from(used) + u64::from(amount);
            if next > limit {
                return Err(used);
            }
            match self.packed.compare_exchange_weak(
                cur,
                pack(window, next as u32),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(next as u32),
                Err(actual) => cur = actual,
            }
        }
    }

    /// In `window` (if it is still current), replaces `held` by `actual`.
    fn adjust(&self, window: u32, held: u32, actual: u32) {
        let mut cur = self.packed.load(Ordering::Acquire);
        loop {
            let (w, used) = unpack(cur);
            if w != window {
                return; // a new window started from zero; the old one is gone
            }
            let next = used.saturating_sub(held).saturating_add(actual);
            match self.packed.compare_exchange_weak(
                cur,
                pack(window, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(a) => cur = a,
            }
        }
    }
}

impl RateLimiter {
    pub fn new(rules: Vec<RateLimit>) -> Self {
        Self::with_counters(rules, Default::default())
    }

    /// The same counters under new rules (a reload): a rule keeps its counts by name, even
    /// when its limits changed; a new rule starts from zero.
    pub fn reconfigured(&self, rules: Vec<RateLimit>) -> Self {
        Self::with_counters(rules, Arc::clone(&self.counters))
    }

    fn with_counters(rules: Vec<RateLimit>, counters: Arc<Counters>) -> Self {
        let rule_ids = {
            let mut ids = counters.ids.lock().unwrap_or_else(|p| p.into_inner());
            rules
                .iter()
                .map(|r| {
                    let next = ids.len() as u32;
                    *ids.entry(r.name.clone()).or_insert(next)
                })
                .collect()
        };
        Self {
            rules,
            rule_ids,
            counters,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule can apply to calls to `provider` (they then need the sidecar).
    pub fn covers_provider(&self, provider: &str) -> bool {
        self.rules.iter().any(|r| r.covers_provider(provider))
    }

    /// Takes the call's share of every matching counter, or none of them.
    pub fn admit(&self, call: &Call<'_>) -> Result<Holds, Box<Refusal>> {
        self.admit_where(call, |_| true)
    }

    /// [`admit`](Self::admit) for the limit kinds `local` selects (the others are counted
    /// in a shared store, [`crate::shared`]).
    pub fn admit_where(
        &self,
        call: &Call<'_>,
        local: impl Fn(LimitKind) -> bool,
    ) -> Result<Holds, Box<Refusal>> {
        let mut holds = Holds::default();
        let mut requests_taken: Vec<(Arc<Counter>, u32)> = Vec::new();
        for m in self.matching(call).filter(|m| local(m.kind)) {
            let window = m.window as u32;
            let amount = u32::try_from(m.amount).unwrap_or(u32::MAX);
            let counter = self.counter(CounterKey {
                rule: self.rule_ids[m.index],
                kind: m.kind,
                who: m.who.to_string(),
            });
            match counter.take(window, amount, m.limit) {
                Ok(used) => {
                    let room = m.room(u64::from(used));
                    if m.kind.counts_tokens() {
                        holds.tokens.push((counter, window, amount));
                        tighter(&mut holds.tokens_room, room);
                    } else {
                        requests_taken.push((counter, window));
                        tighter(&mut holds.requests_room, room);
                    }
                }
                Err(used) => {
                    let refusal =
                        m.refusal(u64::from(used), holds.requests_room, holds.tokens_room);
                    // All or nothing: give back what this call took so far.
                    for (c, w) in requests_taken {
                        c.adjust(w, 1, 0);
                    }
                    holds.settle(0);
                    return Err(Box::new(refusal));
                }
            }
        }
        Ok(holds)
    }

    /// Every counter of every rule that applies to `call`, with the call's amount on it.
    pub fn matching<'s, 'c>(&'s self, call: &'c Call<'c>) -> impl Iterator<Item = Match<'s, 'c>> {
        let now_s = call.now_ms.max(0) as u64 / 1000;
        let tokens = call.max_tokens.clamp(1, u64::from(u32::MAX));
        self.rules
            .iter()
            .enumerate()
            .flat_map(move |(index, rule)| {
                let who = applies(rule, call);
                rule.limits
                    .iter()
                    .filter(move |_| who.is_some())
                    .map(move |&(kind, limit)| {
                        let secs = kind.window_secs();
                        let window = now_s / secs;
                        Match {
                            rule,
                            index,
                            kind,
                            limit,
                            who: who.unwrap_or_default(),
                            window,
                            window_start_s: (window * secs) as i64,
                            reset_ms: ((window + 1) * secs * 1000)
                                .saturating_sub(call.now_ms.max(0) as u64),
                            amount: if kind.counts_tokens() { tokens } else { 1 },
                        }
                    })
            })
    }

    fn counter(&self, key: CounterKey) -> Arc<Counter> {
        let counters = &self.counters;
        if let Some(c) = counters.by_key.load().get(&key) {
            return Arc::clone(c);
        }
        let _g = counters.grow.lock().unwrap_or_else(|p| p.into_inner());
        let current = counters.by_key.load();
        if let Some(c) = current.get(&key) {
            return Arc::clone(c);
        }
        let mut next = HashMap::clone(&current);
        let c = Arc::new(Counter::default());
        next.insert(key, Arc::clone(&c));
        counters.by_key.store(Arc::new(next));
        c
    }
}

/// The caller's counter key under `rule`, if the rule applies to this call.
fn applies<'a>(rule: &RateLimit, call: &Call<'a>) -> Option<&'a str> {
    if rule.provider.as_deref().is_some_and(|p| p != call.provider) {
        return None;
    }
    if let Some(m) = rule.model.as_deref() {
        if call.model != Some(m) {
            return None;
        }
    }
    let p = call.principal;
    Some(match rule.per {
        None => "",
        Some(LimitKey::ApiKey) if p.method != Method::ApiKey => return None,
        Some(LimitKey::ApiKey) | Some(LimitKey::Subject) => &p.subject,
        Some(LimitKey::User) => p.user.as_deref().unwrap_or(&p.subject),
        Some(LimitKey::Agent) => p.agent.as_deref().unwrap_or(&p.subject),
    })
}

/// Keeps the room with the least remaining.
pub fn tighter(slot: &mut Option<Room>, room: Room) {
    if slot.is_none_or(|r| room.remaining < r.remaining) {
        *slot = Some(room);
    }
}

/// A reset time as OpenAI writes it: `20ms`, `1s`, `6m0s`, `1h2m3s`.
pub fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms.div_ceil(1000);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// The `x-ratelimit-*` headers (OpenAI's names) for the rooms that exist.
pub fn headers(requests: Option<Room>, tokens: Option<Room>) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if let Some(r) = requests {
        h.push(("x-ratelimit-limit-requests", r.limit.to_string()));
        h.push(("x-ratelimit-remaining-requests", r.remaining.to_string()));
        h.push(("x-ratelimit-reset-requests", duration_text(r.reset_ms)));
    }
    if let Some(t) = tokens {
        h.push(("x-ratelimit-limit-tokens", t.limit.to_string()));
        h.push(("x-ratelimit-remaining-tokens", t.remaining.to_string()));
        h.push(("x-ratelimit-reset-tokens", duration_text(t.reset_ms)));
    }
    h
}

#[cfg(test)]
mod tests;
