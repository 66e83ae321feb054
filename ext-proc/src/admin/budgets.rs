//! `GET /api/v1/budgets`: every agent's budget in its current window: spend, reserved, cap,
//! window and reset time. Agents appear once they have made a request in the window.

use crate::budgets::rfc3339;
use crate::gateway::Gateway;
use crate::store::csv::nanousd_to_usd as usd;
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

async fn list(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    let now_s = crate::store::time::now_ms() / 1000;
    let budgets = gw
        .budgets
        .status(now_s)
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
    ([(CONTENT_TYPE, "application/json")], body)
}
