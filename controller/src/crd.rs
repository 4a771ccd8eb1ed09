//! Our route CRDs. They keep Aeraki's groups, kinds and field names so that existing `MetaRouter`,
//! `RedisService` and `RedisDestination` manifests apply unchanged; the schemas are derived from
//! these types (schemars) and written to `deploy/crds.yaml` by `meltemi crds` (drift-tested).

// Several `printcolumn(type_ = "string", ...)` entries read as duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A status condition (the shape of `metav1.Condition`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted` (the spec is valid and was rendered) or `Degraded` (parts were ignored).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase machine-readable reason.
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// The `metadata.generation` this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Status shared by our route CRDs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Names of the EnvoyFilters this object contributed to (`namespace/name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rendered: Vec<String>,
}

/// Exactly one of exact, prefix, regex (RE2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MetaRouteMatch {
    /// Attribute name to match: `method`, `interface` and protocol attributes (Dubbo attachments,
    /// Thrift headers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, StringMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Destination {
    /// Service host (ServiceEntry host or `<svc>.<ns>.svc.cluster.local`).
    pub host: String,
    /// DestinationRule subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WeightedDestination {
    pub destination: Destination,
    /// Relative weight; required when a route has more than one destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Percent {
    pub value: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetaRouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<WeightedDestination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Accepted for compatibility; not applied by the Meltemi data plane yet (reported in status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_mutation: Vec<KeyValue>,
    /// Accepted for compatibility; not applied yet (reported in status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_mutation: Vec<KeyValue>,
    /// Meltemi extension: per-request timeout, a duration such as `1.5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Meltemi extension: bounded retries of idempotent methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idempotent_methods: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenBucket {
    /// Duration such as `60s`, `100ms`, `1m`.
    pub fill_interval: String,
    pub max_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_fill: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitCondition {
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetaRouteMatch>,
    pub token_bucket: TokenBucket,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_bucket: Option<TokenBucket>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RateLimitCondition>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitDescriptor {
    #[serde(default)]
    pub property: String,
    #[serde(default)]
    pub descriptor_key: String,
}

/// Accepted for compatibility; not applied (no global rate limit service integration yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalRateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetaRouteMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_on_fail: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptors: Vec<RateLimitDescriptor>,
}

/// Routes for MetaProtocol services (Dubbo, Thrift): Aeraki's `MetaRouter`, unchanged.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metaprotocol.aeraki.io",
    version = "v1alpha1",
    kind = "MetaRouter",
    namespaced,
    status = "RouteStatus",
    shortname = "mr",
    category = "meltemi",
    printcolumn(name = "Hosts", type_ = "string", json_path = ".spec.hosts"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MetaRouterSpec {
    /// Service hosts these routes apply to.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Istio Gateways (`ns/name`, or `name` in this namespace) whose TCP servers for these hosts get
    /// the routes; `mesh` means the sidecars. Empty: sidecars only; without `mesh`: gateways only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Ordered routes; the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<MetaRoute>,
    /// Service-wide local rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_rate_limit: Option<GlobalRateLimit>,
    /// Namespaces the routes are visible to; `["."]` keeps them in the MetaRouter's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlainAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretAuth {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_field: Option<String>,
}

/// One of plain, secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<PlainAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretAuth>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_flush_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_insensitive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_command_stats: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_hashtagging: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_redirection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffer_size_before_flush: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upstream_unknown_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_timeout: Option<String>,
    /// MASTER, PREFER_MASTER, REPLICA, PREFER_REPLICA, ANY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisKeyMatch {
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_prefix: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RedisMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RedisKeyMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RedisRouteDestination {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisMirror {
    pub route: RedisRouteDestination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_read_commands: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RedisRoute {
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<RedisMatch>,
    pub route: RedisRouteDestination,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<RedisMirror>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RedisFault {
    /// DELAY or ERROR.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

/// Redis routing: Aeraki's `RedisService`, unchanged.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "redis.aeraki.io",
    version = "v1alpha1",
    kind = "RedisService",
    namespaced,
    status = "RouteStatus",
    category = "meltemi",
    printcolumn(name = "Hosts", type_ = "string", json_path = ".spec.host"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct RedisServiceSpec {
    /// Service hosts (Aeraki names this list `host`).
    #[serde(default)]
    pub host: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<RedisSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redis: Vec<RedisRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<RedisFault>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TcpKeepalive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisPoolSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovery_endpoints: Vec<String>,
    /// PROXY or CLUSTER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPool>,
}

/// Redis upstream settings: Aeraki's `RedisDestination`, unchanged.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "redis.aeraki.io",
    version = "v1alpha1",
    kind = "RedisDestination",
    namespaced,
    status = "RouteStatus",
    category = "meltemi",
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RedisDestinationSpec {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<RedisTrafficPolicy>,
}

/// The CRDs as one multi-document YAML (what `deploy/crds.yaml` holds).
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out =
        String::from("# Generated by `meltemi crds` from controller/src/crd.rs; do not edit.\n");
    for crd in [
        MetaRouter::crd(),
        RedisService::crd(),
        RedisDestination::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd).unwrap_or_default());
    }
    out
}
