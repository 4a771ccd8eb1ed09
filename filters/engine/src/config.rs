//! The compiled, immutable filter configuration.
//!
//! Adapters hand the raw configuration string to [`FilterConfig::parse`]; it is validated once
//! and refused with a message naming the field, never a panic.

use crate::metrics::{istio, LabelSet, Spec};
pub use crate::protocol::Protocol;
use crate::route::{self, RawRouting};
use std::fmt;

/// A configuration the engine refused, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field path, for example `protocol`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid meltemi config: {}: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Default largest frame: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// Default most bytes held per connection and direction for a frame being decoded: 64 KiB
/// (Envoy's own read size is 16 KiB; every field metrics use sits in a frame's first bytes).
pub const DEFAULT_MAX_HELD: usize = 64 << 10;

/// Default most bytes held across the connections of one worker: 64 MiB (500 connections each
/// holding a whole default-size head in both directions).
pub const DEFAULT_WORKER_HELD_BUDGET: usize = 64 << 20;

/// What to do with a connection whose bytes break the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDecodeError {
    /// Count it, log once, close the connection (default).
    #[default]
    Close,
    /// Count it, log once, stop decoding and pass the bytes through untouched.
    Passthrough,
}

/// The filter configuration after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// The protocol on this listener.
    pub protocol: Protocol,
    /// The second part of every stat name (`<protocol>.<stat_prefix>.<stat>`).
    pub stat_prefix: String,
    /// Test-only fault injection: when the client's bytes contain this marker, the session
    /// panics. Used by the adapters' tests to prove panic containment; never set in production.
    pub panic_on: Option<Vec<u8>>,
    /// Decode errors close the connection or switch it to pass-through.
    pub on_decode_error: OnDecodeError,
    /// Largest frame accepted (bytes); bigger ones are decode errors.
    pub max_frame_bytes: usize,
    /// Most bytes held per connection and direction for a frame being decoded; a bigger frame
    /// is decoded from its head and the rest passes by uncopied.
    pub max_held_bytes: usize,
    /// Most bytes the adapter lets one worker hold across its connections.
    pub worker_held_budget: usize,
    /// Dubbo/Thrift/TARS methods that get their own stats (`method` or `service:method`); every other
    /// method counts under `other`, so stat cardinality stays what the operator configured.
    pub methods: Vec<String>,
    /// One log line per request/response pair.
    pub access_log: bool,
    /// Per-request routing (Dubbo and Thrift), validated; compile it with
    /// [`crate::route::RouteTable::compile`].
    pub routing: Option<RawRouting>,
    /// Istio-style request metrics and their fixed labels (only when enabled).
    pub istio: Option<meltemi_proto::IstioMetrics>,
    /// Redis key-prefix routing (the schema's `redis`), compiled.
    pub redis: Option<crate::redis_route::RedisRouter>,
}

impl FilterConfig {
    /// A configuration for `protocol` with stat prefix `stat_prefix`.
    pub fn new(protocol: Protocol, stat_prefix: &str) -> Self {
        FilterConfig {
            protocol,
            stat_prefix: stat_prefix.to_string(),
            panic_on: None,
            on_decode_error: OnDecodeError::Close,
            max_frame_bytes: DEFAULT_MAX_FRAME,
            max_held_bytes: DEFAULT_MAX_HELD,
            worker_held_budget: DEFAULT_WORKER_HELD_BUDGET,
            methods: Vec::new(),
            access_log: false,
            routing: None,
            istio: None,
            redis: None,
        }
    }

