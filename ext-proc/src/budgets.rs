//! Budgets that hold: a request reserves its maximum cost **before** the upstream call and
//! settles the actual cost when it ends, so concurrent requests can never spend past a cap.
//!
//! Each agent's current window is one set of atomics; reserving is a compare-and-swap on
//! `committed` (spent + reserved), so no request waits on a lock. A reservation that is
//! dropped unsettled (upstream failed, client gone before any usage) is released. Windows are
//! UTC days, ISO weeks (Monday) and calendar months; a new window starts from zero.

use crate::store::time::{civil_from_days, days_from_civil};
use aigw_core::config::{Budget, BudgetWindow, BudgetsConfig};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Budgets {
    config: BudgetsConfig,
    /// The counters, shared with the `Budgets` of the configs before and after a reload.
    windows: Arc<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    /// Each agent's current window of each kind (daily, weekly, monthly): a config reload
    /// may change an agent's window, and calls still under the old config keep theirs.
    by_agent: ArcSwap<HashMap<String, [Option<Arc<WindowState>>; 3]>>,
    /// Taken only to add an agent's window (first request of an agent in a window).
    grow: Mutex<()>,
}

#[derive(Debug)]
pub struct WindowState {
    agent: String,
    kind: BudgetWindow,
    start_s: i64,
    end_s: i64,
    /// spent + reserved, the figure reservations are checked against.
    committed: AtomicU64,
    spent: AtomicU64,
    reserved: AtomicU64,
}

/// A hold on an agent's budget; settle it with the actual cost, or drop it to release.
#[derive(Debug)]
pub struct Reservation {
    window: Arc<WindowState>,
    /// The budget the hold was taken under.
    budget: Budget,
    amount: u64,
    open: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub agent: String,
    pub cap_nanousd: u64,
    pub committed_nanousd: u64,
    pub window: BudgetWindow,
    pub resets_at_s: i64,
}

#[derive(Debug)]
pub enum Decision {
    /// No budget applies to this agent.
    Unlimited,
    Reserved(Reservation),
    Refused(Exceeded),
}

/// One agent's budget now, for the admin API and the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub agent: String,
    pub window: BudgetWindow,
    pub window_start_s: i64,
    pub resets_at_s: i64,
    pub cap_nanousd: u64,
    pub spent_nanousd: u64,
    pub reserved_nanousd: u64,
    pub warn_at_percent: Option<u8>,
}

fn slot(kind: BudgetWindow) -> usize {
    match kind {
        BudgetWindow::Daily => 0,
        BudgetWindow::Weekly => 1,
        BudgetWindow::Monthly => 2,
    }
}

impl Budgets {
    pub fn new(config: BudgetsConfig) -> Self {
        Self {
            config,
            windows: Default::default(),
        }
    }

    /// The same counters under a new config (a reload). New caps apply to what was spent
    /// so far. An agent whose window kind changed, or who had no budget, starts its new
    /// window empty: [`preload`](Self::preload) it with the spend recorded in that window.
    pub fn reconfigured(&self, config: BudgetsConfig) -> Self {
        {
            let _g = self.windows.grow.lock().unwrap_or_else(|p| p.into_inner());
            let mut next = HashMap::clone(&self.windows.by_agent.load());
            for (agent, slots) in next.iter_mut() {
                if let Some(b) = config.for_agent(agent) {
                    if self.window_changes(agent, &config) {
                        slots[slot(b.window)] = None;
                    }
                }
            }
            self.windows.by_agent.store(Arc::new(next));
        }
        Self {
            config,
            windows: Arc::clone(&self.windows),
        }
    }

    /// Whether `agent`'s budget window is another one (or a new one) under `next`.
    pub fn window_changes(&self, agent: &str, next: &BudgetsConfig) -> bool {
        let kind = |c: &BudgetsConfig| c.for_agent(agent).map(|b| b.window);
        kind(next).is_some() && kind(&self.config) != kind(next)
    }

    pub fn config(&self) -> &BudgetsConfig {
        &self.config
    }

    /// Counts spend already recorded in the current window (from the store: at start, and
    /// for windows a reload opened).
    pub fn preload(&self, agent: &str, spent_nanousd: u64, now_s: i64) {
        if let Some((w, _)) = self.window(agent, now_s) {
            w.spent.fetch_add(spent_nanousd, Ordering::Relaxed);
            w.committed.fetch_add(spent_nanousd, Ordering::Relaxed);
        }
    }

