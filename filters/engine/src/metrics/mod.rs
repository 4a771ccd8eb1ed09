//! The metric table of one configuration: every stat the adapters define on their host, in
//! definition order ([`MetricId`] indexes it), and the ids the tracker counts under.
//! The vocabulary (ids, kinds, the sink, label sets) is the leaf [`sink`]; the Istio-style
//! stats are [`istio`].
//!
//! Every stat is named `<protocol>.<stat_prefix>.<name>`; Envoy shows it under
//! `wasmcustom.` (the `.wasm` filter) or `dynamicmodulescustom.` (the `.so`) in `/stats`.

pub mod istio;
pub mod sink;

use crate::protocol::Protocol;
use istio::IstioTable;
pub use sink::{LabelSet, MetricDef, MetricId, MetricKind, MetricSink};

/// What the metric table takes from the configuration (see `FilterConfig::metric_spec`).
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// The first part of every stat name.
    pub protocol: Protocol,
    /// The second part of every stat name.
    pub stat_prefix: &'a str,
    /// One log line per request/response pair.
    pub access_log: bool,
    /// Istio-style request metrics, when enabled.
    pub istio: Option<&'a meltemi_proto::IstioMetrics>,
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
    /// Connections closed because their worker held more than `workerHeldBudgetBytes`.
    pub cx_buffer_overflow: MetricId,
    /// Bytes held now for unfinished frames, detours and waiting answers (gauge).
    pub held_bytes: MetricId,
}

/// Request/response metrics common to every protocol (names follow Envoy's native
/// `dubbo_proxy`/`thrift_proxy` stats where they exist; `docs/design.md` has the table of each
/// name, its native counterpart and whether it means the same).
#[derive(Debug, Clone, Copy)]
pub struct Obs {
    /// Requests decoded.
    pub request: MetricId,
    /// Requests that expect an answer.
    pub request_call: MetricId,
    /// Requests that expect none.
    pub request_oneway: MetricId,
    /// Heartbeats, pings and protocol events.
    pub request_event: MetricId,
    /// Requests waiting for an answer (gauge).
    pub request_active: MetricId,
    /// Requests still waiting when the connection closed.
    pub request_no_reply: MetricId,
    /// Client bytes that broke the protocol.
    pub request_decoding_error: MetricId,
    /// Request latency (histogram, microseconds).
    pub request_time_us: MetricId,
    /// Responses decoded.
    pub response: MetricId,
    /// Normal answers.
    pub response_success: MetricId,
    /// Error answers ([`crate::observe::Outcome::Error`]).
    pub response_error: MetricId,
    /// Exception answers ([`crate::observe::Outcome::Exception`]).
    pub response_exception: MetricId,
    /// Answers to no known request.
    pub response_unmatched: MetricId,
    /// Server bytes that broke the protocol.
    pub response_decoding_error: MetricId,
    /// Out-of-band server messages (watch events, pushes).
    pub server_event: MetricId,
}

/// Per-label metrics (per command, method, api key or opcode), named like Envoy's native
/// `redis_proxy`: `<family>.<label>.total|success|error|latency_us`, and `exception` for the
/// protocols whose answers can be exceptions (Thrift, Dubbo).
#[derive(Debug, Clone, Copy)]
pub struct LabelStats {
    /// Requests.
    pub total: MetricId,
    /// Successful answers.
    pub success: MetricId,
    /// Error answers (and exceptions where the family has no `exception`).
    pub error: MetricId,
    /// Exception answers, where the protocol has them.
    pub exception: Option<MetricId>,
    /// Latency histogram (microseconds).
    pub latency_us: MetricId,
}

/// All metrics of one configuration, in definition order.
#[derive(Debug, Clone)]
pub struct Metrics {
    defs: Vec<MetricDef>,
    /// The fixed metrics.
    pub core: Core,
    /// Request/response metrics.
    pub obs: Obs,
    labels: Vec<LabelStats>,
    versions: u16,
    version_counters: Vec<MetricId>,
    /// Access log settings: `None` when off; else the line's fixed head and the label names.
    access_log: Option<AccessLog>,
    /// Istio-style request metrics, when configured.
    istio: Option<IstioTable>,
}

