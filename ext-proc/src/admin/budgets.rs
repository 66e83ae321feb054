//! `GET /api/v1/budgets`: every agent's budget in its current window: spend, reserved, cap,
//! window and reset time. Agents appear once they have made a request in the window. With
//! PostgreSQL the figures are every replica's, read from the shared counters.

use super::error::ApiError;
use crate::admission::budget_key;
use crate::budgets::{rfc3339, window_bounds, Status};
use crate::gateway::Gateway;
use crate::store::csv::nanousd_to_usd as usd;
use aigw_core::config::BudgetWindow;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize)]
struct BudgetView {
    agent: String,
    window: aigw_core::config::BudgetWindow,
    window_start: String,
    resets_at: String,
    cap_nanousd: u64,
    spent_nanousd: u64,
    reserved_nanousd: u64,
    cap_usd: String,
    spent_usd: String,
    reserved_usd: String,
    /// Spent and reserved, as a share of the cap, in whole percent (rounded down).
    used_percent: u64,
    warn_at_percent: Option<u8>,
}

#[derive(Serialize)]
struct Budgets {
    budgets: Vec<BudgetView>,
}

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/api/v1/budgets", get(list))
        .with_state(gw)
}

async fn list(State(gw): State<Arc<Gateway>>) -> Result<impl IntoResponse, ApiError> {
    let now_s = crate::store::time::now_ms() / 1000;
    let statuses = match gw.shared().and_then(|s| s.postgres.as_ref()) {
        Some(pg) => shared_status(&gw, pg, now_s).await?,
        None => gw.live().budgets.status(now_s),
    };
    let budgets = statuses
        .into_iter()
        .map(|s| {
            let used = s.spent_nanousd.saturating_add(s.reserved_nanousd);
            BudgetView {
                window_start: rfc3339(s.window_start_s),
                resets_at: rfc3339(s.resets_at_s),
                cap_usd: usd(s.cap_nanousd),
                spent_usd: usd(s.spent_nanousd),
                reserved_usd: usd(s.reserved_nanousd),
                used_percent: (u128::from(used) * 100 / u128::from(s.cap_nanousd.max(1))) as u64,
                agent: s.agent,
                window: s.window,
                cap_nanousd: s.cap_nanousd,
                spent_nanousd: s.spent_nanousd,
                reserved_nanousd: s.reserved_nanousd,
                warn_at_percent: s.warn_at_percent,
            }
        })
        .collect();
    let body = serde_json::to_vec(&Budgets { budgets }).unwrap_or_default();
    Ok(([(CONTENT_TYPE, "application/json")], body))
}

/// Every replica's figures: the agents' counters of their current windows in PostgreSQL.
async fn shared_status(
    gw: &Gateway,
    pg: &crate::shared::postgres::Counters,
    now_s: i64,
) -> Result<Vec<Status>, ApiError> {
    // The earliest window start any budget can have now: a month's or a week's.
    let since = [BudgetWindow::Monthly, BudgetWindow::Weekly]
        .map(|w| window_bounds(w, now_s).0)
        .into_iter()
        .min()
        .unwrap_or(now_s);
    let rows = pg
        .list(&budget_key(""), since)
        .await
        .map_err(|e| ApiError::Task(e.to_string()))?;
    let live = gw.live();
    let config = live.budgets.config();
    Ok(rows
        .into_iter()
        .filter_map(|(key, start, state)| {
            let agent = key.strip_prefix(&budget_key(""))?;
            let b = config.for_agent(agent)?;
            let (window_start_s, resets_at_s) = window_bounds(b.window, now_s);
            (window_start_s == start).then(|| Status {
                agent: agent.to_string(),
                window: b.window,
                window_start_s,
                resets_at_s,
                cap_nanousd: b.cap_nanousd,
                spent_nanousd: state.used,
                reserved_nanousd: state.reserved,
                warn_at_percent: b.warn_at_percent,
            })
        })
        .collect())
}
