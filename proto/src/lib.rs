//! The Meltemi filter configuration: the one schema written by the controller and read by both
//! data-plane artifacts (the proxy-wasm filter and the Envoy dynamic module).
//!
//! The schema is `meltemi/config/v1/config.proto` (kept beside this crate as the reference and
//! documentation). The Rust types here are hand-written `prost` messages rather than `prost-build`
//! output: no `protoc` exists on the build machines and a pure-Rust `.proto` compiler in `build.rs`
//! would be compiled by every filter build. `tests/schema_agrees.rs` compiles the `.proto` with
//! `protox` and proves both agree (field numbers, wire types, proto3 JSON names).
//!
//! Two encodings are supported:
//! - JSON, as the proto3 JSON mapping writes it (lowerCamelCase names, enums as their value name,
//!   `uint64` as a string); snake_case field names, upper-case enum names and `uint64` numbers are
//!   accepted too. Unknown fields are refused, so a typo never passes silently.
//! - binary protobuf (`prost::Message::encode`/`decode`).
//!
//! [`validate`] checks everything that does not need a regex engine and reports each problem with
//! its field path; [`validate_with`] also runs a caller-supplied regex syntax check (the controller
//! and the engine each own one; this crate stays `prost` + `serde` only and builds for
//! `wasm32-wasip1`).
//!
//! What this crate does not do: compile routes into a matcher, evaluate them, or know about Envoy.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Package of the schema, as in the `.proto`.
pub const PACKAGE: &str = "meltemi.config.v1";

/// The schema source, for documentation and tests.
pub const PROTO_SOURCE: &str = include_str!("../meltemi/config/v1/config.proto");

/// Configuration of one filter instance: one protocol on one listener (service port).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    /// Protocol spoken on the connection ([`Protocol`]). Required.
    #[prost(enumeration = "Protocol", tag = "1")]
    #[serde(with = "protocol_json")]
    pub protocol: i32,
    /// Prefix of the filter's own metric names. Required; `[A-Za-z0-9_.-]`.
    #[prost(string, tag = "2")]
    #[serde(alias = "stat_prefix", skip_serializing_if = "String::is_empty")]
    pub stat_prefix: String,
    /// One access log line per request/response pair.
    #[prost(bool, tag = "3")]
    #[serde(alias = "access_log", skip_serializing_if = "is_false")]
    pub access_log: bool,
    /// [`OnDecodeError`].
    #[prost(enumeration = "OnDecodeError", tag = "4")]
    #[serde(
        alias = "on_decode_error",
        with = "on_decode_error_json",
        skip_serializing_if = "is_zero_i32"
    )]
    pub on_decode_error: i32,
    /// Largest frame accepted; 0 = the codec's default.
    #[prost(uint32, tag = "5")]
    #[serde(alias = "max_frame_bytes", skip_serializing_if = "is_zero_u32")]
    pub max_frame_bytes: u32,
    /// Per-request routing (Dubbo and Thrift, dynamic module only). Absent: observe only.
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteTable>,
    /// Where newer route tables are fetched from without a listener update.
    #[prost(message, optional, tag = "7")]
    #[serde(alias = "route_discovery", skip_serializing_if = "Option::is_none")]
    pub route_discovery: Option<RouteDiscovery>,
    /// Dubbo/Thrift methods (`method` or `service:method`) that get their own stats; the others
    /// count under `other`, so stat cardinality stays what the operator configured.
    #[prost(string, repeated, tag = "8")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Istio-style request metrics ([`IstioMetrics`]). Absent or disabled: none.
    #[prost(message, optional, tag = "9")]
    #[serde(alias = "istio_metrics", skip_serializing_if = "Option::is_none")]
    pub istio_metrics: Option<IstioMetrics>,
    /// Most bytes held per connection and direction for a frame being decoded; 0 = 64 KiB. A
    /// bigger frame is decoded from its first bytes and the rest passes through uncopied.
    #[prost(uint32, tag = "10")]
    #[serde(alias = "max_held_bytes", skip_serializing_if = "is_zero_u32")]
    pub max_held_bytes: u32,
    /// Most bytes held across all connections of one worker; 0 = 64 MiB. A connection that
    /// would go past it is closed and counted (`cx_buffer_overflow`).
    #[prost(uint32, tag = "11")]
    #[serde(
        alias = "worker_held_budget_bytes",
        skip_serializing_if = "is_zero_u32"
    )]
    pub worker_held_budget_bytes: u32,
    /// Redis key-prefix routing ([`RedisRouting`]; dynamic module only). Absent: observe only.
    #[prost(message, optional, tag = "12")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisRouting>,
}

/// Redis routing, shaped like Envoy's `redis_proxy` `prefix_routes` (`docs/redis.md`).
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RedisRouting {
    /// Key-prefix routes; the longest matching prefix wins (ties: the first listed).
    #[prost(message, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RedisRoute>,
    /// Prefixes match ignoring ASCII case.
    #[prost(bool, tag = "2")]
    #[serde(alias = "case_insensitive", skip_serializing_if = "is_false")]
    pub case_insensitive: bool,
    /// Keys no prefix matches; absent: those commands get an error reply.
    #[prost(message, optional, tag = "3")]
    #[serde(alias = "catch_all_route", skip_serializing_if = "Option::is_none")]
    pub catch_all_route: Option<RedisRoute>,
    /// The upstreams the routes name (the module opens its own connections to them).
    #[prost(message, repeated, tag = "4")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<RedisUpstream>,
}

