//! # aigw-filter
//!
//! The proxy-wasm filter that runs inside Envoy, first in the HTTP filter chain. Per request,
//! in `on_http_request_headers`:
//!
//! 1. [`request::Request::route`] reads the headers once, refuses client copies of internal
//!    headers, parses `/llm/v1/providers/<name>/...` ([`aigw_core::path`]) and looks the
//!    provider up in the [`table::ProviderTable`] built at configure time.
//! 2. [`credential`] finds the one gateway credential the client sent, where its SDK puts it.
//! 3. The request is rewritten for the upstream (`:path`, `:authority`, the cluster header),
//!    the credential headers are removed, and the route and credential are handed to the
//!    sidecar as filter state ([`aigw_core::handoff`]).
//!
//! 4. [`fast_path`]: if the sidecar's snapshot admits the key on this provider, the filter
//!    adds the upstream credential itself, meters the call ([`aigw_metering`]) and queues its
//!    record for the sidecar; the route then skips ext_proc.
//!
//! Anything wrong is answered here with the gateway's JSON error ([`reply`]), before the
//! sidecar or any upstream sees the request. Paths outside `/llm/v1/providers` pass untouched.

pub mod credential;
pub mod fast_path;
pub mod request;
pub mod table;

#[cfg(target_arch = "wasm32")]
mod plugin;
#[cfg(target_arch = "wasm32")]
mod reply;
