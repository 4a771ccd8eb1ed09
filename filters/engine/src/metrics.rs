//! Metric definitions shared by both adapters, and the sink they implement.
//!
//! Every stat is named `<protocol>.<stat_prefix>.<name>`; Envoy shows it under
//! `wasmcustom.` (the `.wasm` filter) or `dynamicmodulescustom.` (the `.so`) in `/stats`.

use crate::config::FilterConfig;

/// What kind of stat a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Up/down gauge.
    Gauge,
    /// Histogram of recorded values.
    Histogram,
}

/// Index of a metric in [`Metrics::defs`]; stable for the life of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricId(pub u32);

/// One metric the adapter must define on its host at configuration time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDef {
    /// Full stat name (without the host's `wasmcustom.`/`dynamicmodulescustom.` prefix).
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
}

/// Where the engine sends metric events; the adapters map ids onto host handles.
pub trait MetricSink {
    /// Adds `delta` to a counter.
    fn inc(&mut self, id: MetricId, delta: u64);
    /// Adds `delta` (may be negative) to a gauge.
    fn gauge_add(&mut self, id: MetricId, delta: i64);
    /// Records one histogram value.
    fn record(&mut self, id: MetricId, value: u64);
}

/// The fixed metrics of every session.
#[derive(Debug, Clone, Copy)]
pub struct Core {
    /// Connections accepted.
    pub cx_total: MetricId,
    /// Connections open now (gauge).
    pub cx_active: MetricId,
    /// Bytes from the client.
    pub downstream_rx_bytes: MetricId,
    /// Bytes from the server.
    pub upstream_rx_bytes: MetricId,
    /// Panics contained by the adapter (each closed one connection).
    pub panic: MetricId,
}

/// All metrics of one configuration, in definition order.
#[derive(Debug, Clone)]
pub struct Metrics {
    defs: Vec<MetricDef>,
    /// The fixed metrics.
    pub core: Core,
}

impl Metrics {
    /// Builds the metric table for `config`.
    pub fn new(config: &FilterConfig) -> Metrics {
        let mut defs = Vec::new();
        let prefix = format!("{}.{}.", config.protocol.as_str(), config.stat_prefix);
        let mut def = |name: &str, kind| {
            defs.push(MetricDef {
                name: format!("{prefix}{name}"),
                kind,
            });
            MetricId(defs.len() as u32 - 1)
        };
        let core = Core {
            cx_total: def("cx_total", MetricKind::Counter),
            cx_active: def("cx_active", MetricKind::Gauge),
            downstream_rx_bytes: def("downstream_rx_bytes", MetricKind::Counter),
            upstream_rx_bytes: def("upstream_rx_bytes", MetricKind::Counter),
            panic: def("panic", MetricKind::Counter),
        };
        Metrics { defs, core }
    }

    /// Every metric to define on the host, indexed by [`MetricId`].
    pub fn defs(&self) -> &[MetricDef] {
        &self.defs
    }
}