    /// Counts the spend the store recorded in each current window, for the agents `only`
    /// selects (all at start; after a reload, those whose window changed).
    pub fn preload_recorded(
        &self,
        store: &dyn crate::store::UsageStore,
        only: impl Fn(&str) -> bool,
    ) {
        use crate::store::{Granularity, GroupBy, SeriesQuery, TimeRange};
        let now_s = crate::store::time::now_ms() / 1000;
        let b = &self.config;
        for window in [
            BudgetWindow::Daily,
            BudgetWindow::Weekly,
            BudgetWindow::Monthly,
        ] {
            let uses = b.default.is_some_and(|d| d.window == window)
                || b.agents.values().any(|a| a.window == window);
            if !uses {
                continue;
            }
            let (start_s, _) = window_bounds(window, now_s);
            let q = SeriesQuery {
                range: TimeRange {
                    from_ms: start_s * 1000,
                    to_ms: (now_s + 1) * 1000,
                },
                granularity: Granularity::Day,
                group_by: GroupBy::Agent,
                filter: Default::default(),
            };
            let points = match store.usage_series(&q) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "recorded spend could not be read; budgets start from zero");
                    return;
                }
            };
            let mut spent: HashMap<String, u64> = HashMap::new();
            for p in points {
                if let (Some(agent), Some(c)) = (p.key, p.cost_nanousd) {
                    *spent.entry(agent).or_default() += c;
                }
            }
            for (agent, nanousd) in spent {
                if b.for_agent(&agent).is_some_and(|x| x.window == window) && only(&agent) {
                    self.preload(&agent, nanousd, now_s);
                }
            }
        }
    }

    /// The window start from which recorded spend counts for `agent`, if it has a budget.
    pub fn window_start(&self, agent: &str, now_s: i64) -> Option<i64> {
        self.config
            .for_agent(agent)
            .map(|b| window_bounds(b.window, now_s).0)
    }

    /// Reserves `estimate` nano-USD of `agent`'s budget.
    pub fn reserve(&self, agent: &str, estimate: u64, now_s: i64) -> Decision {
        let Some((w, budget)) = self.window(agent, now_s) else {
            return Decision::Unlimited;
        };
        let estimate = estimate.max(1);
        let mut cur = w.committed.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_add(estimate);
            if next > budget.cap_nanousd {
                return Decision::Refused(Exceeded {
                    agent: w.agent.clone(),
                    cap_nanousd: budget.cap_nanousd,
                    committed_nanousd: cur,
                    window: budget.window,
                    resets_at_s: w.end_s,
                });
            }
            match w
                .committed
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        w.reserved.fetch_add(estimate, Ordering::Relaxed);
        Decision::Reserved(Reservation {
            window: w,
            budget,
            amount: estimate,
            open: true,
        })
    }

    /// Every agent with a budget and its window open now.
    pub fn status(&self, now_s: i64) -> Vec<Status> {
        let mut out: Vec<Status> = self
            .windows
            .by_agent
            .load()
            .iter()
            .filter_map(|(agent, slots)| {
                let b = self.config.for_agent(agent)?;
                let w = slots[slot(b.window)].as_ref()?;
                (w.end_s > now_s).then(|| w.status(b))
            })
            .collect();
        out.sort_by(|a, b| a.agent.cmp(&b.agent));
        out
    }

    /// The agent's budget and current window, created on first use and replaced when it
    /// has ended.
    fn window(&self, agent: &str, now_s: i64) -> Option<(Arc<WindowState>, Budget)> {
        let budget = *self.config.for_agent(agent)?;
        let i = slot(budget.window);
        let current = |w: &Arc<WindowState>| now_s < w.end_s && now_s >= w.start_s;
        if let Some(w) = self
            .windows
            .by_agent
            .load()
            .get(agent)
            .and_then(|s| s[i].as_ref())
        {
            if current(w) {
                return Some((Arc::clone(w), budget));
            }
        }
        let _g = self.windows.grow.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.windows.by_agent.load();
        if let Some(w) = map.get(agent).and_then(|s| s[i].as_ref()) {
            if current(w) {
                return Some((Arc::clone(w), budget));
            }
        }
        let (start_s, end_s) = window_bounds(budget.window, now_s);
        let w = Arc::new(WindowState {
            agent: agent.to_string(),
            kind: budget.window,
            start_s,
            end_s,
            committed: AtomicU64::new(0),
            spent: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
        });
        let mut next = HashMap::clone(&map);
        next.entry(agent.to_string()).or_default()[i] = Some(Arc::clone(&w));
        self.windows.by_agent.store(Arc::new(next));
        Some((w, budget))
    }
}

impl WindowState {
    fn status(&self, budget: &Budget) -> Status {
        debug_assert_eq!(self.kind, budget.window);
        Status {
            agent: self.agent.clone(),
            window: self.kind,
            window_start_s: self.start_s,
            resets_at_s: self.end_s,
            cap_nanousd: budget.cap_nanousd,
            spent_nanousd: self.spent.load(Ordering::Relaxed),
            reserved_nanousd: self.reserved.load(Ordering::Relaxed),
            warn_at_percent: budget.warn_at_percent,
        }
    }
}

impl Reservation {
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The window's status with this hold counted.
    pub fn status(&self) -> Status {
        self.window.status(&self.budget)
    }

    /// Replaces the hold by the actual cost. Returns the window's status afterwards.
    pub fn settle(mut self, actual_nanousd: u64) -> Status {
        let w = &self.window;
        w.spent.fetch_add(actual_nanousd, Ordering::Relaxed);
        w.committed.fetch_add(actual_nanousd, Ordering::AcqRel);
        self.release();
        self.status()
    }

    fn release(&mut self) {
        if self.open {
            self.open = false;
            self.window
                .committed
                .fetch_sub(self.amount, Ordering::AcqRel);
            self.window
                .reserved
                .fetch_sub(self.amount, Ordering::Relaxed);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// `[start, end)` of the window holding `now_s`, in Unix seconds (UTC).
pub fn window_bounds(window: BudgetWindow, now_s: i64) -> (i64, i64) {
    const DAY: i64 = 86_400;
    let day = now_s.div_euclid(DAY);
    match window {
        BudgetWindow::Daily => (day * DAY, (day + 1) * DAY),
        BudgetWindow::Weekly => {
            // 1970-01-01 was a Thursday: Monday-based weekday = (day + 3) % 7.
            let monday = day - (day + 3).rem_euclid(7);
            (monday * DAY, (monday + 7) * DAY)
        }
        BudgetWindow::Monthly => {
            let (y, m, _) = civil_from_days(day);
            let start = days_from_civil(y, m, 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (start * DAY, days_from_civil(ny, nm, 1) * DAY)
        }
    }
}

/// Unix seconds as `2026-12-02T00:00:00Z`.
pub fn rfc3339(s: i64) -> String {
    crate::store::time::format_rfc3339(s.saturating_mul(1000))
}

#[cfg(test)]
mod tests;
