//! The network filter's configuration: JSON carried in `filter_config` (a
//! `google.protobuf.StringValue`, which Envoy hands to the module without the wrapper).
//!
//! ```json
//! {"protocol": "redis"}
//! ```
//!
//! Test-only fields (documented, off unless set):
//! - `"panic_on": "MELTEMI-PANIC"`: a connection whose client bytes contain the marker makes the
//!   filter panic inside the hook; proves panic containment (the connection is closed, counted
//!   in `panics`, Envoy and other connections carry on).
//! - `"probe": {"on": "MELTEMI-PROBE", "cluster": "meltemi_bridge", "body": "*1\r\n$4\r\nPING\r\n",
//!   "timeout_ms": 1000}`: a client read containing the marker is drained from the stream (it
//!   never reaches the upstream), `body` is sent by HTTP callout to `cluster` (whose upstream is
//!   this module's HTTP-to-TCP bridge), and the callout's answer is written back to the client.
//!   The first brick of the per-request detour described in the design notes.

use crate::host::{CounterId, HistogramId, MetricsRegistry};
use serde::Deserialize;
use std::fmt;

/// Protocols the filter knows by name. Only Redis has a command counter so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Redis,
    Dubbo,
    Thrift,
    Kafka,
    Zookeeper,
    /// Opaque bytes: count bytes only.
    Tcp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    protocol: Protocol,
    #[serde(default)]
    panic_on: Option<String>,
    #[serde(default)]
    probe: Option<RawProbe>,
}

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

/// Metric handles defined once per config.
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    pub connections: CounterId,
    pub downstream_rx_bytes: CounterId,
    pub upstream_rx_bytes: CounterId,
    pub commands: CounterId,
    pub protocol_errors: CounterId,
    pub panics: CounterId,
    pub callouts_ok: CounterId,
    pub callouts_failed: CounterId,
    pub downstream_read_bytes: HistogramId,
}

/// The compiled, immutable config shared by every connection of a listener.
#[derive(Debug)]
pub struct Config {
    pub protocol: Protocol,
    pub panic_on: Option<Vec<u8>>,
    pub probe: Option<Probe>,
    pub metrics: Metrics,
}

/// Why a config was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// Not valid JSON, or not our schema.
    Json(serde_json::Error),
    /// A field has a value we refuse.
    Invalid(&'static str),
    /// Envoy refused to define a metric.
    Metric(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(e) => write!(f, "invalid JSON config: {e}"),
            ConfigError::Invalid(why) => write!(f, "invalid config: {why}"),
            ConfigError::Metric(name) => write!(f, "could not define metric {name}"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn counter(reg: &mut dyn MetricsRegistry, name: &'static str) -> Result<CounterId, ConfigError> {
    reg.define_counter(name).ok_or(ConfigError::Metric(name))
}

impl Config {
    /// Parses and validates `json`, then defines the metrics. Never panics on bad input.
    pub fn parse(json: &[u8], reg: &mut dyn MetricsRegistry) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(json).map_err(ConfigError::Json)?;
        if raw.panic_on.as_deref() == Some("") {
            return Err(ConfigError::Invalid("panic_on must not be empty"));
        }
        let probe = match raw.probe {
            None => None,
            Some(p) => {
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
        let metrics = Metrics {
            connections: counter(reg, "connections")?,
            downstream_rx_bytes: counter(reg, "downstream_rx_bytes")?,
            upstream_rx_bytes: counter(reg, "upstream_rx_bytes")?,
            commands: counter(reg, "commands")?,
            protocol_errors: counter(reg, "protocol_errors")?,
            panics: counter(reg, "panics")?,
            callouts_ok: counter(reg, "callouts_ok")?,
            callouts_failed: counter(reg, "callouts_failed")?,
            downstream_read_bytes: reg
                .define_histogram("downstream_read_bytes")
                .ok_or(ConfigError::Metric("downstream_read_bytes"))?,
        };
        Ok(Config {
            protocol: raw.protocol,
            panic_on: raw.panic_on.map(String::into_bytes),
            probe,
            metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeRegistry;

    #[test]
    fn minimal_redis_config() {
        let mut reg = FakeRegistry::default();
        let c = Config::parse(br#"{"protocol":"redis"}"#, &mut reg).unwrap();
        assert_eq!(c.protocol, Protocol::Redis);
        assert!(c.panic_on.is_none() && c.probe.is_none());
        assert!(reg.counters.contains(&"panics".to_owned()));
        assert_eq!(reg.histograms, ["downstream_read_bytes"]);
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
            (br#"{"protocol":"smtp"}"#, "unknown variant"),
            (br#"{"protocol":"redis","typo":1}"#, "unknown field"),
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
        assert!(e.to_string().contains("connections"));
    }
}