/// One Redis key-prefix route.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RedisRoute {
    /// Key prefix (empty only in `catchAllRoute`).
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Name of an entry of [`RedisRouting::clusters`].
    #[prost(string, tag = "2")]
    pub cluster: String,
    /// Send the key without the matched prefix.
    #[prost(bool, tag = "3")]
    #[serde(alias = "remove_prefix", skip_serializing_if = "is_false")]
    pub remove_prefix: bool,
}

/// An upstream Redis server a route sends to.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RedisUpstream {
    /// The name routes use.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `host:port` (one address per cluster in this phase).
    #[prost(string, tag = "2")]
    pub address: String,
}

/// Labels of the Istio-style request metrics (`istio_requests_total`,
/// `istio_request_duration_milliseconds`). Each value is fixed per listener; empty = `"unknown"`.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct IstioMetrics {
    #[prost(bool, tag = "1")]
    #[serde(skip_serializing_if = "is_false")]
    pub enabled: bool,
    /// `"destination"` (default) or `"source"`.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporter: String,
    #[prost(string, tag = "3")]
    #[serde(alias = "source_workload", skip_serializing_if = "String::is_empty")]
    pub source_workload: String,
    #[prost(string, tag = "4")]
    #[serde(
        alias = "source_workload_namespace",
        skip_serializing_if = "String::is_empty"
    )]
    pub source_workload_namespace: String,
    #[prost(string, tag = "5")]
    #[serde(alias = "source_app", skip_serializing_if = "String::is_empty")]
    pub source_app: String,
    #[prost(string, tag = "6")]
    #[serde(alias = "source_version", skip_serializing_if = "String::is_empty")]
    pub source_version: String,
    #[prost(string, tag = "7")]
    #[serde(
        alias = "source_canonical_service",
        skip_serializing_if = "String::is_empty"
    )]
    pub source_canonical_service: String,
    #[prost(string, tag = "8")]
    #[serde(
        alias = "source_canonical_revision",
        skip_serializing_if = "String::is_empty"
    )]
    pub source_canonical_revision: String,
    #[prost(string, tag = "9")]
    #[serde(alias = "source_principal", skip_serializing_if = "String::is_empty")]
    pub source_principal: String,
    #[prost(string, tag = "10")]
    #[serde(
        alias = "destination_workload",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_workload: String,
    #[prost(string, tag = "11")]
    #[serde(
        alias = "destination_workload_namespace",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_workload_namespace: String,
    #[prost(string, tag = "12")]
    #[serde(alias = "destination_app", skip_serializing_if = "String::is_empty")]
    pub destination_app: String,
    #[prost(string, tag = "13")]
    #[serde(
        alias = "destination_version",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_version: String,
    #[prost(string, tag = "14")]
    #[serde(
        alias = "destination_service",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_service: String,
    #[prost(string, tag = "15")]
    #[serde(
        alias = "destination_service_name",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_service_name: String,
    #[prost(string, tag = "16")]
    #[serde(
        alias = "destination_service_namespace",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_service_namespace: String,
    #[prost(string, tag = "17")]
    #[serde(
        alias = "destination_canonical_service",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_canonical_service: String,
    #[prost(string, tag = "18")]
    #[serde(
        alias = "destination_canonical_revision",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_canonical_revision: String,
    #[prost(string, tag = "19")]
    #[serde(
        alias = "destination_principal",
        skip_serializing_if = "String::is_empty"
    )]
    pub destination_principal: String,
    /// `"mutual_tls"`, `"none"` or `"unknown"` (default).
    #[prost(string, tag = "20")]
    #[serde(
        alias = "connection_security_policy",
        skip_serializing_if = "String::is_empty"
    )]
    pub connection_security_policy: String,
    /// Adds the non-standard `request_method` label (needs `request_method` in Istio's
    /// `extraStatTags`).
    #[prost(bool, tag = "21")]
    #[serde(alias = "request_method", skip_serializing_if = "is_false")]
    pub request_method: bool,
}

impl IstioMetrics {
    /// The configured labels, in Istio's order, with their tag names (values as configured:
    /// empty means `"unknown"`). `reporter`, `request_protocol`, `response_code` and
    /// `response_flags` are not here: the filter sets them.
    pub fn labels(&self) -> [(&'static str, &str); 18] {
        [
            ("source_workload", &self.source_workload),
            ("source_workload_namespace", &self.source_workload_namespace),
            ("source_principal", &self.source_principal),
            ("source_app", &self.source_app),
            ("source_version", &self.source_version),
            ("source_canonical_service", &self.source_canonical_service),
            ("source_canonical_revision", &self.source_canonical_revision),
            ("destination_workload", &self.destination_workload),
            (
                "destination_workload_namespace",
                &self.destination_workload_namespace,
            ),
            ("destination_principal", &self.destination_principal),
            ("destination_app", &self.destination_app),
            ("destination_version", &self.destination_version),
            ("destination_service", &self.destination_service),
            ("destination_service_name", &self.destination_service_name),
            (
                "destination_service_namespace",
                &self.destination_service_namespace,
            ),
            (
                "destination_canonical_service",
                &self.destination_canonical_service,
            ),
            (
                "destination_canonical_revision",
                &self.destination_canonical_revision,
            ),
            (
                "connection_security_policy",
                &self.connection_security_policy,
            ),
        ]
    }
}

impl IstioMetrics {
    /// Every tag a filter may put in an Istio stat name: what an Envoy bootstrap needs a
    /// `stats_tags` regex for ([`istio_stats_tag_regex`]), and what Istio's
    /// `meshConfig.defaultConfig.extraStatTags` must list.
    pub fn stat_tags() -> Vec<&'static str> {
        let mut v = vec!["reporter"];
        v.extend(IstioMetrics::default().labels().map(|(t, _)| t));
        v.extend([
            "request_protocol",
            "request_method",
            "response_code",
            "response_flags",
        ]);
        v
    }
}

