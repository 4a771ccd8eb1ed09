//! The metric vocabulary every layer shares: ids, kinds and definitions of stats, the sink the
//! adapters implement, and the closed label sets of per-label stats. A leaf: it imports nothing
//! of the engine, so the codec-facing modules, the tracker and the adapters' batching all
//! depend on it without depending on each other.

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
    /// One access log line (only called when the configuration asks for access logs).
    fn access_log(&mut self, _line: &str) {}
}

/// A closed set of label values for per-label metrics.
#[derive(Debug, Clone)]
pub struct LabelSet {
    /// The family segment of the stat name (`command`, `method`, `api`, `opcode`).
    pub family: &'static str,
    /// Label values, indexed by the `u16` the protocol module passes to the tracker.
    pub names: Vec<String>,
    /// Also count requests per label and protocol version `0..versions`
    /// (`<family>_version.<label>.v<N>`); 0 for none. Kafka uses it for api versions.
    pub versions: u16,
    /// Answers can be exceptions: each label also gets `<family>.<label>.exception`.
    pub exceptions: bool,
    /// The protocol's reply codes, the closed set of the Istio `response_code` label (the
    /// protocol module passes an index into it).
    pub reply_codes: Vec<String>,
}
