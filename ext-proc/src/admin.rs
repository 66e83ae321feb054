//! The admin API: usage queries and Prometheus metrics, behind an admin credential.