/// The `stats_config.stats_tags` regex for `tag`, the shape Istio's bootstrap writes for each
/// `extraStatTags` entry: the first group is cut from the stat name, the second is the value.
pub fn istio_stats_tag_regex(tag: &str) -> String {
    format!("({tag}=\\.=(.*?);\\.;)")
}

/// Why `v` cannot be a tag value in Istio's stat-name convention, if it cannot.
pub fn istio_tag_value_problem(v: &str) -> Option<&'static str> {
    if v.len() > 253 {
        return Some("longer than 253 characters");
    }
    if v.bytes()
        .any(|b| b == b';' || b == b'=' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Some(
            "contains ';', '=', a space or a control character (they break tag extraction)",
        );
    }
    // Dots are fine (`destination_service` is an FQDN): the extraction regex is lazy up to the
    // next `;.;`. Istio's unanchored `cache.`/`component.` regexes may match inside a value, but
    // their match always ends inside this tag's `;.;`, so the name stays whole (the series gets
    // one extra label); see docs/config.md.
    None
}

/// Protocol of a listener. JSON: `"dubbo"`, `"thrift"`, ... (upper case accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Protocol {
    Unspecified = 0,
    Dubbo = 1,
    Thrift = 2,
    Kafka = 3,
    Zookeeper = 4,
    Redis = 5,
    /// Opaque TCP: bytes and connections only.
    Tcp = 6,
    Tars = 7,
    /// MySQL/MariaDB (8, 9: leaves 7 to the next protocol added in parallel).
    Mysql = 8,
    /// PostgreSQL v3.
    Postgres = 9,
}

/// What a filter does with bytes that do not frame as the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum OnDecodeError {
    /// Default: close.
    Unspecified = 0,
    /// Close the connection and count the error.
    Close = 1,
    /// Stop decoding this connection and pass its bytes through untouched.
    Passthrough = 2,
}

/// A versioned, complete set of routes for one listener.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RouteTable {
    /// Monotonic; a filter replaces its table only by a higher version.
    #[prost(uint64, tag = "1")]
    #[serde(with = "u64_json", skip_serializing_if = "is_zero_u64")]
    pub version: u64,
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceRoutes>,
    /// The cluster `tcp_proxy` forwards the connection to: requests routed there take the fast
    /// path; any other destination is reached by callout through its bridge twin
    /// ([`BRIDGE_CLUSTER_PREFIX`] + name). Empty: every routed request takes the detour.
    #[prost(string, tag = "3")]
    #[serde(alias = "primary_cluster", skip_serializing_if = "String::is_empty")]
    pub primary_cluster: String,
    /// Bounds retries across the listener; absent: 20 % and 3 (Envoy's defaults).
    #[prost(message, optional, tag = "4")]
    #[serde(alias = "retry_budget", skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// A retry starts only while the retries in flight stay under
/// max(`min_retry_concurrency`, `budget_percent` % of the detours in flight).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RetryBudget {
    /// 0..=100; unset: 20 (Envoy's default).
    #[prost(double, optional, tag = "1")]
    #[serde(alias = "budget_percent", skip_serializing_if = "Option::is_none")]
    pub budget_percent: Option<f64>,
    /// Unset: 3 (Envoy's default).
    #[prost(uint32, optional, tag = "2")]
    #[serde(
        alias = "min_retry_concurrency",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_retry_concurrency: Option<u32>,
}

/// The prefix of the bridge twin of a cluster: a detoured request to cluster `c` is sent by
/// callout to `meltemi-bridge|c`, whose upstream is the module's HTTP-to-TCP bridge.
pub const BRIDGE_CLUSTER_PREFIX: &str = "meltemi-bridge|";

/// Routes of one RPC service (Dubbo interface, Thrift service) or `"*"` for any.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ServiceRoutes {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Ordered; first match decides. No match: the connection's primary cluster.
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// One bucket shared by every request of the service whose route has no limit of its own.
    #[prost(message, optional, tag = "3")]
    #[serde(alias = "rate_limit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<LocalRateLimit>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Route {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Absent: matches every request.
    #[prost(message, optional, tag = "2")]
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<RouteMatch>,
    #[prost(message, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<RouteAction>,
    #[prost(message, optional, tag = "4")]
    #[serde(alias = "rate_limit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<LocalRateLimit>,
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// 0 = none.
    #[prost(uint32, tag = "6")]
    #[serde(alias = "timeout_ms", skip_serializing_if = "is_zero_u32")]
    pub timeout_ms: u32,
    #[prost(message, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

