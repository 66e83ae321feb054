//! Local replies: the gateway's JSON error, sent by Envoy without calling any upstream.

use aigw_core::GatewayError;
use proxy_wasm::traits::HttpContext;

pub fn send(ctx: &dyn HttpContext, e: &GatewayError) {
    let body = e.to_json();
    let headers: Vec<(&str, &str)> = e.headers().collect();
    ctx.send_http_response(u32::from(e.status()), headers, Some(body.as_bytes()));
}
