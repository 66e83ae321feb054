//! # aigw-metering
//!
//! What a request and its answer say about usage, read as they pass, into one
//! [`record::UsageRecord`]. No I/O and no pricing: it builds for `wasm32-wasip1`, so the filter
//! meters the requests it completes alone (the fast path) with the same code the sidecar
//! uses for the rest; the sidecar prices every record.
//!
//! - [`request_body`]: the model, the stream flag and the output cap; `include_usage` added
//!   to OpenAI chat streams, and the usage chunk that adds taken out of the answer.
//! - [`usage`]: the usage extractors, one module per provider format.
//! - [`accounting`]: one request's accounting from its headers to its [`record`].

pub mod accounting;
pub mod record;
pub mod request_body;
pub mod usage;