/// All given conditions must hold.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RouteMatch {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Dubbo attachments (and `version`/`group`), Thrift THeader headers. Missing never matches.
    #[prost(btree_map = "string, message", tag = "2")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, StringMatch>,
}

/// JSON: exactly one of `{"exact": s}`, `{"prefix": s}`, `{"regex": s}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringMatch {
    #[prost(oneof = "string_match::Kind", tags = "1, 2, 3")]
    pub kind: Option<string_match::Kind>,
}

pub mod string_match {
    /// The oneof of [`super::StringMatch`].
    #[derive(Clone, PartialEq, Eq, prost::Oneof)]
    pub enum Kind {
        #[prost(string, tag = "1")]
        Exact(String),
        #[prost(string, tag = "2")]
        Prefix(String),
        /// RE2 syntax, whole-string match.
        #[prost(string, tag = "3")]
        Regex(String),
    }
}

impl StringMatch {
    pub fn exact(s: impl Into<String>) -> Self {
        Self {
            kind: Some(string_match::Kind::Exact(s.into())),
        }
    }
    pub fn prefix(s: impl Into<String>) -> Self {
        Self {
            kind: Some(string_match::Kind::Prefix(s.into())),
        }
    }
    pub fn regex(s: impl Into<String>) -> Self {
        Self {
            kind: Some(string_match::Kind::Regex(s.into())),
        }
    }
}

impl Serialize for StringMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        use string_match::Kind;
        let mut m = s.serialize_map(Some(usize::from(self.kind.is_some())))?;
        match &self.kind {
            Some(Kind::Exact(v)) => m.serialize_entry("exact", v)?,
            Some(Kind::Prefix(v)) => m.serialize_entry("prefix", v)?,
            Some(Kind::Regex(v)) => m.serialize_entry("regex", v)?,
            None => {}
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        use string_match::Kind;
        let map = BTreeMap::<String, String>::deserialize(d)?;
        let mut kind = None;
        for (k, v) in map {
            if kind.is_some() {
                return Err(D::Error::custom(
                    "string match takes exactly one of exact, prefix, regex",
                ));
            }
            kind = Some(match k.as_str() {
                "exact" => Kind::Exact(v),
                "prefix" => Kind::Prefix(v),
                "regex" => Kind::Regex(v),
                other => {
                    return Err(D::Error::unknown_field(
                        other,
                        &["exact", "prefix", "regex"],
                    ));
                }
            });
        }
        Ok(Self { kind })
    }
}

/// Exactly one of `cluster` and `weighted_clusters`.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RouteAction {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Relative weights, decided per request.
    #[prost(message, repeated, tag = "2")]
    #[serde(alias = "weighted_clusters", skip_serializing_if = "Vec::is_empty")]
    pub weighted_clusters: Vec<WeightedCluster>,
}

