//! Where usage records go. The request path only ever calls [`RecordSink::submit`], which
//! never blocks and never fails a request: a bounded queue feeds a writer thread that commits
//! in small batches. Backends live in `store/<backend>.rs` (SQLite now; PostgreSQL next).
