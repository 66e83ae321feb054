//! # aigw-core
//!
//! The one definition of everything the wasm filter (inside Envoy) and the ext_proc sidecar
//! must agree on. No I/O, no async: it builds for `wasm32-wasip1` and for the host.
//!
//! - [`config`]: the gateway configuration (the filter's plugin configuration), typed and validated.
//! - [`provider`]: provider kinds and their defaults.
//! - [`path`]: `/llm/v1/providers/<name>/<rest>` parsed once, with the bad-input rules.
//! - [`handoff`]: what the filter hands the sidecar, in filter state a client cannot forge.
//! - [`bedrock`]: the Bedrock runtime operations the gateway signs.
//! - [`feed`]: what the sidecar sends the filter for its fast path, and the records it gets back.
//! - [`error`]: the single JSON error shape of every reply the gateway itself makes.

pub mod bedrock;
pub mod config;
pub mod error;
pub mod feed;
pub mod handoff;
pub mod hex;
pub mod path;
pub mod provider;

pub use config::{GatewayConfig, ProviderConfig, RequestLogConfig, UpstreamUrl};
pub use error::{ErrorKind, GatewayError};
pub use provider::ProviderKind;
