//! Before the upstream call: the rate limits and the budget a call must fit, held all at once,
//! and settled with what the call really used when it ends.
//!
//! Each counter lives where the deployment keeps it:
//! - request-rate limits: this replica ([`crate::limits`]), or Redis with `--redis`;
//! - token limits and budgets: this replica ([`crate::limits`], [`crate::budgets`]), or
//!   PostgreSQL when the usage store is (`--store postgres://…`).
//!
//! The holds are taken in that order; a refusal gives back what was taken before it.

use crate::auth::Principal;
use crate::budgets::{self, Decision, Reservation};
use crate::gateway::{Gateway, Live};
use crate::limits::{self, Holds, Refusal, Room};
use crate::shared::postgres::{CounterState, Reserved, SharedHold, Want};
use crate::shared::{redis as shared_redis, FailureMode, Unavailable};
use crate::store::csv::nanousd_to_usd as usd;
use aigw_core::config::{Budget, BudgetWindow};
use aigw_core::{ErrorKind, GatewayError, ProviderKind};

/// What a call asks for.
pub struct Ask<'a> {
    pub principal: &'a Principal,
    pub provider: &'a str,
    pub kind: ProviderKind,
    pub model: Option<&'a str>,
    pub input_bytes: u64,
    pub max_output_tokens: u64,
}

/// What the call got: its holds, and the rooms for the response headers.
#[derive(Debug, Default)]
pub struct Admitted {
    local_limits: Option<Holds>,
    local_budget: Option<Reservation>,
    /// Token limits and the budget, in PostgreSQL; `tags[i]` says what `wants[i]` was.
    shared: Option<(SharedHold, Vec<Tag>)>,
    /// The budget as the shared reservation left it.
    shared_budget: Option<budgets::Status>,
    pub requests_room: Option<Room>,
    pub tokens_room: Option<Room>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Tokens,
    Budget,
}

/// A refusal: the gateway's error, plus the `x-ratelimit-*` headers for a limit.
#[derive(Debug)]
pub struct Refused {
    pub error: GatewayError,
    pub headers: Vec<(&'static str, String)>,
}

impl From<GatewayError> for Refused {
    fn from(error: GatewayError) -> Self {
        Self {
            error,
            headers: Vec::new(),
        }
    }
}

/// What the call used, once it ended.
#[derive(Debug, Clone, Copy)]
pub struct Used {
    /// The provider reported usage (else: the call may have used everything it held).
    pub usage_reported: bool,
    /// The upstream's status; 4xx/5xx spent nothing.
    pub status: u16,
    pub cost_nanousd: Option<u64>,
    pub tokens: u64,
}

impl Used {
    /// The gateway answered itself: nothing was spent.
    pub const NOTHING: Used = Used {
        usage_reported: true,
        status: 0,
        cost_nanousd: Some(0),
        tokens: 0,
    };

    /// The actual cost against a hold of `held`: unknown usage keeps the whole hold, a
    /// refusal by the upstream spent nothing.
    fn cost(&self, held: u64) -> u64 {
        match (self.usage_reported, self.cost_nanousd) {
            (true, Some(c)) => c,
            _ if self.status >= 400 => 0,
            _ => held,
        }
    }

