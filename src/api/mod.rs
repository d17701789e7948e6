//! HTTP API: health, readiness, metrics.