    /// Parses and validates the JSON configuration an adapter receives from its host: the
    /// `meltemi-proto` schema (`docs/config.md`; camelCase or snake_case), for example
    /// `{"protocol": "redis", "statPrefix": "cache"}`. Besides the schema, two fields are the
    /// engine's own: the test-only `panic_on`, and `routing`, the engine's route table written
    /// directly (`docs/routing.md`; the schema's `routes` compile into the same table). Unknown
    /// fields are refused so a typo does not silently change behaviour.
    pub fn from_json(text: &str) -> Result<FilterConfig, ConfigError> {
        let err = |field: &str, message: String| ConfigError {
            field: field.into(),
            message,
        };
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err("(json)", e.to_string()))?;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| err("(json)", "the configuration must be a JSON object".into()))?;
        let panic_on = match obj.remove("panic_on").or_else(|| obj.remove("panicOn")) {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.into_bytes()),
            Some(_) => return Err(err("panic_on", "must be a string".into())),
        };
        let routing: Option<RawRouting> = match obj.remove("routing") {
            None => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|e| err("routing", e.to_string()))?),
        };
        // The protocol first, for a message that names it (the schema's is serde's).
        let protocol = match obj.get("protocol") {
            None => return Err(err("protocol", "missing field `protocol`".into())),
            Some(serde_json::Value::String(p)) => Protocol::parse(p).ok_or_else(|| {
                err(
                    "protocol",
                    format!(
                        "unknown protocol {p:?}; expected one of redis, dubbo, thrift, kafka, zookeeper, tars, mysql, postgres, tcp"
                    ),
                )
            })?,
            Some(_) => return Err(err("protocol", "must be a string".into())),
        };
        if protocol == Protocol::Raw {
            obj.insert("protocol".into(), "tcp".into());
        }
        if !obj.contains_key("statPrefix") && !obj.contains_key("stat_prefix") {
            obj.insert("statPrefix".into(), "default".into());
        }
        let pb = meltemi_proto::Config::from_json(&value.to_string())
            .map_err(|e| err("(json)", e.to_string()))?;
        if let Err(errs) = meltemi_proto::validate(&pb) {
            let first = &errs[0];
            return Err(err(
                &first.path,
                errs.iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let on_decode_error = match meltemi_proto::OnDecodeError::try_from(pb.on_decode_error) {
            Ok(meltemi_proto::OnDecodeError::Passthrough) => OnDecodeError::Passthrough,
            _ => OnDecodeError::Close,
        };
        let routing = match (routing, pb.routes) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "routing",
                    "give either `routes` (the schema) or `routing`, not both".into(),
                ))
            }
            (Some(r), None) => Some(r),
            (None, Some(t)) => Some(route::from_proto(&t).map_err(|e| ConfigError {
                field: e.field,
                message: e.message,
            })?),
            (None, None) => None,
        };
        let cfg = FilterConfig {
            protocol,
            stat_prefix: if pb.stat_prefix.is_empty() {
                "default".into()
            } else {
                pb.stat_prefix
            },
            panic_on,
            on_decode_error,
            max_frame_bytes: match pb.max_frame_bytes {
                0 => DEFAULT_MAX_FRAME,
                n if n >= 16 => n as usize,
                n => return Err(err("max_frame_bytes", format!("{n} is below 16"))),
            },
            max_held_bytes: match pb.max_held_bytes {
                0 => DEFAULT_MAX_HELD,
                n if n >= 64 => n as usize,
                n => return Err(err("max_held_bytes", format!("{n} is below 64"))),
            },
            worker_held_budget: match pb.worker_held_budget_bytes {
                0 => DEFAULT_WORKER_HELD_BUDGET,
                n => n as usize,
            },
            methods: pb.methods,
            access_log: pb.access_log,
            routing,
            istio: pb.istio_metrics.filter(|m| m.enabled),
            redis: match &pb.redis {
                None => None,
                Some(r) => Some(
                    crate::redis_route::RedisRouter::compile(r).map_err(|e| err("redis", e.0))?,
                ),
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The closed label set of this listener's per-label stats (its protocol's, with the
    /// configured methods for Dubbo and Thrift).
    pub(crate) fn labels(&self) -> LabelSet {
        crate::protocols::labels(self.protocol, &self.methods)
    }

    /// What the metric table takes from this configuration.
    pub(crate) fn metric_spec(&self) -> Spec<'_> {
        Spec {
            protocol: self.protocol,
            stat_prefix: &self.stat_prefix,
            access_log: self.access_log,
            istio: self.istio.as_ref(),
        }
    }

    /// Checks the invariants every adapter relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ok = !self.stat_prefix.is_empty()
            && self
                .stat_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(ConfigError {
                field: "stat_prefix".into(),
                message: format!(
                    "{:?} must be non-empty and use only [A-Za-z0-9_-] (it becomes part of stat names)",
                    self.stat_prefix
                ),
            });
        }
        for (i, m) in self.methods.iter().enumerate() {
            if m.is_empty() || m.len() > 200 || m.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(ConfigError {
                    field: format!("methods[{i}]"),
                    message: format!("{m:?} must be 1..=200 characters without spaces"),
                });
            }
        }
        if self.methods.len() > 1000 {
            return Err(ConfigError {
                field: "methods".into(),
                message: "at most 1000 methods get their own stats".into(),
            });
        }
        if let Some(r) = &self.routing {
            if !matches!(self.protocol, Protocol::Dubbo | Protocol::Thrift) {
                return Err(ConfigError {
                    field: "routing".into(),
                    message: format!(
                        "per-request routing is for dubbo and thrift, not {}",
                        self.protocol.as_str()
                    ),
                });
            }
            route::RouteTable::compile(r).map_err(|e| ConfigError {
                field: e.field,
                message: e.message,
            })?;
        }
        if let Some(m) = &self.istio {
            let labels = self.labels();
            let n = istio::combinations(m, labels.names.len(), labels.reply_codes.len());
            if n > istio::MAX_COMBINATIONS {
                return Err(ConfigError {
                    field: "istioMetrics.requestMethod".into(),
                    message: format!(
                        "{n} (method, response code) pairs, above {}: configure fewer methods or turn requestMethod off",
                        istio::MAX_COMBINATIONS
                    ),
                });
            }
        }
        if matches!(&self.panic_on, Some(m) if m.is_empty()) {
            return Err(ConfigError {
                field: "panic_on".into(),
                message: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_config_parses_and_refuses_with_field_paths() {
        let c = FilterConfig::from_json(r#"{"protocol":"redis","stat_prefix":"cache"}"#).unwrap();
        assert_eq!(c.protocol, Protocol::Redis);
        assert_eq!(c.stat_prefix, "cache");
        let e = FilterConfig::from_json(r#"{"protocol":"http"}"#).unwrap_err();
        assert_eq!(e.field, "protocol");
        assert!(e.message.contains("\"http\""), "{e}");
        let e = FilterConfig::from_json(r#"{"protocol":"redis","statprefix":"x"}"#).unwrap_err();
        assert!(e.message.contains("unknown field `statprefix`"), "{e}");
        let e = FilterConfig::from_json("{").unwrap_err();
        assert_eq!(e.field, "(json)");
    }
}
