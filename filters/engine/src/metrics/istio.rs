//! Istio-style request metrics: `istio_requests_total` and `istio_request_duration_milliseconds`
//! with Istio's labels, so Kiali and Istio's Grafana views see Dubbo, Thrift, Kafka, ZooKeeper and
//! Redis requests next to HTTP ones.
//!
//! Labels travel in the stat name in Istio's tag convention, `<tag>=.=<value>;.;`, followed by the
//! metric name: `reporter=.=destination;.;source_workload=.=...;.;response_flags=.=-;.;istio_requests_total`.
//! A `stats_tags` regex `(<tag>=\.=(.*?);\.;)` per tag (what Istio writes for every
//! `meshConfig.defaultConfig.extraStatTags` entry) turns each into a Prometheus label and leaves
//! `istio_requests_total` as the name; Envoy strips the host's custom namespace (`wasmcustom.`,
//! `dynamicmodulescustom.`) in `/stats/prometheus`.
//!
//! Every label value is fixed per listener (configuration) or comes from a closed set (the
//! protocol's methods and response codes), so all stats are defined once at configuration time:
//! one counter per (method, response code) pair and one histogram per response code; per request
//! the engine only indexes a table. The histogram never carries our `request_method` label:
//! an Envoy histogram costs some 25 KB of memory and 20-odd Prometheus lines even unused
//! (Kafka per api key would be ~5000 of them), and per-method latency is already in the
//! per-protocol stats (`<family>.<label>.latency_us`).

use super::sink::MetricId;
use crate::protocol::Protocol;

/// The counter's metric name.
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// The histogram's metric name (milliseconds).
pub const DURATION_MS: &str = "istio_request_duration_milliseconds";

/// Most (method, code) pairs a configuration may define (one counter each).
pub const MAX_COMBINATIONS: usize = 8192;

/// How a request ended without a reply code of its protocol. Each is a pseudo response code
/// (`response_code="none"`) with its own `response_flags`, appended after the protocol's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReply {
    /// A one-way request: no reply expected (`response_flags="-"`).
    Oneway = 0,
    /// The connection closed before the reply (`UC`, Envoy's "upstream connection termination").
    Closed = 1,
    /// The connection stopped on client bytes that broke the protocol (`DPE`).
    DownstreamProtocolError = 2,
    /// The connection stopped on server bytes that broke the protocol (`UPE`).
    UpstreamProtocolError = 3,
}

const NO_REPLY_FLAGS: [&str; 4] = ["-", "UC", "DPE", "UPE"];

/// Where the Istio stats of one configuration sit among its [`MetricId`]s.
#[derive(Debug, Clone)]
pub struct IstioTable {
    /// The id of the first counter; pair `i` (row-major) is counter `counters + i`.
    counters: u32,
    /// The id of the histogram of code 0; code `c` is `histograms + c`.
    histograms: u32,
    /// Reply codes of the protocol (pseudo codes come after them).
    own_codes: u16,
    /// All codes per method, pseudo codes included.
    codes: u16,
    /// Method labels (1 when `request_method` is off: every request uses row 0).
    methods: u16,
    per_method: bool,
}

impl IstioTable {
    /// The (counter, histogram) of a request with method label `label` that ended with reply
    /// code `code` (an index into the protocol's code list); `None` outside the closed sets.
    #[inline]
    pub fn reply(&self, label: u16, code: u16) -> Option<(MetricId, MetricId)> {
        if code >= self.own_codes {
            return None;
        }
        self.pair(label, code)
    }

    /// The (counter, histogram) of a request with method label `label` that got no reply.
    #[inline]
    pub fn no_reply(&self, label: u16, why: NoReply) -> Option<(MetricId, MetricId)> {
        self.pair(label, self.own_codes + why as u16)
    }

    #[inline]
    fn pair(&self, label: u16, code: u16) -> Option<(MetricId, MetricId)> {
        let row = if self.per_method {
            if label >= self.methods {
                return None;
            }
            u32::from(label)
        } else {
            0
        };
        let i = row * u32::from(self.codes) + u32::from(code);
        Some((
            MetricId(self.counters + i),
            MetricId(self.histograms + u32::from(code)),
        ))
    }
}

/// The number of (method, code) pairs a configuration would define, for the cardinality check.
pub fn combinations(m: &meltemi_proto::IstioMetrics, methods: usize, codes: usize) -> usize {
    let rows = if m.request_method { methods.max(1) } else { 1 };
    rows * (codes + NO_REPLY_FLAGS.len())
}

fn value(v: &str) -> &str {
    if v.is_empty() {
        "unknown"
    } else {
        v
    }
}

fn tag(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=.=");
    out.push_str(value);
    out.push_str(";.;");
}

