//! The sans-IO engine shared by both host adapters (the proxy-wasm filter and the Envoy dynamic
//! module).
//!
//! One [`Session`] per connection takes the bytes each way (`on_downstream`, `on_upstream`) and
//! turns them into decisions ([`Verdict`]) and metric events delivered to a [`MetricSink`] that
//! the adapter maps onto its host's counters. Time is an argument and nothing here does I/O,
//! spawns threads, reads clocks or draws random numbers, so tests drive it with no host at all.
//!
//! What it deliberately does not do: own buffers of the host (the adapter lets the host buffer),
//! or know host types. Metric names are defined here once ([`metrics`]) so both adapters export
//! the same stats.
#![forbid(unsafe_code)]

// Layers, each importing only those above it in this list: leaves (`protocol`, `failure`,
// `fasthash`, `framer`, `metrics::sink`), then `route`, `metrics` (with `istio`), `batch`,
// `observe`, `protocols`, `config`, `session` (docs/architecture-engine.md).
mod failure;
mod fasthash;
mod framer;
mod protocol;

pub mod redis_route;
pub mod route;

pub mod batch;
pub mod metrics;
pub mod observe;
mod protocols;

pub mod config;
mod session;

pub use metrics::istio;

pub use batch::Batch;
pub use config::{ConfigError, FilterConfig, OnDecodeError, Protocol};
pub use failure::DecodeFailure;
pub use metrics::{LabelSet, MetricDef, MetricId, MetricKind, MetricSink, Metrics};
pub use observe::{Outcome, RequestKind};
pub use session::{CloseReason, Engine, HeldBudget, Session, Verdict};
