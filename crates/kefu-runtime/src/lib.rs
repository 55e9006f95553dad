//! Shared plumbing for every Kefu service.
//!
//! * [`auth`]: the one credential model: shop API keys, agent tokens, the operator token and
//!   service credentials, checked before any handler runs.
//! * [`config`]: command-line / environment configuration, failing fast with exit code 64.
//! * [`telemetry`]: `tracing` + OpenTelemetry (OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   is set), W3C trace context propagation.
//! * [`metrics`]: a Prometheus registry and the HTTP endpoint that serves it.
//! * [`grpc`]: a tonic server with health and reflection, and one place that maps errors to
//!   gRPC statuses with field-level details.
//! * [`db`]: sea-orm connections (SQLite by default, PostgreSQL by URL) and migrations.
//! * [`kafka`]: topics, an idempotent producer, an at-least-once consumer with retries and
//!   dead-lettering.
//! * [`outbox`]: one relay per transactional outbox (a lease picks the replica).
//! * [`event`]: event metadata and deterministic event ids for idempotent handling.
//! * [`lifecycle`]: graceful shutdown on SIGTERM/SIGINT within a grace period.
//! * [`retention`]: per-table retention rules and the background task that deletes expired
//!   rows in bounded batches.
//! * [`readiness`]: the conditions (broker, database, consumer) that make a service report
//!   NOT_SERVING until they clear.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod customer_key;
pub mod db;
pub mod event;
pub mod grpc;
pub mod kafka;
pub mod lifecycle;
pub mod metrics;
pub mod outbox;
pub mod privacy;
pub mod readiness;
pub mod retention;
pub mod service;
pub mod telemetry;
pub mod validate;

pub use lifecycle::Lifecycle;
pub use service::Service;