/// What an access log line needs besides the request.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// `meltemi protocol=<p> stat_prefix=<s> <family>=`.
    pub head: String,
    /// Label values by index.
    pub labels: Vec<String>,
}

impl Metrics {
    /// The access log settings, when access logs are on.
    #[inline]
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// The Istio-style request metrics, when configured.
    #[inline]
    pub fn istio(&self) -> Option<&IstioTable> {
        self.istio.as_ref()
    }

    /// The counter of requests with label `i` at protocol version `v`, if counted.
    #[inline]
    pub fn version_counter(&self, i: u16, v: i16) -> Option<MetricId> {
        if v < 0 || v as u16 >= self.versions {
            return None;
        }
        self.version_counters
            .get(i as usize * self.versions as usize + v as usize)
            .copied()
    }

    /// The per-label stats for label index `i`, if it is in the set.
    #[inline]
    pub fn label(&self, i: u16) -> Option<&LabelStats> {
        self.labels.get(i as usize)
    }

    /// Builds the metric table for `config`, with per-label metrics for `labels`.
    pub fn new(config: Spec<'_>, labels_in: &LabelSet) -> Metrics {
        let labels = labels_in;
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
            cx_buffer_overflow: def("cx_buffer_overflow", MetricKind::Counter),
            held_bytes: def("held_bytes", MetricKind::Gauge),
        };
        use MetricKind::{Counter as C, Gauge as G, Histogram as H};
        let obs = Obs {
            request: def("request", C),
            request_call: def("request_call", C),
            request_oneway: def("request_oneway", C),
            request_event: def("request_event", C),
            request_active: def("request_active", G),
            request_no_reply: def("request_no_reply", C),
            request_decoding_error: def("request_decoding_error", C),
            request_time_us: def("request_time_us", H),
            response: def("response", C),
            response_success: def("response_success", C),
            response_error: def("response_error", C),
            response_exception: def("response_exception", C),
            response_unmatched: def("response_unmatched", C),
            response_decoding_error: def("response_decoding_error", C),
            server_event: def("server_event", C),
        };
        let labels = labels
            .names
            .iter()
            .map(|l| {
                let f = labels.family;
                LabelStats {
                    total: def(&format!("{f}.{l}.total"), C),
                    success: def(&format!("{f}.{l}.success"), C),
                    error: def(&format!("{f}.{l}.error"), C),
                    exception: labels
                        .exceptions
                        .then(|| def(&format!("{f}.{l}.exception"), C)),
                    latency_us: def(&format!("{f}.{l}.latency_us"), H),
                }
            })
            .collect();
        let mut version_counters = Vec::new();
        for l in &labels_in.names {
            for v in 0..labels_in.versions {
                version_counters.push(def(&format!("{}_version.{l}.v{v}", labels_in.family), C));
            }
        }
        let istio = config
            .istio
            .filter(|_| config.protocol != Protocol::Raw)
            .map(|m| {
                istio::define(
                    config.protocol,
                    m,
                    &labels_in.names,
                    &labels_in.reply_codes,
                    &mut |name, histogram| {
                        defs.push(MetricDef {
                            name,
                            kind: if histogram { H } else { C },
                        });
                        MetricId(defs.len() as u32 - 1)
                    },
                )
            });
        let access_log = config.access_log.then(|| AccessLog {
            head: format!(
                "meltemi protocol={} stat_prefix={} {}=",
                config.protocol.as_str(),
                config.stat_prefix,
                labels_in.family
            ),
            labels: labels_in.names.clone(),
        });
        Metrics {
            defs,
            core,
            obs,
            labels,
            versions: labels_in.versions,
            version_counters,
            access_log,
            istio,
        }
    }

    /// Every metric to define on the host, indexed by [`MetricId`].
    pub fn defs(&self) -> &[MetricDef] {
        &self.defs
    }
}
