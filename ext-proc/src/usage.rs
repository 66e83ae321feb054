//! Token usage read from provider responses (in progress).
