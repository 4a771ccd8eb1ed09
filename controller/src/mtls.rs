//! Istio mTLS on the bridge twins. A twin (`meltemi-bridge|<istio cluster>`) reaches the same
//! endpoints as Istio's own outbound cluster, so in a mesh with mTLS it must speak the same
//! transport: Istio's client TLS context (SDS certificate `default`, validation against SDS
//! `ROOTCA`, ALPN `istio-peer-exchange, istio`, SNI `outbound_.<port>_.<subset>_.<host>`), chosen
//! the way istiod chooses it:
//! - no TLS setting in a DestinationRule (auto mTLS): `transport_socket_matches` keyed on the
//!   endpoint metadata `tlsMode: istio` (set by istiod on endpoints with a sidecar), plaintext for
//!   the others;
//! - `ISTIO_MUTUAL`: always that TLS context (`sni` and `subjectAltNames` of the rule honoured);
//! - `DISABLE`: plaintext; mesh-external ServiceEntries: plaintext unless the rule says otherwise.
//!
//! Not done: `SIMPLE`/`MUTUAL` (TLS origination with user certificates) is reported, not applied;
//! subject alt names of auto mTLS (istiod fills in the endpoints' service accounts, which we do not
//! watch) are left empty, so the peer is checked against the mesh root only.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::istio::{ClientTls, DestinationRuleSpec, TrafficPolicy};
use crate::render::json::obj;

/// Envoy cluster name of istio-agent's SDS server in every sidecar and gateway bootstrap.
pub const SDS_CLUSTER: &str = "sds-grpc";

/// What a twin cluster gets.
#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    /// No transport socket: plaintext.
    Plain,
    /// `transport_socket_matches`: mTLS to endpoints labelled `tlsMode: istio`, plaintext otherwise.
    Auto(TlsSocket),
    /// `transport_socket`: always mTLS.
    IstioMutual(TlsSocket),
    /// A TLS mode the twins do not implement; the twin stays plaintext.
    Unsupported(String),
}

// The typed twin: fields in the order of their names, as a JSON object's keys are, so the output
// is the one a `Value` tree of the same content gives, byte for byte.

/// A bridge twin cluster (`meltemi-bridge|<istio cluster>`), the value of its `CLUSTER` patch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TwinCluster {
    pub connect_timeout: &'static str,
    pub eds_cluster_config: EdsClusterConfig,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket: Option<TlsSocket>,
    /// The mTLS match, then the shared plaintext one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket_matches: Option<(SocketMatch, &'static Value)>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub upstream_config: Value,
}

/// Istio's EDS service `service_name` over ADS.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdsClusterConfig {
    pub eds_config: &'static Value,
    pub service_name: String,
}

/// The `tlsMode: istio` entry of `transport_socket_matches`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SocketMatch {
    #[serde(rename = "match")]
    pub match_: &'static Value,
    pub name: &'static str,
    pub transport_socket: TlsSocket,
}

/// `envoy.transport_sockets.tls` with Istio's upstream context.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TlsSocket {
    pub name: &'static str,
    pub typed_config: UpstreamTlsContext,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpstreamTlsContext {
    #[serde(rename = "@type")]
    pub type_url: &'static str,
    /// Shared by every twin unless a DestinationRule names subject alt names.
    pub common_tls_context: Cow<'static, Value>,
    pub sni: String,
}

impl TwinCluster {
    /// The twin named `name` of Istio cluster `cluster` with `upstream_config` and `transport`.
    pub fn new(name: String, cluster: &str, upstream_config: Value, transport: Transport) -> Self {
        static EDS: OnceLock<Value> = OnceLock::new();
        let eds_config = EDS.get_or_init(|| {
            obj([
                ("ads", Value::Object(Default::default())),
                ("resource_api_version", "V3".into()),
            ])
        });
        let (transport_socket, transport_socket_matches) = match transport {
            Transport::Auto(socket) => (None, Some(auto_matches(socket))),
            Transport::IstioMutual(socket) => (Some(socket), None),
            Transport::Plain | Transport::Unsupported(_) => (None, None),
        };
        TwinCluster {
            connect_timeout: "10s",
            eds_cluster_config: EdsClusterConfig {
                eds_config,
                service_name: cluster.to_string(),
            },
            name,
            transport_socket,
            transport_socket_matches,
            kind: "EDS",
            upstream_config,
        }
    }
}