    /// As for cost; `None`: keep the hold as counted.
    fn tokens(&self) -> Option<u64> {
        match (self.usage_reported, self.status) {
            (true, _) => Some(self.tokens),
            (false, s) if s >= 400 => Some(0),
            _ => None,
        }
    }
}

/// Holds the call's share of every limit and its budget, or refuses it.
pub async fn admit(gw: &Gateway, live: &Live, ask: &Ask<'_>) -> Result<Admitted, Refused> {
    let shared = gw.shared();
    let pg = shared.and_then(|s| s.postgres.as_ref());
    let redis = shared.and_then(|s| s.redis.as_ref());
    let mut admitted = Admitted::default();

    // Rate limits: at least one byte per token, so the body's size bounds its tokens.
    let call = limits::Call {
        principal: ask.principal,
        provider: ask.provider,
        model: ask.model,
        max_tokens: ask.input_bytes.saturating_add(ask.max_output_tokens),
        now_ms: crate::store::time::now_ms(),
    };
    let is_shared = |kind: aigw_core::config::LimitKind| {
        if kind.counts_tokens() {
            pg.is_some()
        } else {
            redis.is_some()
        }
    };
    if !live.limits.is_empty() {
        let holds = live
            .limits
            .admit_where(&call, |k| !is_shared(k))
            .map_err(|r| rate_limited(&r))?;
        admitted.requests_room = holds.requests_room;
        admitted.tokens_room = holds.tokens_room;
        admitted.local_limits = Some(holds);
    }
    // The counters kept in PostgreSQL or Redis (none on one replica: no second pass).
    let matches: Vec<limits::Match<'_, '_>> = if pg.is_some() || redis.is_some() {
        live.limits
            .matching(&call)
            .filter(|m| is_shared(m.kind))
            .collect()
    } else {
        Vec::new()
    };

    // Request counters in Redis.
    let mut counted: Vec<shared_redis::Counter> = Vec::new();
    if let Some(redis) = redis {
        let requests: Vec<&limits::Match<'_, '_>> =
            matches.iter().filter(|m| !m.kind.counts_tokens()).collect();
        counted = requests
            .iter()
            .map(|m| shared_redis::Counter {
                name: m.shared_key(),
                window: m.window,
                limit: m.limit,
                ttl_ms: m.reset_ms + 5_000,
            })
            .collect();
        match redis.take(&counted).await {
            Ok(shared_redis::Taken::Counted(used)) => {
                for (m, u) in requests.iter().zip(used) {
                    limits::tighter(&mut admitted.requests_room, m.room(u));
                }
            }
            Ok(shared_redis::Taken::Refused { index, used }) => {
                let r = requests[index].refusal(used, admitted.requests_room, admitted.tokens_room);
                admitted.release();
                return Err(rate_limited(&r));
            }
            Err(e) => {
                counted.clear();
                unavailable(gw, &e, &mut admitted)?;
            }
        }
    }

    // The budget's most this call can cost.
    let agent = ask
        .principal
        .agent
        .as_deref()
        .unwrap_or(&ask.principal.subject);
    let budget = live.budgets.config().for_agent(agent).copied();
    let estimate = match budget {
        None => None,
        Some(_) => Some(
            live.estimate(
                ask.provider,
                ask.kind,
                ask.model,
                ask.input_bytes,
                ask.max_output_tokens,
            )
            .map_err(|why| {
                admitted.release_now(redis, &counted);
                GatewayError::new(
                    ErrorKind::UnpricedModel,
                    format!(
                        "a budget applies to agent '{agent}' but {why}, so it cannot be enforced"
                    ),
                )
            })?,
        ),
    };
    let now_s = call.now_ms / 1000;

    // Token counters and the budget in PostgreSQL, in one statement.
    if let Some(pg) = pg {
        let tokens: Vec<&limits::Match<'_, '_>> =
            matches.iter().filter(|m| m.kind.counts_tokens()).collect();
        let mut wants: Vec<Want> = tokens
            .iter()
            .map(|m| Want {
                key: m.shared_key(),
                window_start: m.window_start_s,
                amount: m.amount,
                cap: m.limit,
            })
            .collect();
        let mut tags = vec![Tag::Tokens; wants.len()];
        let budget_window = budget.zip(estimate).map(|(b, est)| {
            let (start, end) = budgets::window_bounds(b.window, now_s);
            wants.push(Want {
                key: budget_key(agent),
                window_start: start,
                amount: est.max(1),
                cap: b.cap_nanousd,
            });
            tags.push(Tag::Budget);
            (b, start, end)
        });
        if !wants.is_empty() {
            match pg.reserve(&wants).await {
                Ok(Reserved::Admitted { hold, states }) => {
                    for (m, s) in tokens.iter().zip(&states) {
                        limits::tighter(&mut admitted.tokens_room, m.room(s.used + s.reserved));
                    }
                    if let (Some((b, start, end)), Some(s)) = (budget_window, states.last()) {
                        admitted.shared_budget = Some(status(agent, &b, start, end, *s));
                    }
                    admitted.shared = Some((hold, tags));
                }
                Ok(Reserved::Refused { index, state }) => {
                    admitted.release_now(redis, &counted);
                    let used = state.used + state.reserved;
                    return Err(match (tags[index], budget_window) {
                        (Tag::Budget, Some((b, _, end))) => {
                            budget_exceeded(agent, &b, wants[index].amount, end, now_s).into()
                        }
                        _ => rate_limited(&tokens[index].refusal(
                            used,
                            admitted.requests_room,
                            admitted.tokens_room,
                        )),
                    });
                }
                Err(e) => {
                    if let Err(refused) = unavailable(gw, &e, &mut admitted) {
                        admitted.release_now(redis, &counted);
                        return Err(refused);
                    }
                }
            }
        }
        return Ok(admitted);
    }

    // The budget on this replica.
    if let (Some(b), Some(est)) = (budget, estimate) {
        match live.budgets.reserve(agent, est, now_s) {
            Decision::Unlimited => {}
            Decision::Reserved(r) => admitted.local_budget = Some(r),
            Decision::Refused(e) => {
                admitted.release_now(redis, &counted);
                return Err(budget_exceeded(agent, &b, est, e.resets_at_s, now_s).into());
            }
        }
    }
    Ok(admitted)
}

impl Admitted {
    /// The caller's budget as it stands with this call's hold, if one applies.
    pub fn budget_status(&self) -> Option<budgets::Status> {
        self.local_budget
            .as_ref()
            .map(Reservation::status)
            .or_else(|| self.shared_budget.clone())
    }

