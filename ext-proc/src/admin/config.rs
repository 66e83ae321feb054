//! `GET /api/v1/config`: the live config's version and when it was loaded, how many
//! reloads were applied and refused, and why the config file's current content was
//! refused, if it was (see [`crate::reload`]).

use crate::gateway::Gateway;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/api/v1/config", get(status))
        .with_state(gw)
}

async fn status(State(gw): State<Arc<Gateway>>) -> Json<crate::reload::Status> {
    Json(gw.reload.status(&gw))
}
