//! Model prices and request cost (in progress).