/// Auto mTLS: `socket` to endpoints labelled `tlsMode: istio`, plaintext to the others.
fn auto_matches(socket: TlsSocket) -> (SocketMatch, &'static Value) {
    static ISTIO: OnceLock<Value> = OnceLock::new();
    static PLAIN: OnceLock<Value> = OnceLock::new();
    let istio = SocketMatch {
        match_: ISTIO.get_or_init(|| obj([("tlsMode", "istio".into())])),
        name: "tlsMode-istio",
        transport_socket: socket,
    };
    let plain = PLAIN.get_or_init(|| {
        obj([
            ("name", "tlsMode-disabled".into()),
            ("match", Value::Object(Default::default())),
            (
                "transport_socket",
                obj([
                    ("name", "envoy.transport_sockets.raw_buffer".into()),
                    (
                        "typed_config",
                        obj([(
                            "@type",
                            "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer".into(),
                        )]),
                    ),
                ]),
            ),
        ])
    });
    (istio, plain)
}

/// The client TLS a DestinationRule sets for `port` and `subset` of its host. The most specific
/// setting wins, as in Istio: the subset's port-level, the subset's, the rule's port-level, the rule's.
pub fn client_tls<'a>(
    dr: Option<&'a DestinationRuleSpec>,
    port: u32,
    subset: &str,
) -> Option<&'a ClientTls> {
    let dr = dr?;
    let in_subset = dr
        .subsets
        .iter()
        .find(|s| s.name == subset && !subset.is_empty())
        .and_then(|s| s.traffic_policy.as_ref())
        .and_then(|tp| policy_tls(tp, port));
    in_subset.or_else(|| {
        dr.traffic_policy
            .as_ref()
            .and_then(|tp| policy_tls(tp, port))
    })
}

fn policy_tls(tp: &TrafficPolicy, port: u32) -> Option<&ClientTls> {
    tp.port_level_settings
        .iter()
        .find(|p| p.port.as_ref().is_some_and(|x| x.number == port))
        .and_then(|p| p.tls.as_ref())
        .or(tp.tls.as_ref())
}

/// Istio's SNI for an outbound cluster (`model.BuildDNSSrvSubsetKey`).
pub fn sni(port: u32, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// The transport of the twin of `outbound|port|subset|host`. `auto_mtls`: the mesh's
/// `enableAutoMtls` (istiod's default is on); `mesh_external`: a MESH_EXTERNAL ServiceEntry.
pub fn transport(
    tls: Option<&ClientTls>,
    auto_mtls: bool,
    mesh_external: bool,
    port: u32,
    subset: &str,
    host: &str,
) -> Transport {
    match tls.map(|t| t.mode.as_str()) {
        None if auto_mtls && !mesh_external => {
            Transport::Auto(tls_socket(sni(port, subset, host), &[]))
        }
        None | Some("DISABLE") => Transport::Plain,
        Some("ISTIO_MUTUAL") => {
            let t = tls.map(|t| (t.sni.as_deref(), t.subject_alt_names.as_slice()));
            let (sni_set, sans) = t.unwrap_or((None, &[]));
            let sni = match sni_set {
                Some(s) if !s.is_empty() => s.to_string(),
                _ => sni(port, subset, host),
            };
            Transport::IstioMutual(tls_socket(sni, sans))
        }
        Some(other) => Transport::Unsupported(other.to_string()),
    }
}

/// `envoy.transport_sockets.tls` with Istio's upstream context.
fn tls_socket(sni: String, sans: &[String]) -> TlsSocket {
    let mut common = Cow::Borrowed(common_tls_context());
    if !sans.is_empty() {
        if let Some(v) = common
            .to_mut()
            .pointer_mut("/combined_validation_context/default_validation_context")
        {
            *v = obj([(
                "match_subject_alt_names",
                Value::Array(
                    sans.iter()
                        .map(|s| obj([("exact", s.as_str().into())]))
                        .collect(),
                ),
            )]);
        }
    }
    TlsSocket {
        name: "envoy.transport_sockets.tls",
        typed_config: UpstreamTlsContext {
            type_url:
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            common_tls_context: common,
            sni,
        },
    }
}

/// The part that is the same for every cluster, built once and shared by the twins.
fn common_tls_context() -> &'static Value {
    static COMMON: OnceLock<Value> = OnceLock::new();
    COMMON.get_or_init(|| {
        obj([
            (
                "tls_params",
                obj([
                    ("tls_minimum_protocol_version", "TLSv1_2".into()),
                    ("tls_maximum_protocol_version", "TLSv1_3".into()),
                ]),
            ),
            (
                "alpn_protocols",
                Value::Array(vec!["istio-peer-exchange".into(), "istio".into()]),
            ),
            (
                "tls_certificate_sds_secret_configs",
                Value::Array(vec![sds("default")]),
            ),
            (
                "combined_validation_context",
                obj([
                    (
                        "default_validation_context",
                        Value::Object(Default::default()),
                    ),
                    ("validation_context_sds_secret_config", sds("ROOTCA")),
                ]),
            ),
        ])
    })
}