impl RouteAction {
    pub fn cluster(c: impl Into<String>) -> Self {
        Self {
            cluster: c.into(),
            weighted_clusters: Vec::new(),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct WeightedCluster {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub weight: u32,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LocalRateLimit {
    /// Bucket for requests that match no condition. Absent: only the conditions limit.
    #[prost(message, optional, tag = "1")]
    #[serde(alias = "token_bucket", skip_serializing_if = "Option::is_none")]
    pub token_bucket: Option<TokenBucket>,
    /// First matching condition wins.
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RateLimitCondition>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RateLimitCondition {
    #[prost(message, optional, tag = "1")]
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<RouteMatch>,
    #[prost(message, optional, tag = "2")]
    #[serde(alias = "token_bucket", skip_serializing_if = "Option::is_none")]
    pub token_bucket: Option<TokenBucket>,
}

/// Starts full; gains `tokens_per_fill` (0 = 1) every `fill_interval_ms`, capped at `max_tokens`.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TokenBucket {
    #[prost(uint32, tag = "1")]
    #[serde(alias = "max_tokens", skip_serializing_if = "is_zero_u32")]
    pub max_tokens: u32,
    #[prost(uint32, tag = "2")]
    #[serde(alias = "tokens_per_fill", skip_serializing_if = "is_zero_u32")]
    pub tokens_per_fill: u32,
    #[prost(uint32, tag = "3")]
    #[serde(alias = "fill_interval_ms", skip_serializing_if = "is_zero_u32")]
    pub fill_interval_ms: u32,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Mirror {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// 0..=100; 0 mirrors nothing.
    #[prost(double, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub percent: f64,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Additional attempts after the first, 0..=5.
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub attempts: u32,
    /// Only these methods are retried; empty = none.
    #[prost(string, repeated, tag = "2")]
    #[serde(alias = "idempotent_methods", skip_serializing_if = "Vec::is_empty")]
    pub idempotent_methods: Vec<String>,
}

/// `GET path` on `cluster` every `refresh_interval_ms` answers a [`RouteTable`] as JSON.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RouteDiscovery {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// 0 = [`RouteDiscovery::DEFAULT_REFRESH_MS`].
    #[prost(uint32, tag = "3")]
    #[serde(alias = "refresh_interval_ms", skip_serializing_if = "is_zero_u32")]
    pub refresh_interval_ms: u32,
}

impl RouteDiscovery {
    pub const DEFAULT_REFRESH_MS: u32 = 5000;
}

impl Config {
    /// Parses the JSON form (proto3 JSON mapping; see the crate docs). Does not validate.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// The canonical JSON form (lowerCamelCase, defaults omitted).
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail (string map keys, finite or not floats
        // become null at worst).
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl RouteTable {
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

macro_rules! json_enum {
    ($module:ident, $ty:ident, [$($var:ident => $name:literal),* $(,)?]) => {
        impl $ty {
            /// The value's name in the `.proto` (and in JSON).
            pub fn as_str_name(self) -> &'static str {
                match self { $($ty::$var => $name),* }
            }
            /// Parses a value name, ignoring ASCII case.
            pub fn from_str_name(s: &str) -> Option<Self> {
                $(if s.eq_ignore_ascii_case($name) { return Some($ty::$var); })*
                None
            }
        }

        mod $module {
            use super::$ty;
            use serde::de::{self, Visitor};
            use std::fmt;

            pub fn serialize<S: serde::Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
                match $ty::try_from(*v) {
                    Ok(e) => s.serialize_str(e.as_str_name()),
                    Err(_) => s.serialize_i32(*v),
                }
            }

            pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = i32;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($ty), " name or number"))
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<i32, E> {
                        $ty::from_str_name(s)
                            .map(|e| e as i32)
                            .ok_or_else(|| E::unknown_variant(s, &[$($name),*]))
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<i32, E> {
                        i32::try_from(n).map_err(|_| E::custom("enum number out of range"))
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<i32, E> {
                        i32::try_from(n).map_err(|_| E::custom("enum number out of range"))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

json_enum!(protocol_json, Protocol, [
    Unspecified => "PROTOCOL_UNSPECIFIED",
    Dubbo => "dubbo",
    Thrift => "thrift",
    Kafka => "kafka",
    Zookeeper => "zookeeper",
    Redis => "redis",
    Tcp => "tcp",
    Tars => "tars",
    Mysql => "mysql",
    Postgres => "postgres",
]);

json_enum!(on_decode_error_json, OnDecodeError, [
    Unspecified => "ON_DECODE_ERROR_UNSPECIFIED",
    Close => "close",
    Passthrough => "passthrough",
]);

/// proto3 JSON writes 64-bit integers as strings; numbers are accepted too.
mod u64_json {
    use serde::de::{self, Visitor};
    use std::fmt;

    pub fn serialize<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an unsigned 64-bit integer (number or decimal string)")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
                Ok(n)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
                u64::try_from(n).map_err(|_| E::custom("negative version"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
                s.parse().map_err(|_| E::custom("not a decimal u64"))
            }
        }
        d.deserialize_any(V)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

/// One problem in a [`Config`], with the JSON field path (e.g. `routes.services[0].routes[2].action`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Largest number of retries a route may ask for.
pub const MAX_RETRY_ATTEMPTS: u32 = 5;

/// Checks a config; every problem is reported, with its field path. Regexes are not compiled here
/// (see [`validate_with`]).
pub fn validate(cfg: &Config) -> Result<(), Vec<ConfigError>> {
    validate_with(cfg, &|_| Ok(()))
}

/// [`validate`], plus `check_regex` on every regex (returns the engine's message on failure).
pub fn validate_with(
    cfg: &Config,
    check_regex: &dyn Fn(&str) -> Result<(), String>,
) -> Result<(), Vec<ConfigError>> {
    let mut v = Validator {
        errors: Vec::new(),
        check_regex,
    };
    v.config(cfg);
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

/// Checks a route table on its own (as fetched by route discovery).
pub fn validate_route_table(
    table: &RouteTable,
    check_regex: &dyn Fn(&str) -> Result<(), String>,
) -> Result<(), Vec<ConfigError>> {
    let mut v = Validator {
        errors: Vec::new(),
        check_regex,
    };
    v.route_table("routes", table);
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

struct Validator<'a> {
    errors: Vec<ConfigError>,
    check_regex: &'a dyn Fn(&str) -> Result<(), String>,
}

impl Validator<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn config(&mut self, cfg: &Config) {
        let protocol = match Protocol::try_from(cfg.protocol) {
            Ok(Protocol::Unspecified) => {
                self.err(
                    "protocol",
                    "required (dubbo, thrift, kafka, zookeeper, redis)",
                );
                None
            }
            Ok(p) => Some(p),
            Err(_) => {
                self.err(
                    "protocol",
                    format!("unknown protocol number {}", cfg.protocol),
                );
                None
            }
        };
        if cfg.stat_prefix.is_empty() {
            self.err("statPrefix", "required");
        } else if !cfg
            .stat_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            self.err(
                "statPrefix",
                format!("{:?} may contain only [A-Za-z0-9_.-]", cfg.stat_prefix),
            );
        }
        if OnDecodeError::try_from(cfg.on_decode_error).is_err() {
            self.err(
                "onDecodeError",
                format!("unknown value {}", cfg.on_decode_error),
            );
        }
        if let Some(t) = &cfg.routes {
            if let Some(p) = protocol {
                if !matches!(p, Protocol::Dubbo | Protocol::Thrift) {
                    self.err(
                        "routes",
                        format!(
                            "per-request routing exists for dubbo and thrift, not {}",
                            p.as_str_name()
                        ),
                    );
                }
            }
            self.route_table("routes", t);
        }
        if let Some(m) = &cfg.istio_metrics {
            self.istio_metrics(m);
        }
        if let Some(r) = &cfg.redis {
            if protocol.is_some_and(|p| p != Protocol::Redis) {
                self.err("redis", "key-prefix routing is for protocol redis");
            }
            self.redis(r);
        }
        if let Some(d) = &cfg.route_discovery {
            if cfg.routes.is_none() {
                self.err(
                    "routeDiscovery",
                    "needs an initial routes table (version 0 is fine)",
                );
            }
            if d.cluster.is_empty() {
                self.err("routeDiscovery.cluster", "required");
            }
            if !d.path.starts_with('/') {
                self.err("routeDiscovery.path", "must start with '/'");
            }
        }
    }

    fn redis(&mut self, r: &RedisRouting) {
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in r.clusters.iter().enumerate() {
            if c.name.is_empty() {
                self.err(format!("redis.clusters[{i}].name"), "required");
            } else if !names.insert(c.name.as_str()) {
                self.err(
                    format!("redis.clusters[{i}].name"),
                    format!("{:?} is listed twice", c.name),
                );
            }
            let ok = match c.address.rsplit_once(':') {
                Some((h, p)) => !h.is_empty() && p.parse::<u16>().is_ok(),
                None => false,
            };
            if !ok {
                self.err(
                    format!("redis.clusters[{i}].address"),
                    format!("{:?} must be host:port", c.address),
                );
            }
        }
        let mut prefixes = std::collections::BTreeSet::new();
        let routes = r
            .routes
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("redis.routes[{i}]"), x));
        let all: Vec<(String, &RedisRoute)> = routes
            .chain(
                r.catch_all_route
                    .iter()
                    .map(|x| ("redis.catchAllRoute".to_owned(), x)),
            )
            .collect();
        for (path, route) in all {
            if !names.contains(route.cluster.as_str()) {
                self.err(
                    format!("{path}.cluster"),
                    format!("{:?} is not in redis.clusters", route.cluster),
                );
            }
            if path.starts_with("redis.routes") {
                let key = if r.case_insensitive {
                    route.prefix.to_ascii_lowercase()
                } else {
                    route.prefix.clone()
                };
                if route.prefix.is_empty() {
                    self.err(
                        format!("{path}.prefix"),
                        "required (use catchAllRoute for all keys)",
                    );
                } else if !prefixes.insert(key) {
                    self.err(
                        format!("{path}.prefix"),
                        format!("{:?} is listed twice", route.prefix),
                    );
                }
            } else if !route.prefix.is_empty() || route.remove_prefix {
                self.err(path, "the catch-all route takes only a cluster");
            }
        }
        if r.routes.is_empty() && r.catch_all_route.is_none() {
            self.err("redis", "needs routes or a catchAllRoute");
        }
    }

    fn istio_metrics(&mut self, m: &IstioMetrics) {
        if !matches!(m.reporter.as_str(), "" | "source" | "destination") {
            self.err(
                "istioMetrics.reporter",
                format!("{:?} must be \"source\" or \"destination\"", m.reporter),
            );
        }
        if !matches!(
            m.connection_security_policy.as_str(),
            "" | "unknown" | "none" | "mutual_tls"
        ) {
            self.err(
                "istioMetrics.connectionSecurityPolicy",
                format!(
                    "{:?} must be mutual_tls, none or unknown",
                    m.connection_security_policy
                ),
            );
        }
        for (tag, v) in m.labels() {
            if let Some(why) = istio_tag_value_problem(v) {
                // The JSON name of the field: snake_case to lowerCamelCase.
                let mut camel = String::new();
                let mut up = false;
                for c in tag.chars() {
                    if c == '_' {
                        up = true;
                    } else if up {
                        camel.push(c.to_ascii_uppercase());
                        up = false;
                    } else {
                        camel.push(c);
                    }
                }
                self.err(format!("istioMetrics.{camel}"), format!("{v:?} {why}"));
            }
        }
    }

    fn route_table(&mut self, path: &str, t: &RouteTable) {
        if let Some(p) = t.retry_budget.as_ref().and_then(|b| b.budget_percent) {
            if !(0.0..=100.0).contains(&p) {
                self.err(
                    format!("{path}.retryBudget.budgetPercent"),
                    "must be within 0..=100",
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in t.services.iter().enumerate() {
            let sp = format!("{path}.services[{i}]");
            let key = if s.name.is_empty() {
                "*"
            } else {
                s.name.as_str()
            };
            if !names.insert(key) {
                self.err(
                    format!("{sp}.name"),
                    format!("service {key:?} listed twice"),
                );
            }
            if let Some(rl) = &s.rate_limit {
                self.rate_limit(&format!("{sp}.rateLimit"), rl);
            }
            let mut route_names = std::collections::BTreeSet::new();
            for (j, r) in s.routes.iter().enumerate() {
                let rp = format!("{sp}.routes[{j}]");
                if r.name.is_empty() {
                    self.err(format!("{rp}.name"), "required");
                } else if !route_names.insert(r.name.as_str()) {
                    self.err(
                        format!("{rp}.name"),
                        format!("route {:?} listed twice", r.name),
                    );
                }
                if let Some(m) = &r.r#match {
                    self.route_match(&format!("{rp}.match"), m);
                }
                match &r.action {
                    None => self.err(format!("{rp}.action"), "required"),
                    Some(a) => self.action(&format!("{rp}.action"), a),
                }
                if let Some(rl) = &r.rate_limit {
                    self.rate_limit(&format!("{rp}.rateLimit"), rl);
                }
                if let Some(m) = &r.mirror {
                    if m.cluster.is_empty() {
                        self.err(format!("{rp}.mirror.cluster"), "required");
                    }
                    if !(0.0..=100.0).contains(&m.percent) {
                        self.err(
                            format!("{rp}.mirror.percent"),
                            format!("{} is not in 0..=100", m.percent),
                        );
                    }
                }
                if let Some(rt) = &r.retry {
                    if rt.attempts > MAX_RETRY_ATTEMPTS {
                        self.err(
                            format!("{rp}.retry.attempts"),
                            format!("{} is more than {MAX_RETRY_ATTEMPTS}", rt.attempts),
                        );
                    }
                    if rt.attempts > 0 && rt.idempotent_methods.is_empty() {
                        self.err(
                            format!("{rp}.retry.idempotentMethods"),
                            "retries apply only to listed idempotent methods; list at least one",
                        );
                    }
                    for (k, m) in rt.idempotent_methods.iter().enumerate() {
                        if m.is_empty() {
                            self.err(
                                format!("{rp}.retry.idempotentMethods[{k}]"),
                                "empty method name",
                            );
                        }
                    }
                }
            }
        }
    }

    fn action(&mut self, path: &str, a: &RouteAction) {
        match (a.cluster.is_empty(), a.weighted_clusters.is_empty()) {
            (true, true) => self.err(path, "needs cluster or weightedClusters"),
            (false, false) => self.err(path, "cluster and weightedClusters are exclusive"),
            (false, true) => {}
            (true, false) => {
                let mut total: u64 = 0;
                for (i, w) in a.weighted_clusters.iter().enumerate() {
                    if w.cluster.is_empty() {
                        self.err(format!("{path}.weightedClusters[{i}].cluster"), "required");
                    }
                    total += u64::from(w.weight);
                }
                if total == 0 {
                    self.err(format!("{path}.weightedClusters"), "weights sum to 0");
                }
            }
        }
    }

    fn route_match(&mut self, path: &str, m: &RouteMatch) {
        if let Some(s) = &m.method {
            self.string_match(&format!("{path}.method"), s);
        }
        for (k, s) in &m.attributes {
            if k.is_empty() {
                self.err(format!("{path}.attributes"), "empty attribute name");
            }
            self.string_match(&format!("{path}.attributes[{k:?}]"), s);
        }
    }

    fn string_match(&mut self, path: &str, s: &StringMatch) {
        match &s.kind {
            None => self.err(path, "needs one of exact, prefix, regex"),
            Some(string_match::Kind::Regex(r)) => {
                if let Err(e) = (self.check_regex)(r) {
                    self.err(format!("{path}.regex"), format!("invalid regex {r:?}: {e}"));
                }
            }
            Some(_) => {}
        }
    }

    fn rate_limit(&mut self, lp: &str, rl: &LocalRateLimit) {
        if rl.token_bucket.is_none() && rl.conditions.is_empty() {
            self.err(lp, "needs a tokenBucket or conditions");
        }
        if let Some(b) = &rl.token_bucket {
            self.bucket(&format!("{lp}.tokenBucket"), b);
        }
        for (k, c) in rl.conditions.iter().enumerate() {
            let cp = format!("{lp}.conditions[{k}]");
            match &c.r#match {
                None => self.err(format!("{cp}.match"), "required"),
                Some(m) => self.route_match(&format!("{cp}.match"), m),
            }
            match &c.token_bucket {
                None => self.err(format!("{cp}.tokenBucket"), "required"),
                Some(b) => self.bucket(&format!("{cp}.tokenBucket"), b),
            }
        }
    }

    fn bucket(&mut self, path: &str, b: &TokenBucket) {
        if b.max_tokens == 0 {
            self.err(format!("{path}.maxTokens"), "must be > 0");
        }
        if b.fill_interval_ms == 0 {
            self.err(format!("{path}.fillIntervalMs"), "must be > 0");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn sample() -> Config {
        Config {
            protocol: Protocol::Dubbo as i32,
            stat_prefix: "outbound_20880_demo".into(),
            access_log: true,
            on_decode_error: OnDecodeError::Passthrough as i32,
            max_frame_bytes: 8 << 20,
            max_held_bytes: 0,
            worker_held_budget_bytes: 0,
            redis: None,
            methods: vec!["sayHello".into()],
            routes: Some(RouteTable {
                version: 7,
                primary_cluster: "outbound|20880|v1|demo".into(),
                retry_budget: None,
                services: vec![ServiceRoutes {
                    name: "org.apache.dubbo.samples.basic.api.DemoService".into(),
                    routes: vec![
                        Route {
                            name: "v2-by-header".into(),
                            r#match: Some(RouteMatch {
                                method: Some(StringMatch::prefix("say")),
                                attributes: [("foo".to_string(), StringMatch::exact("bar"))].into(),
                            }),
                            action: Some(RouteAction::cluster("outbound|20880|v2|demo")),
                            timeout_ms: 1500,
                            retry: Some(RetryPolicy {
                                attempts: 2,
                                idempotent_methods: vec!["sayHello".into()],
                            }),
                            ..Default::default()
                        },
                        Route {
                            name: "split".into(),
                            action: Some(RouteAction {
                                cluster: String::new(),
                                weighted_clusters: vec![
                                    WeightedCluster {
                                        cluster: "a".into(),
                                        weight: 90,
                                    },
                                    WeightedCluster {
                                        cluster: "b".into(),
                                        weight: 10,
                                    },
                                ],
                            }),
                            rate_limit: Some(LocalRateLimit {
                                token_bucket: Some(TokenBucket {
                                    max_tokens: 10,
                                    tokens_per_fill: 10,
                                    fill_interval_ms: 60_000,
                                }),
                                conditions: vec![],
                            }),
                            mirror: Some(Mirror {
                                cluster: "m".into(),
                                percent: 12.5,
                            }),
                            ..Default::default()
                        },
                    ],
                    rate_limit: None,
                }],
            }),
            route_discovery: None,
            istio_metrics: None,
        }
    }

    #[test]
    fn json_round_trip_and_binary_round_trip() {
        let c = sample();
        assert_eq!(validate(&c), Ok(()));
        let j = c.to_json();
        assert!(j.contains(r#""protocol":"dubbo""#), "{j}");
        assert!(j.contains(r#""version":"7""#), "{j}");
        assert!(j.contains(r#""method":{"prefix":"say"}"#), "{j}");
        assert_eq!(Config::from_json(&j).unwrap(), c);
        let bytes = c.encode_to_vec();
        assert_eq!(Config::decode(bytes.as_slice()).unwrap(), c);
    }

    #[test]
    fn snake_case_upper_enums_and_numbers_accepted() {
        let j = r#"{"protocol":"REDIS","stat_prefix":"r","access_log":true,"on_decode_error":"PASSTHROUGH","max_frame_bytes":100}"#;
        let c = Config::from_json(j).unwrap();
        assert_eq!(c.protocol(), Protocol::Redis);
        assert_eq!(c.on_decode_error, OnDecodeError::Passthrough as i32);
        let t = RouteTable::from_json(r#"{"version":42}"#).unwrap();
        assert_eq!(t.version, 42);
    }

    #[test]
    fn unknown_fields_and_double_string_match_refused() {
        assert!(Config::from_json(r#"{"protocol":"redis","statPrefx":"x"}"#).is_err());
        assert!(Config::from_json(r#"{"protocol":"nope"}"#).is_err());
        assert!(serde_json::from_str::<StringMatch>(r#"{"exact":"a","prefix":"b"}"#).is_err());
    }

    #[test]
    fn every_problem_reported_with_its_path() {
        let mut c = sample();
        c.stat_prefix = "bad prefix".into();
        let t = c.routes.as_mut().unwrap();
        let s = &mut t.services[0];
        s.routes[0].action = None;
        s.routes[1].name = "v2-by-header".into();
        s.routes[1].mirror.as_mut().unwrap().percent = 150.0;
        s.routes[0].r#match.as_mut().unwrap().method = Some(StringMatch::regex("("));
        s.routes[1]
            .rate_limit
            .as_mut()
            .unwrap()
            .token_bucket
            .as_mut()
            .unwrap()
            .fill_interval_ms = 0;
        let errs = validate_with(&c, &|r| {
            if r == "(" {
                Err("unclosed group".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "statPrefix",
                "routes.services[0].routes[0].match.method.regex",
                "routes.services[0].routes[0].action",
                "routes.services[0].routes[1].name",
                "routes.services[0].routes[1].rateLimit.tokenBucket.fillIntervalMs",
                "routes.services[0].routes[1].mirror.percent",
            ],
            "{errs:?}"
        );
    }

    #[test]
    fn routing_refused_for_non_rpc_protocols() {
        let c = Config {
            protocol: Protocol::Redis as i32,
            stat_prefix: "r".into(),
            routes: Some(RouteTable::default()),
            ..Default::default()
        };
        let errs = validate(&c).unwrap_err();
        assert_eq!(errs[0].path, "routes");
    }

    #[test]
    fn istio_metrics_values_that_break_tag_extraction_are_refused() {
        let mut c = Config {
            protocol: Protocol::Thrift as i32,
            stat_prefix: "t".into(),
            istio_metrics: Some(IstioMetrics {
                enabled: true,
                reporter: "destination".into(),
                destination_service: "calc.default.svc.cluster.local".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(validate(&c).is_ok(), "dots in an FQDN are fine");
        let m = c.istio_metrics.as_mut().unwrap();
        m.reporter = "client".into();
        m.source_workload = "a;b".into();
        m.destination_app = "x=y".into();
        m.connection_security_policy = "tls".into();
        let errs = validate(&c).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "istioMetrics.reporter",
                "istioMetrics.connectionSecurityPolicy",
                "istioMetrics.sourceWorkload",
                "istioMetrics.destinationApp",
            ]
        );
        let json = r#"{"protocol":"redis","statPrefix":"r","istioMetrics":{"enabled":true,"destinationServiceName":"cache","requestMethod":true}}"#;
        let c = Config::from_json(json).unwrap();
        assert!(c.istio_metrics.as_ref().unwrap().request_method);
        assert_eq!(c.to_json(), json);
    }
}
