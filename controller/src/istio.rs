//! The parts of Istio's resources the controller reads (ServiceEntry, DestinationRule,
//! VirtualService, Gateway) and writes (EnvoyFilter). Only the fields used are typed. The
//! DestinationRule and VirtualService keep every other field in an `other` map, so the fields
//! Meltemi does not apply are still there to be reported (`crate::fields`) when the objects come
//! typed from the API server. Istio owns these CRDs, so no schema is derived (`schema = "disabled"`).

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

pub use crate::mtls::TwinCluster;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub number: u32,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEntrySpec {
    #[serde(default)]
    pub address: String,
    /// Port name -> port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1beta1",
    kind = "ServiceEntry",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Fields not read by Meltemi (reported by `crate::fields`).
    #[serde(flatten)]
    pub other: Other,
}

/// Fields of an Istio object Meltemi does not read, kept as they came.
pub type Other = BTreeMap<String, serde_json::Value>;

/// The part of a DestinationRule traffic policy the bridge twins honour: client TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// `loadBalancer`, `connectionPool`, `outlierDetection`, ...: not applied to the bridge twins.
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSelector {
    #[serde(default)]
    pub number: u32,
}

/// `ClientTLSSettings`: `mode` is DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTls {
    #[serde(default)]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(flatten)]
    pub other: Other,
}

/// Istio `Gateway`: which gateway workloads (`selector`) listen on which ports for which hosts.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1beta1",
    kind = "Gateway",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub servers: Vec<GatewayServer>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayServer {
    pub port: ServicePort,
    /// `host`, `ns/host`, `*/host`, `*`, `*.suffix`.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1beta1",
    kind = "DestinationRule",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    #[serde(flatten)]
    pub other: Other,
}

/// Istio `VirtualService`: its `http` routes route Dubbo and Thrift hosts as Aeraki's
/// `dubbo_proxy`/`thrift_proxy` generators read them (method and headers, subsets, weights).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1beta1",
    kind = "VirtualService",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Empty or containing `mesh`: the sidecars; Gateway names are not applied by Meltemi.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// `tcp`, `tls`: Istio applies them to connections (`tcp_proxy`); Meltemi does not.
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Alternatives (any one matches); none: every request.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<HttpMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::crd::Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<crate::crd::Percent>,
    /// Per-request timeout, a duration such as `1.5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpMatch {
    /// The RPC method (Dubbo method, Thrift method name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<crate::crd::StringMatch>,
    /// Dubbo attachments, Thrift THeader headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, crate::crd::StringMatch>,
    #[serde(flatten)]
    pub other: Other,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRouteDestination {
    pub destination: crate::crd::Destination,
    /// Relative weight; unset is 0 (Istio), a single destination takes every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(flatten)]
    pub other: Other,
}

/// What we write. Patch values stay JSON: they are Envoy configuration, checked by the real Envoy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1alpha3",
    kind = "EnvoyFilter",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyFilterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    pub config_patches: Vec<ConfigPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPatch {
    /// NETWORK_FILTER, CLUSTER, ...
    pub apply_to: String,
    #[serde(rename = "match")]
    pub match_: PatchMatch,
    pub patch: Patch,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchMatch {
    /// SIDECAR_OUTBOUND, SIDECAR_INBOUND, GATEWAY.
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_chain: Option<FilterChainMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterChainMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterMatch {
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    /// INSERT_BEFORE, ADD, MERGE, REPLACE, REMOVE.
    pub operation: String,
    pub value: PatchValue,
}

/// A patch value: Envoy configuration as JSON, or a bridge twin cluster kept typed. A render
/// builds 10 twins per routed service; typed, their TLS context is shared by all of them instead
/// of being a JSON tree built and freed per twin. Both serialise to the same JSON and YAML;
/// reading a patch back (from the API server) always gives `Json`.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum PatchValue {
    Json(serde_json::Value),
    Twin(Box<TwinCluster>),
}

impl Default for PatchValue {
    fn default() -> Self {
        PatchValue::Json(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for PatchValue {
    fn from(v: serde_json::Value) -> Self {
        PatchValue::Json(v)
    }
}

impl PatchValue {
    /// The value as a JSON tree (what the API server stores).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PatchValue::Json(v) => v.clone(),
            PatchValue::Twin(t) => serde_json::to_value(t).unwrap_or_default(),
        }
    }
}

/// Equal when their JSON is: a typed twin equals the same cluster read back as JSON.
impl PartialEq for PatchValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PatchValue::Json(a), PatchValue::Json(b)) => a == b,
            (PatchValue::Twin(a), PatchValue::Twin(b)) => a == b,
            _ => self.to_json() == other.to_json(),
        }
    }
}

impl<'de> Deserialize<'de> for PatchValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(PatchValue::Json)
    }
}