    /// Replaces the holds by what the call used. Local counters settle at once; the returned
    /// future settles the shared ones (await it, or spawn it).
    pub fn settle(
        mut self,
        gw: &Gateway,
        used: Used,
    ) -> Option<impl std::future::Future<Output = ()>> {
        if let Some(r) = self.local_budget.take() {
            let actual = used.cost(r.amount());
            r.settle(actual);
        }
        if let Some(l) = self.local_limits.take() {
            if let Some(t) = used.tokens() {
                l.settle(t);
            }
        }
        let (hold, tags) = self.shared.take()?;
        let pg = gw.shared()?.postgres.clone()?;
        Some(async move {
            pg.settle(hold, |i, held| match tags[i] {
                Tag::Budget => used.cost(held),
                Tag::Tokens => used.tokens().unwrap_or(held),
            })
            .await
        })
    }

    /// Gives back the local holds at once (a later check refused the call).
    fn release(&mut self) {
        self.local_budget = None;
        if let Some(l) = self.local_limits.take() {
            l.settle(0);
        }
    }

    /// [`release`](Self::release), and the request counts already taken in Redis.
    fn release_now(
        &mut self,
        redis: Option<&shared_redis::RequestCounters>,
        counted: &[shared_redis::Counter],
    ) {
        self.release();
        if let (Some(r), false) = (redis, counted.is_empty()) {
            let (r, c) = (r.clone(), counted.to_vec());
            tokio::spawn(async move { r.give_back(&c).await });
        }
    }
}

/// A shared backend did not answer: refuse (fail closed) or go on unchecked.
fn unavailable(gw: &Gateway, e: &Unavailable, admitted: &mut Admitted) -> Result<(), Refused> {
    let mode = gw.shared().map_or(FailureMode::Closed, |s| s.failure);
    gw.metrics.shared_state_failed();
    // At most one line a second: an outage must not flood the log (the metric counts all).
    static LAST_WARNED_S: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now_s = crate::store::time::now_ms() / 1000;
    if LAST_WARNED_S.swap(now_s, std::sync::atomic::Ordering::Relaxed) != now_s {
        tracing::warn!(error = %e, ?mode, "shared budgets and limits unavailable");
    }
    if mode == FailureMode::Open {
        return Ok(());
    }
    admitted.release();
    Err(GatewayError::new(
        ErrorKind::SharedStateUnavailable,
        format!(
            "the gateway cannot check this call's budget and rate limits right now ({} is unreachable); retry shortly",
            e.backend
        ),
    )
    .with_retry_after(1)
    .into())
}

pub fn budget_key(agent: &str) -> String {
    format!("budget:{agent}")
}

fn status(agent: &str, b: &Budget, start: i64, end: i64, s: CounterState) -> budgets::Status {
    budgets::Status {
        agent: agent.to_string(),
        window: b.window,
        window_start_s: start,
        resets_at_s: end,
        cap_nanousd: b.cap_nanousd,
        spent_nanousd: s.used,
        reserved_nanousd: s.reserved,
        warn_at_percent: b.warn_at_percent,
    }
}

fn rate_limited(r: &Refusal) -> Refused {
    let per = r
        .per
        .map(|k| format!(" per {}", k.as_str()))
        .unwrap_or_default();
    Refused {
        error: GatewayError::new(
            ErrorKind::RateLimited,
            format!(
                "rate limit '{}' ({} {}{per}) reached; it resets in {}",
                r.rule,
                r.limit,
                r.kind.field().replace('_', " "),
                limits::duration_text(r.reset_ms)
            ),
        )
        .with_retry_after(r.reset_ms.div_ceil(1000).max(1)),
        headers: limits::headers(r.requests, r.tokens),
    }
}

fn budget_exceeded(
    agent: &str,
    b: &Budget,
    estimate: u64,
    resets_at_s: i64,
    now_s: i64,
) -> GatewayError {
    GatewayError::new(
        ErrorKind::BudgetExceeded,
        format!(
            "agent '{agent}' has no room in its {} budget of {} USD for this request (up to {} USD); it resets at {}",
            window_name(b.window),
            usd(b.cap_nanousd),
            usd(estimate),
            budgets::rfc3339(resets_at_s)
        ),
    )
    .with_retry_after(resets_at_s.saturating_sub(now_s).max(1) as u64)
}

pub fn window_name(w: BudgetWindow) -> &'static str {
    match w {
        BudgetWindow::Daily => "daily",
        BudgetWindow::Weekly => "weekly",
        BudgetWindow::Monthly => "monthly",
    }
}
