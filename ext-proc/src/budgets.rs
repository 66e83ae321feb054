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
    windows: ArcSwap<HashMap<String, Arc<WindowState>>>,
    /// Taken only to add an agent's window (first request of an agent in a window).
    grow: Mutex<()>,
}

#[derive(Debug)]
pub struct WindowState {
    agent: String,
    budget: Budget,
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

impl Budgets {
    pub fn new(config: BudgetsConfig) -> Self {
        Self {
            config,
            windows: ArcSwap::from_pointee(HashMap::new()),
            grow: Mutex::new(()),
        }
    }

    pub fn config(&self) -> &BudgetsConfig {
        &self.config
    }

    /// Counts spend already recorded in the current window (from the store, at start).
    pub fn preload(&self, agent: &str, spent_nanousd: u64, now_s: i64) {
        if let Some(w) = self.window(agent, now_s) {
            w.spent.fetch_add(spent_nanousd, Ordering::Relaxed);
            w.committed.fetch_add(spent_nanousd, Ordering::Relaxed);
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
        let Some(w) = self.window(agent, now_s) else {
            return Decision::Unlimited;
        };
        let estimate = estimate.max(1);
        let mut cur = w.committed.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_add(estimate);
            if next > w.budget.cap_nanousd {
                return Decision::Refused(Exceeded {
                    agent: w.agent.clone(),
                    cap_nanousd: w.budget.cap_nanousd,
                    committed_nanousd: cur,
                    window: w.budget.window,
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
            amount: estimate,
            open: true,
        })
    }

    /// Every agent with a window open now.
    pub fn status(&self, now_s: i64) -> Vec<Status> {
        let mut out: Vec<Status> = self
            .windows
            .load()
            .values()
            .filter(|w| w.end_s > now_s)
            .map(|w| w.status())
            .collect();
        out.sort_by(|a, b| a.agent.cmp(&b.agent));
        out
    }

    /// The agent's current window, created on first use and replaced when it has ended.
    fn window(&self, agent: &str, now_s: i64) -> Option<Arc<WindowState>> {
        let budget = *self.config.for_agent(agent)?;
        if let Some(w) = self.windows.load().get(agent) {
            if now_s < w.end_s && now_s >= w.start_s {
                return Some(Arc::clone(w));
            }
        }
        let _g = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.windows.load();
        if let Some(w) = current.get(agent) {
            if now_s < w.end_s && now_s >= w.start_s {
                return Some(Arc::clone(w));
            }
        }
        let (start_s, end_s) = window_bounds(budget.window, now_s);
        let w = Arc::new(WindowState {
            agent: agent.to_string(),
            budget,
            start_s,
            end_s,
            committed: AtomicU64::new(0),
            spent: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
        });
        let mut next = HashMap::clone(&current);
        next.insert(agent.to_string(), Arc::clone(&w));
        self.windows.store(Arc::new(next));
        Some(w)
    }
}

impl WindowState {
    fn status(&self) -> Status {
        Status {
            agent: self.agent.clone(),
            window: self.budget.window,
            window_start_s: self.start_s,
            resets_at_s: self.end_s,
            cap_nanousd: self.budget.cap_nanousd,
            spent_nanousd: self.spent.load(Ordering::Relaxed),
            reserved_nanousd: self.reserved.load(Ordering::Relaxed),
            warn_at_percent: self.budget.warn_at_percent,
        }
    }
}

impl Reservation {
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The window's status with this hold counted.
    pub fn status(&self) -> Status {
        self.window.status()
    }

    /// Replaces the hold by the actual cost. Returns the window's status afterwards.
    pub fn settle(mut self, actual_nanousd: u64) -> Status {
        let w = &self.window;
        w.spent.fetch_add(actual_nanousd, Ordering::Relaxed);
        w.committed.fetch_add(actual_nanousd, Ordering::AcqRel);
        self.release();
        self.window.status()
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
