//! The compiled, immutable filter configuration.
//!
//! Adapters hand the raw configuration string to [`FilterConfig::parse`]; it is validated once
//! and refused with a message naming the field, never a panic.

use std::fmt;

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Redis RESP2/RESP3.
    Redis,
    /// Dubbo 2.
    Dubbo,
    /// Apache Thrift.
    Thrift,
    /// Apache Kafka.
    Kafka,
    /// Apache ZooKeeper.
    ZooKeeper,
    /// Bytes only: no decoding (counts bytes and connections).
    Raw,
}

impl Protocol {
    /// The lower-case name used in configuration and stat names.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Redis => "redis",
            Protocol::Dubbo => "dubbo",
            Protocol::Thrift => "thrift",
            Protocol::Kafka => "kafka",
            Protocol::ZooKeeper => "zookeeper",
            Protocol::Raw => "raw",
        }
    }

    /// Parses a configured protocol name.
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "redis" => Protocol::Redis,
            "dubbo" => Protocol::Dubbo,
            "thrift" => Protocol::Thrift,
            "kafka" => Protocol::Kafka,
            "zookeeper" => Protocol::ZooKeeper,
            "raw" | "tcp" => Protocol::Raw,
            _ => return None,
        })
    }
}

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
    /// Dubbo/Thrift methods that get their own stats (`method` or `service:method`); every other
    /// method counts under `other`, so stat cardinality stays what the operator configured.
    pub methods: Vec<String>,
    /// Per-request routing (Dubbo and Thrift), validated; compile it with
    /// [`crate::route::RouteTable::compile`].
    pub routing: Option<crate::route::RawRouting>,
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
            methods: Vec::new(),
            routing: None,
        }
    }

    /// Parses and validates the JSON configuration an adapter receives from its host, for
    /// example `{"protocol": "redis", "stat_prefix": "cache"}`. Unknown fields are refused so a
    /// typo does not silently change behaviour.
    pub fn from_json(text: &str) -> Result<FilterConfig, ConfigError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "snake_case")]
        struct Raw {
            protocol: String,
            #[serde(default, alias = "statPrefix")]
            stat_prefix: Option<String>,
            #[serde(default, alias = "panicOn")]
            panic_on: Option<String>,
            #[serde(default, alias = "onDecodeError")]
            on_decode_error: Option<String>,
            #[serde(default, alias = "maxFrameBytes")]
            max_frame_bytes: Option<u64>,
            #[serde(default)]
            methods: Vec<String>,
            #[serde(default)]
            routing: Option<crate::route::RawRouting>,
        }
        let raw: Raw = serde_json::from_str(text).map_err(|e| ConfigError {
            field: "(json)".into(),
            message: e.to_string(),
        })?;
        let protocol = Protocol::parse(&raw.protocol).ok_or_else(|| ConfigError {
            field: "protocol".into(),
            message: format!(
                "unknown protocol {:?}; expected one of redis, dubbo, thrift, kafka, zookeeper, raw",
                raw.protocol
            ),
        })?;
        let on_decode_error = match raw.on_decode_error.as_deref() {
            None | Some("close") => OnDecodeError::Close,
            Some("passthrough") => OnDecodeError::Passthrough,
            Some(other) => {
                return Err(ConfigError {
                    field: "on_decode_error".into(),
                    message: format!("{other:?} is not one of close, passthrough"),
                })
            }
        };
        let cfg = FilterConfig {
            protocol,
            stat_prefix: raw.stat_prefix.unwrap_or_else(|| "default".into()),
            panic_on: raw.panic_on.map(String::into_bytes),
            on_decode_error,
            max_frame_bytes: match raw.max_frame_bytes {
                None => DEFAULT_MAX_FRAME,
                Some(n) if (16..=1 << 30).contains(&n) => n as usize,
                Some(n) => {
                    return Err(ConfigError {
                        field: "max_frame_bytes".into(),
                        message: format!("{n} is outside 16..=1073741824"),
                    })
                }
            },
            methods: raw.methods,
            routing: raw.routing,
        };
        cfg.validate()?;
        Ok(cfg)
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
            crate::route::RouteTable::compile(r).map_err(|e| ConfigError {
                field: e.field,
                message: e.message,
            })?;
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
