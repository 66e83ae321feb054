//! Prometheus metrics, named after the OpenTelemetry GenAI semantic conventions.
