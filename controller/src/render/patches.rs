//! The Istio `EnvoyFilter` objects the render writes and the config patches in them: our filter
//! before `tcp_proxy` in a listener, and the bridge twin clusters with Istio's transport.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ObjectMeta;
use meltemi_proto as pb;
use serde_json::Value;

use super::json::bridge_upstream;
use super::names::{BRIDGE_PREFIX, MANAGED_BY, TCP_PROXY};
use super::output::{ObjectKey, ObjectReport};
use crate::inputs::Settings;
use crate::istio::{
    ConfigPatch, DestinationRuleSpec, EnvoyFilter, EnvoyFilterSpec, FilterChainMatch, FilterMatch,
    ListenerMatch, Patch, PatchMatch, PatchValue, WorkloadSelector,
};
use crate::model::ServicePort;
use crate::mtls::{self, Transport};
use crate::routes::Catalog;

/// Bridge twin of an Istio cluster inside a sidecar (or gateway, `context`): same endpoints (Istio's
/// EDS service name), the module's bridge as upstream, and Istio's transport (mTLS) to them.
fn bridge_cluster_patch(
    cluster: &str,
    context: &str,
    protocol: pb::Protocol,
    settings: &Settings,
    transport: Transport,
) -> ConfigPatch {
    let value = mtls::TwinCluster::new(
        format!("{BRIDGE_PREFIX}{cluster}"),
        cluster,
        bridge_upstream(protocol, cluster, settings, true),
        transport,
    );
    ConfigPatch {
        apply_to: "CLUSTER".into(),
        match_: PatchMatch {
            context: context.into(),
            ..Default::default()
        },
        patch: Patch {
            operation: "ADD".into(),
            value: PatchValue::Twin(Box::new(value)),
        },
    }
}

/// Points `tcp_proxy` in the listener `listener` of `context` at `cluster` (MERGE of its `cluster`
/// field): the routes' primary cluster when it is not the service's (Istio's `tcp_proxy` forwards
/// to the service's cluster, all endpoints). `stat_prefix` as Istio names it: the cluster.
pub(super) fn tcp_proxy_cluster(
    context: &str,
    listener: ListenerMatch,
    stat_prefix: &str,
    cluster: &str,
) -> ConfigPatch {
    let mut p = before_tcp_proxy(
        context,
        listener,
        serde_json::json!({
            "name": TCP_PROXY,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": stat_prefix,
                "cluster": cluster,
            },
        }),
    );
    p.patch.operation = "MERGE".into();
    p
}

/// Our filter `value` inserted before `tcp_proxy` in the listener `listener` of `context`.
pub(super) fn before_tcp_proxy(
    context: &str,
    listener: ListenerMatch,
    value: Value,
) -> ConfigPatch {
    let filter_chain = FilterChainMatch {
        destination_port: listener
            .filter_chain
            .as_ref()
            .and_then(|f| f.destination_port),
        filter: Some(FilterMatch {
            name: TCP_PROXY.into(),
        }),
    };
    ConfigPatch {
        apply_to: "NETWORK_FILTER".into(),
        match_: PatchMatch {
            context: context.into(),
            listener: Some(ListenerMatch {
                filter_chain: Some(filter_chain),
                ..listener
            }),
            cluster: None,
        },
        patch: Patch {
            operation: "INSERT_BEFORE".into(),
            value: value.into(),
        },
    }
}

/// The transport of the twin of Istio cluster `c` (`outbound|<port>|<subset>|<host>`).
fn twin_transport(
    c: &str,
    drs: &BTreeMap<&str, &DestinationRuleSpec>,
    cat: &Catalog<'_>,
    settings: &Settings,
) -> Transport {
    let mut parts = c.splitn(4, '|').skip(1);
    let port: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let subset = parts.next().unwrap_or("");
    let host = parts.next().unwrap_or("");
    let external = cat
        .ports
        .get(host)
        .is_some_and(|v| v.iter().any(|sp| sp.mesh_external));
    mtls::transport(
        mtls::client_tls(drs.get(host).copied(), port, subset),
        settings.auto_mtls,
        external,
        port,
        subset,
        host,
    )
}

/// The twin patches of `bridged`; a TLS mode the twins cannot apply becomes a warning on `contributors`.
#[allow(clippy::too_many_arguments)]
pub(super) fn twin_patches(
    bridged: &BTreeSet<String>,
    context: &str,
    protocol: pb::Protocol,
    drs: &BTreeMap<&str, &DestinationRuleSpec>,
    cat: &Catalog<'_>,
    settings: &Settings,
    contributors: &[ObjectKey],
    reports: &mut BTreeMap<ObjectKey, ObjectReport>,
) -> Vec<ConfigPatch> {
    bridged
        .iter()
        .map(|c| {
            let t = twin_transport(c, drs, cat, settings);
            if let Transport::Unsupported(mode) = &t {
                for k in contributors {
                    if let Some(r) = reports.get_mut(k) {
                        r.problems.warn("spec", format!("DestinationRule TLS mode {mode} of {c} is not applied to the bridge twin {BRIDGE_PREFIX}{c}: detoured requests go in plaintext"));
                    }
                }
            }
            bridge_cluster_patch(c, context, protocol, settings, t)
        })
        .collect()
}

/// Annotations saying what a filter is for: host, port, source object, routers that went in.
pub(super) fn filter_annotations(
    sp: &ServicePort,
    contributors: &[ObjectKey],
) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        ("meltemi.io/host".to_string(), sp.host.clone()),
        ("meltemi.io/port".to_string(), sp.port.to_string()),
        (
            "meltemi.io/source".to_string(),
            format!(
                "{} {}/{}",
                sp.source.kind, sp.source.namespace, sp.source.name
            ),
        ),
    ]);
    if !contributors.is_empty() {
        annotations.insert(
            "meltemi.io/routes".into(),
            contributors
                .iter()
                .map(|k| format!("{}/{}", k.namespace, k.name))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    annotations
}

pub(super) fn envoy_filter(
    ns: &str,
    name: &str,
    annotations: BTreeMap<String, String>,
    workload_selector: Option<WorkloadSelector>,
    config_patches: Vec<ConfigPatch>,
    sp: &ServicePort,
    same_namespace: bool,
) -> EnvoyFilter {
    // Owner references cannot cross namespaces; filters in the root namespace are pruned by label.
    let owner_references = match (&sp.source.uid, same_namespace) {
        (Some(uid), true) => Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: sp.source.api_version.into(),
                kind: sp.source.kind.into(),
                name: sp.source.name.clone(),
                uid: uid.clone(),
                controller: Some(false),
                block_owner_deletion: None,
            },
        ]),
        _ => None,
    };
    let mut ef = EnvoyFilter::new(
        name,
        EnvoyFilterSpec {
            workload_selector,
            config_patches,
            priority: None,
        },
    );
    ef.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY.0.to_string(),
            MANAGED_BY.1.to_string(),
        )])),
        annotations: Some(annotations),
        owner_references,
        ..Default::default()
    };
    ef
}
