//! The network filter's configuration: JSON carried in `filter_config` (a
//! `google.protobuf.StringValue`, which Envoy hands to the module without the wrapper).
//!
//! ```json
//! {"protocol": "redis", "stat_prefix": "cache"}
//! ```
//!
//! Everything but `probe` is the engine's configuration ([`meltemi_engine::FilterConfig`]:
//! `protocol`, `stat_prefix`, `on_decode_error`, `max_frame_bytes`, and the test-only
//! `panic_on`). Module-only, test-only:
//! - `"probe": {"on": "MELTEMI-PROBE", "cluster": "meltemi_bridge", "body": "*1\r\n$4\r\nPING\r\n",
//!   "timeout_ms": 1000}`: a client read containing the marker is drained from the stream (it
//!   never reaches the upstream), `body` is sent by HTTP callout to `cluster` (whose upstream is
//!   this module's HTTP-to-TCP bridge), and the callout's answer is written back to the client.
//!   The first brick of the per-request detour described in the design notes.

use crate::host::{CounterId, GaugeId, HistogramId, MetricsRegistry};
use crate::rds::{self, Discovery, RdsMetrics};
use crate::routing::{Routing, StatBook};
use meltemi_engine::route::{RouteTable, RpcProtocol};
use meltemi_engine::{Engine, FilterConfig, MetricId, MetricKind};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    on: String,
    cluster: String,
    #[serde(default = "default_probe_body")]
    body: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_probe_body() -> String {
    "*1\r\n$4\r\nPING\r\n".to_owned()
}

fn default_timeout_ms() -> u64 {
    1000
}

/// The test-only callout probe (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub on: Vec<u8>,
    pub cluster: String,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// The host handle of one engine metric.
#[derive(Debug, Clone, Copy)]
pub enum Handle {
    Counter(CounterId),
    Gauge(GaugeId),
    Histogram(HistogramId),
}

/// Module-only metric handles.
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    pub panics: CounterId,
    pub callouts_ok: CounterId,
    pub callouts_failed: CounterId,
}

/// The compiled, immutable config shared by every connection of a listener.
#[derive(Debug)]
pub struct Config {
    pub engine: Engine,
    pub probe: Option<Probe>,
    /// Host handle per engine [`MetricId`].
    pub handles: Vec<Handle>,
    pub metrics: Metrics,
    /// The listener's own route table (its initial one when route discovery is on).
    pub routing: Option<Arc<Routing>>,
    /// Newer route tables fetched without a listener update (`routeDiscovery`).
    pub discovery: Option<Arc<Discovery>>,
    /// Redis routing: the module's own upstream connections, indexed like the router's
    /// clusters (`engine.config.redis`); empty without a `redis` section.
    pub shards: Vec<crate::shards::Shard>,
}

