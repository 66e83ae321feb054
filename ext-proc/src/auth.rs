//! Who is calling. One module per method: [`api_key`] (gateway API keys) now; OIDC access
//! tokens join it as `oidc`. A successful check yields the [`Principal`] usage and budgets
//! are attributed to; it never travels to the upstream.

pub mod api_key;

use std::sync::Arc;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The API key's configured name (later: the token subject).
    pub name: Arc<str>,
}