/// An SDS secret served by istio-agent (`ConstructSdsSecretConfig` in istiod).
fn sds(name: &str) -> Value {
    obj([
        ("name", name.into()),
        (
            "sds_config",
            obj([
                (
                    "api_config_source",
                    obj([
                        ("api_type", "GRPC".into()),
                        ("set_node_on_first_message_only", true.into()),
                        ("transport_api_version", "V3".into()),
                        (
                            "grpc_services",
                            Value::Array(vec![obj([(
                                "envoy_grpc",
                                obj([("cluster_name", SDS_CLUSTER.into())]),
                            )])]),
                        ),
                    ]),
                ),
                ("initial_fetch_timeout", "0s".into()),
                ("resource_api_version", "V3".into()),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::{PortSelector, PortTrafficPolicy, Subset};

    fn tls(mode: &str) -> Option<ClientTls> {
        Some(ClientTls {
            mode: mode.into(),
            ..Default::default()
        })
    }

    #[test]
    fn most_specific_tls_setting_wins() {
        let dr = DestinationRuleSpec {
            host: "h".into(),
            traffic_policy: Some(TrafficPolicy {
                tls: tls("ISTIO_MUTUAL"),
                port_level_settings: vec![PortTrafficPolicy {
                    port: Some(PortSelector { number: 9 }),
                    tls: tls("DISABLE"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            subsets: vec![Subset {
                name: "v2".into(),
                traffic_policy: Some(TrafficPolicy {
                    tls: tls("SIMPLE"),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mode = |port, subset| client_tls(Some(&dr), port, subset).map(|t| t.mode.as_str());
        assert_eq!(mode(1, ""), Some("ISTIO_MUTUAL"));
        assert_eq!(mode(9, ""), Some("DISABLE"));
        assert_eq!(mode(9, "v1"), Some("DISABLE"));
        assert_eq!(mode(9, "v2"), Some("SIMPLE"));
        assert_eq!(client_tls(None, 1, ""), None);
    }

    #[test]
    fn modes() {
        assert!(matches!(
            transport(None, true, false, 1, "", "h"),
            Transport::Auto(_)
        ));
        assert_eq!(transport(None, false, false, 1, "", "h"), Transport::Plain);
        assert_eq!(transport(None, true, true, 1, "", "h"), Transport::Plain);
        assert_eq!(
            transport(tls("DISABLE").as_ref(), true, false, 1, "", "h"),
            Transport::Plain
        );
        assert_eq!(
            transport(tls("MUTUAL").as_ref(), true, false, 1, "", "h"),
            Transport::Unsupported("MUTUAL".into())
        );
        let Transport::IstioMutual(s) = transport(
            tls("ISTIO_MUTUAL").as_ref(),
            false,
            true,
            20880,
            "v1",
            "a.b",
        ) else {
            panic!("ISTIO_MUTUAL is mTLS even for mesh-external hosts");
        };
        assert_eq!(s.typed_config.sni, "outbound_.20880_.v1_.a.b");
    }
}