/// Defines every Istio stat of a listener of `protocol` through `def` (called with the full stat name and
/// whether it is the histogram) and returns their table. `methods` are the protocol's method
/// labels, `codes` its reply codes, both closed sets.
pub(crate) fn define(
    protocol: Protocol,
    m: &meltemi_proto::IstioMetrics,
    methods: &[String],
    codes: &[String],
    def: &mut dyn FnMut(String, bool) -> MetricId,
) -> IstioTable {
    let mut head = String::new();
    tag(
        &mut head,
        "reporter",
        if m.reporter.is_empty() {
            "destination"
        } else {
            &m.reporter
        },
    );
    for (name, v) in m.labels() {
        tag(&mut head, name, value(v));
    }
    tag(&mut head, "request_protocol", protocol.as_str());
    let rows: Vec<Option<&str>> = if m.request_method {
        methods.iter().map(|s| Some(s.as_str())).collect()
    } else {
        vec![None]
    };
    let all_codes = codes
        .iter()
        .map(|c| (c.as_str(), "-"))
        .chain(NO_REPLY_FLAGS.iter().map(|f| ("none", *f)));
    let all_codes: Vec<(&str, &str)> = all_codes.collect();
    let name = |method: Option<&str>, code: &str, flags: &str, metric: &str| {
        let mut name = head.clone();
        if let Some(method) = method {
            tag(&mut name, "request_method", method);
        }
        tag(&mut name, "response_code", code);
        tag(&mut name, "response_flags", flags);
        name.push_str(metric);
        name
    };
    let mut histograms = None;
    for (code, flags) in &all_codes {
        let h = def(name(None, code, flags, DURATION_MS), true);
        histograms.get_or_insert(h.0);
    }
    let mut counters = None;
    for method in &rows {
        for (code, flags) in &all_codes {
            let c = def(name(*method, code, flags, REQUESTS_TOTAL), false);
            counters.get_or_insert(c.0);
        }
    }
    IstioTable {
        counters: counters.unwrap_or(0),
        histograms: histograms.unwrap_or(0),
        own_codes: codes.len() as u16,
        codes: all_codes.len() as u16,
        methods: rows.len() as u16,
        per_method: m.request_method,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, FilterConfig, MetricId, MetricKind, MetricSink, Session};
    use std::collections::HashMap;

    #[derive(Default)]
    struct Sink {
        counts: HashMap<u32, u64>,
        records: HashMap<u32, Vec<u64>>,
    }

    impl MetricSink for Sink {
        fn inc(&mut self, id: MetricId, d: u64) {
            *self.counts.entry(id.0).or_default() += d;
        }
        fn gauge_add(&mut self, _: MetricId, _: i64) {}
        fn record(&mut self, id: MetricId, v: u64) {
            self.records.entry(id.0).or_default().push(v);
        }
    }

    fn engine(istio: &str) -> Engine {
        Engine::new(
            FilterConfig::from_json(&format!(
                r#"{{"protocol":"redis","statPrefix":"r","istioMetrics":{istio}}}"#
            ))
            .unwrap(),
        )
    }

    /// The Istio stat names of `e` ending in `metric`, with their ids.
    fn named(e: &Engine, metric: &str) -> HashMap<String, u32> {
        e.metrics
            .defs()
            .iter()
            .enumerate()
            .filter(|(_, d)| d.name.ends_with(metric))
            .map(|(i, d)| (d.name.clone(), i as u32))
            .collect()
    }

    const GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";

    #[test]
    fn names_follow_istios_tag_convention_and_count_per_code() {
        let e = engine(
            r#"{"enabled":true,"destinationServiceName":"cache","destinationService":"cache.ns.svc.cluster.local"}"#,
        );
        let counters = named(&e, super::REQUESTS_TOTAL);
        // ok, error, and the four no-reply entries.
        assert_eq!(counters.len(), 6);
        let ok = "reporter=.=destination;.;source_workload=.=unknown;.;source_workload_namespace=.=unknown;.;\
source_principal=.=unknown;.;source_app=.=unknown;.;source_version=.=unknown;.;\
source_canonical_service=.=unknown;.;source_canonical_revision=.=unknown;.;\
destination_workload=.=unknown;.;destination_workload_namespace=.=unknown;.;\
destination_principal=.=unknown;.;destination_app=.=unknown;.;destination_version=.=unknown;.;\
destination_service=.=cache.ns.svc.cluster.local;.;destination_service_name=.=cache;.;\
destination_service_namespace=.=unknown;.;destination_canonical_service=.=unknown;.;\
destination_canonical_revision=.=unknown;.;connection_security_policy=.=unknown;.;\
request_protocol=.=redis;.;response_code=.=ok;.;response_flags=.=-;.;istio_requests_total";
        let ok_id = counters[ok];
        let err_id = counters[&ok.replace("=ok;", "=error;")];
        let closed_id =
            counters[&ok.replace("=ok;.;response_flags=.=-", "=none;.;response_flags=.=UC")];
        let hist = named(&e, super::DURATION_MS);
        let ok_hist = hist[&ok.replace(super::REQUESTS_TOTAL, super::DURATION_MS)];
        assert_eq!(
            e.metrics.defs()[ok_hist as usize].kind,
            MetricKind::Histogram
        );

        let mut sink = Sink::default();
        let mut s = Session::new(&e, &mut sink);
        for _ in 0..3 {
            s.on_downstream(&e, GET, 0, &mut sink);
        }
        s.on_upstream(&e, b"$1\r\nv\r\n", 2_000_000, &mut sink);
        s.on_upstream(&e, b"-ERR no\r\n", 5_000_000, &mut sink);
        s.on_close(&e, &mut sink);
        assert_eq!(sink.counts.get(&ok_id), Some(&1));
        assert_eq!(sink.counts.get(&err_id), Some(&1));
        assert_eq!(
            sink.counts.get(&closed_id),
            Some(&1),
            "third GET had no reply"
        );
        assert_eq!(sink.records[&ok_hist], [2], "milliseconds");
    }

    #[test]
    fn request_method_adds_a_row_per_label_and_decode_errors_flag_the_rest() {
        let e = engine(r#"{"enabled":true,"reporter":"source","requestMethod":true}"#);
        let counters = named(&e, super::REQUESTS_TOTAL);
        let commands = e.config.labels().names.len();
        assert_eq!(counters.len(), commands * 6);
        let get_dpe = counters
            .iter()
            .find(|(n, _)| {
                n.starts_with("reporter=.=source;")
                    && n.contains(
                        "request_method=.=get;.;response_code=.=none;.;response_flags=.=DPE;.;",
                    )
            })
            .map(|(_, i)| *i)
            .expect("get DPE counter");
        let mut sink = Sink::default();
        let mut s = Session::new(&e, &mut sink);
        s.on_downstream(&e, GET, 0, &mut sink);
        s.on_downstream(&e, b"*x\r\n", 1, &mut sink);
        s.on_close(&e, &mut sink);
        assert_eq!(sink.counts.get(&get_dpe), Some(&1));
    }

    #[test]
    fn cardinality_is_capped() {
        let cfg = FilterConfig::from_json(
            r#"{"protocol":"kafka","statPrefix":"k","istioMetrics":{"enabled":true,"requestMethod":true}}"#,
        );
        assert!(cfg.is_ok(), "{cfg:?}");
        let e = FilterConfig::from_json(
            r#"{"protocol":"redis","statPrefix":"r","istioMetrics":{"enabled":true,"sourceWorkload":"a=b"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "istioMetrics.sourceWorkload");
    }

    /// What the Istio metrics add per request: a Redis session fed 1000 pipelined GETs and their
    /// replies, with istioMetrics off, on, and on per command. A sink of plain arrays stands for
    /// the host. Run: `cargo test --release -p meltemi-engine istio_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn istio_cost() {
        struct Flat(Vec<u64>);
        impl MetricSink for Flat {
            fn inc(&mut self, id: MetricId, d: u64) {
                self.0[id.0 as usize] += d;
            }
            fn gauge_add(&mut self, id: MetricId, d: i64) {
                self.0[id.0 as usize] = self.0[id.0 as usize].wrapping_add(d as u64);
            }
            fn record(&mut self, id: MetricId, v: u64) {
                self.0[id.0 as usize] += v;
            }
        }
        let reqs = GET.repeat(1000);
        let reps = b"$1\r\nv\r\n".repeat(1000);
        let configs = [
            r#"{"enabled":false}"#,
            r#"{"enabled":true}"#,
            r#"{"enabled":true,"requestMethod":true}"#,
        ];
        let engines: Vec<Engine> = configs.iter().map(|c| engine(c)).collect();
        // Interleaved runs, median of 7 per configuration (the machine is shared).
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
        for _ in 0..7 {
            for (e, out) in engines.iter().zip(&mut runs) {
                let mut sink = Flat(vec![0; e.metrics.defs().len()]);
                let rounds = 300u64;
                let t = std::time::Instant::now();
                for r in 0..rounds {
                    let mut s = Session::new(e, &mut sink);
                    s.on_downstream(e, &reqs, r, &mut sink);
                    s.on_upstream(e, &reps, r + 1, &mut sink);
                    s.on_close(e, &mut sink);
                }
                out.push(t.elapsed().as_nanos() as f64 / (rounds * 1000) as f64);
            }
        }
        for (c, mut v) in configs.iter().zip(runs) {
            v.sort_by(f64::total_cmp);
            println!(
                "istioMetrics {c}: {:.1} ns per request/response pair (median of 7)",
                v[3]
            );
        }
    }
}