/// Why a config was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// Not valid JSON.
    Json(serde_json::Error),
    /// The engine refused it (names the field).
    Engine(meltemi_engine::ConfigError),
    /// A field has a value we refuse.
    Invalid(&'static str),
    /// Envoy refused to define a metric.
    Metric(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(e) => write!(f, "invalid JSON config: {e}"),
            ConfigError::Engine(e) => write!(f, "{e}"),
            ConfigError::Invalid(why) => write!(f, "invalid config: {why}"),
            ConfigError::Metric(name) => write!(f, "could not define metric {name}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and validates `json`, then defines the metrics. Never panics on bad input.
    pub fn parse(json: &[u8], reg: &mut dyn MetricsRegistry) -> Result<Config, ConfigError> {
        let mut value: serde_json::Value =
            serde_json::from_slice(json).map_err(ConfigError::Json)?;
        let raw_probe = value.as_object_mut().and_then(|o| o.remove("probe"));
        let engine_cfg =
            FilterConfig::from_json(&value.to_string()).map_err(ConfigError::Engine)?;
        let probe = match raw_probe {
            None => None,
            Some(p) => {
                let p: RawProbe = serde_json::from_value(p).map_err(ConfigError::Json)?;
                if p.on.is_empty() {
                    return Err(ConfigError::Invalid("probe.on must not be empty"));
                }
                if p.cluster.is_empty() {
                    return Err(ConfigError::Invalid("probe.cluster must not be empty"));
                }
                Some(Probe {
                    on: p.on.into_bytes(),
                    cluster: p.cluster,
                    body: p.body.into_bytes(),
                    timeout_ms: p.timeout_ms,
                })
            }
        };
        let engine = Engine::new(engine_cfg);
        let mut handles = Vec::with_capacity(engine.metrics.defs().len());
        for d in engine.metrics.defs() {
            let h = match d.kind {
                MetricKind::Counter => reg.define_counter(&d.name).map(Handle::Counter),
                MetricKind::Gauge => reg.define_gauge(&d.name).map(Handle::Gauge),
                MetricKind::Histogram => reg.define_histogram(&d.name).map(Handle::Histogram),
            };
            handles.push(h.ok_or_else(|| ConfigError::Metric(d.name.clone()))?);
        }
        let prefix = format!(
            "{}.{}.",
            engine.config.protocol.as_str(),
            engine.config.stat_prefix
        );
        let discovery_cfg = match json_field(&value, "routeDiscovery", "route_discovery") {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<meltemi_proto::RouteDiscovery>(v.clone())
                    .map_err(ConfigError::Json)?,
            ),
        };
        // Defined before the counters' closure borrows the registry.
        let rds_version = match &discovery_cfg {
            None => None,
            Some(_) => {
                let full = format!("{prefix}rds.version");
                Some(reg.define_gauge(&full).ok_or(ConfigError::Metric(full))?)
            }
        };
        let mut counter = |name: &str| {
            let full = format!("{prefix}{name}");
            reg.define_counter(&full).ok_or(ConfigError::Metric(full))
        };
        let metrics = Metrics {
            panics: match handles.get(engine.metrics.core.panic.0 as usize) {
                Some(Handle::Counter(c)) => *c,
                _ => return Err(ConfigError::Metric("panic".into())),
            },
            callouts_ok: counter("callouts_ok")?,
            callouts_failed: counter("callouts_failed")?,
        };
        let mut routing = None;
        let mut discovery = None;
        if let (Some(raw), Some(proto)) = (
            &engine.config.routing,
            RpcProtocol::of(engine.config.protocol),
        ) {
            let table = RouteTable::compile(raw).map_err(|e| {
                ConfigError::Engine(meltemi_engine::ConfigError {
                    field: e.field,
                    message: e.message,
                })
            })?;
            let version = json_field(&value, "routes", "routes")
                .and_then(|r| r.get("version"))
                .and_then(|v| match v {
                    serde_json::Value::String(s) => s.parse().ok(),
                    v => v.as_u64(),
                })
                .unwrap_or(0);
            // Route discovery: the newest table this process already holds for the same source
            // (a listener update re-creates the config) defines stats too and is used at once.
            let known = discovery_cfg.as_ref().and_then(|d| {
                rds::newest_known(&d.cluster, &d.path, table.primary(), proto)
                    .filter(|k| k.version > version)
            });
            let mut tables = vec![&table];
            tables.extend(known.as_ref().map(|k| &k.table));
            let book = StatBook::define(&tables, discovery_cfg.is_some(), &mut counter)?;
            let initial = Arc::new(match &known {
                Some(k) => book.routing(proto, k.table.clone(), k.version),
                None => book.routing(proto, table, version),
            });
            if let (Some(d), Some(version)) = (discovery_cfg, rds_version) {
                let rds = RdsMetrics {
                    update_success: counter("rds.update_success")?,
                    update_rejected: counter("rds.update_rejected")?,
                    poll_failed: counter("rds.poll_failed")?,
                    version,
                };
                discovery = Some(Arc::new(Discovery::new(
                    &d,
                    &engine.config.stat_prefix,
                    Arc::clone(&initial),
                    book,
                    rds,
                )));
            }
            routing = Some(initial);
        } else if discovery_cfg.is_some() {
            return Err(ConfigError::Invalid(
                "routeDiscovery needs dubbo or thrift routes (an initial table, version 0 is fine)",
            ));
        }
        let shards = match &engine.config.redis {
            Some(r) => r
                .clusters()
                .iter()
                .map(|(name, addr)| crate::shards::Shard::new(name, addr))
                .collect(),
            None => Vec::new(),
        };
        Ok(Config {
            engine,
            probe,
            handles,
            metrics,
            routing,
            discovery,
            shards,
        })
    }

    /// The host handle of an engine metric.
    #[inline]
    pub fn handle(&self, id: MetricId) -> Option<Handle> {
        self.handles.get(id.0 as usize).copied()
    }
}

/// `value[camel]` or `value[snake]`.
fn json_field<'a>(
    value: &'a serde_json::Value,
    camel: &str,
    snake: &str,
) -> Option<&'a serde_json::Value> {
    value.get(camel).or_else(|| value.get(snake))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeRegistry;
    use meltemi_engine::Protocol;

    #[test]
    fn minimal_redis_config_defines_the_engine_metrics() {
        let mut reg = FakeRegistry::default();
        let c = Config::parse(br#"{"protocol":"redis","stat_prefix":"c"}"#, &mut reg).unwrap();
        assert_eq!(c.engine.config.protocol, Protocol::Redis);
        assert!(c.probe.is_none());
        assert!(reg.counters.contains(&"redis.c.panic".to_owned()));
        assert!(reg
            .counters
            .contains(&"redis.c.command.get.total".to_owned()));
        assert!(reg.gauges.contains(&"redis.c.cx_active".to_owned()));
        assert!(reg
            .histograms
            .contains(&"redis.c.command.get.latency_us".to_owned()));
    }

    #[test]
    fn probe_defaults() {
        let mut reg = FakeRegistry::default();
        let c = Config::parse(
            br#"{"protocol":"redis","probe":{"on":"X","cluster":"b"}}"#,
            &mut reg,
        )
        .unwrap();
        let p = c.probe.unwrap();
        assert_eq!(p.body, b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(p.timeout_ms, 1000);
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let mut reg = FakeRegistry::default();
        for (json, needle) in [
            (&b"not json"[..], "invalid JSON"),
            (br#"{"protocol":"smtp"}"#, "unknown protocol \"smtp\""),
            (br#"{"protocol":"redis","typo":1}"#, "unknown field `typo`"),
            (br#"{}"#, "missing field `protocol`"),
            (br#"{"protocol":"redis","panic_on":""}"#, "panic_on"),
            (
                br#"{"protocol":"redis","probe":{"on":"","cluster":"b"}}"#,
                "probe.on",
            ),
        ] {
            let e = Config::parse(json, &mut reg).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let mut refusing = FakeRegistry {
            refuse: true,
            ..Default::default()
        };
        let e = Config::parse(br#"{"protocol":"tcp"}"#, &mut refusing).unwrap_err();
        assert!(e.to_string().contains("cx_total"), "{e}");
    }
}
