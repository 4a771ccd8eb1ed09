//! Service ports that speak one of our protocols, found in ServiceEntries and Services by port name.

use std::collections::BTreeMap;

use meltemi_proto::Protocol;

use crate::inputs::{Adapter, Inputs};

/// Annotation (on a ServiceEntry or Service) that picks the adapter: `wasm` or `module`.
pub const ADAPTER_ANNOTATION: &str = "meltemi.io/adapter";
/// Annotation (on a ServiceEntry or Service) naming Istio Gateways (`ns/name` or `name`, comma
/// separated) whose listeners for this host get the filter too (observe; routes come from
/// `MetaRouter.spec.gateways`).
pub const GATEWAYS_ANNOTATION: &str = "meltemi.io/gateways";
/// Annotation with the listen port of this service in a standalone bootstrap (else the port).
pub const LISTEN_PORT_ANNOTATION: &str = "meltemi.io/listen-port";

/// Protocol declared by an Istio port name: `tcp-<proto>`, `tcp-metaprotocol-<proto>`, each
/// optionally followed by `-<suffix>`.
pub fn protocol_of_port_name(name: &str) -> Option<Protocol> {
    let rest = name.strip_prefix("tcp-")?;
    let rest = rest.strip_prefix("metaprotocol-").unwrap_or(rest);
    let proto = rest.split('-').next()?;
    match proto {
        "dubbo" => Some(Protocol::Dubbo),
        "thrift" => Some(Protocol::Thrift),
        "kafka" => Some(Protocol::Kafka),
        "zookeeper" => Some(Protocol::Zookeeper),
        "redis" => Some(Protocol::Redis),
        "mysql" => Some(Protocol::Mysql),
        "postgres" | "postgresql" => Some(Protocol::Postgres),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    pub port: u32,
    pub labels: BTreeMap<String, String>,
}

/// Where a service port came from (for owner references and messages).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

/// One protocol port of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub host: String,
    pub namespace: String,
    pub source: Source,
    /// Cluster VIP (Service clusterIP, first ServiceEntry address); outbound listener `<vip>_<port>`.
    pub vip: Option<String>,
    pub port: u32,
    pub port_name: String,
    /// Port on the workload (inbound `destinationPort`).
    pub target_port: u32,
    pub protocol: Protocol,
    /// Labels selecting the serving workloads (inbound `workloadSelector`); empty = no inbound.
    pub workload_labels: BTreeMap<String, String>,
    /// Static endpoints (ServiceEntry `endpoints`), for the standalone bootstrap.
    pub endpoints: Vec<Endpoint>,
    pub adapter_override: Option<Adapter>,
    pub listen_port: Option<u32>,
    /// ServiceEntry/Service `exportTo`.
    pub export_to: Vec<String>,
    /// A `MESH_EXTERNAL` ServiceEntry (no auto mTLS to it).
    pub mesh_external: bool,
    /// Gateways named by the `meltemi.io/gateways` annotation.
    pub gateways: Vec<String>,
}

impl ServicePort {
    /// Istio's outbound cluster name for this port and subset (`""` = no subset).
    pub fn cluster(&self, subset: &str) -> String {
        cluster_name(self.port, subset, &self.host)
    }
}

pub fn cluster_name(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

fn adapter_from(annotations: Option<&BTreeMap<String, String>>) -> Option<Adapter> {
    match annotations?.get(ADAPTER_ANNOTATION)?.as_str() {
        "wasm" => Some(Adapter::Wasm),
        "module" => Some(Adapter::Module),
        _ => None,
    }
}

fn gateways_from(annotations: Option<&BTreeMap<String, String>>) -> Vec<String> {
    annotations
        .and_then(|a| a.get(GATEWAYS_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn listen_port_from(annotations: Option<&BTreeMap<String, String>>) -> Option<u32> {
    annotations?.get(LISTEN_PORT_ANNOTATION)?.parse().ok()
}

/// Every protocol port of every host, sorted by (host, port); later duplicates are dropped.
pub fn service_ports(inputs: &Inputs) -> Vec<ServicePort> {
    let mut out: Vec<ServicePort> = Vec::new();
    for se in &inputs.service_entries {
        let ns = se
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = se.metadata.name.clone().unwrap_or_default();
        let annotations = se.metadata.annotations.as_ref();
        let vip = se.spec.addresses.iter().find(|a| !a.contains('/')).cloned();
        for host in &se.spec.hosts {
            for p in &se.spec.ports {
                let Some(protocol) = protocol_of_port_name(&p.name) else {
                    continue;
                };
                let endpoints = se
                    .spec
                    .endpoints
                    .iter()
                    .filter(|e| !e.address.is_empty())
                    .map(|e| Endpoint {
                        address: e.address.clone(),
                        port: e
                            .ports
                            .get(&p.name)
                            .copied()
                            .or(p.target_port)
                            .unwrap_or(p.number),
                        labels: e.labels.clone(),
                    })
                    .collect();
                out.push(ServicePort {
                    host: host.clone(),
                    namespace: ns.clone(),
                    source: Source {
                        kind: "ServiceEntry",
                        api_version: "networking.istio.io/v1beta1",
                        namespace: ns.clone(),
                        name: name.clone(),
                        uid: se.metadata.uid.clone(),
                    },
                    vip: vip.clone(),
                    port: p.number,
                    port_name: p.name.clone(),
                    target_port: p.target_port.unwrap_or(p.number),
                    protocol,
                    workload_labels: se
                        .spec
                        .workload_selector
                        .as_ref()
                        .map(|w| w.labels.clone())
                        .unwrap_or_default(),
                    endpoints,
                    adapter_override: adapter_from(annotations),
                    listen_port: listen_port_from(annotations),
                    export_to: se.spec.export_to.clone(),
                    mesh_external: se.spec.location.as_deref() == Some("MESH_EXTERNAL"),
                    gateways: gateways_from(annotations),
                });
            }
        }
    }
    for svc in &inputs.services {
        let ns = svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = svc.metadata.name.clone().unwrap_or_default();
        let annotations = svc.metadata.annotations.as_ref();
        let Some(spec) = &svc.spec else { continue };
        let host = format!("{name}.{ns}.svc.{}", inputs.settings.cluster_domain);
        let vip = spec
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty() && ip != "None");
        for p in spec.ports.iter().flatten() {
            let pname = p.name.clone().unwrap_or_default();
            let Some(protocol) = protocol_of_port_name(&pname) else {
                continue;
            };
            let port = u32::try_from(p.port).unwrap_or(0);
            let target_port = match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                    u32::try_from(*n).unwrap_or(port)
                }
                _ => port,
            };
            out.push(ServicePort {
                host: host.clone(),
                namespace: ns.clone(),
                source: Source {
                    kind: "Service",
                    api_version: "v1",
                    namespace: ns.clone(),
                    name: name.clone(),
                    uid: svc.metadata.uid.clone(),
                },
                vip: vip.clone(),
                port,
                port_name: pname,
                target_port,
                protocol,
                workload_labels: spec.selector.clone().unwrap_or_default(),
                endpoints: Vec::new(),
                adapter_override: adapter_from(annotations),
                listen_port: listen_port_from(annotations),
                export_to: Vec::new(),
                mesh_external: false,
                gateways: gateways_from(annotations),
            });
        }
    }
    out.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    out.dedup_by(|b, a| a.host == b.host && a.port == b.port);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names() {
        assert_eq!(protocol_of_port_name("tcp-dubbo"), Some(Protocol::Dubbo));
        assert_eq!(
            protocol_of_port_name("tcp-metaprotocol-thrift"),
            Some(Protocol::Thrift)
        );
        assert_eq!(
            protocol_of_port_name("tcp-redis-primary"),
            Some(Protocol::Redis)
        );
        assert_eq!(protocol_of_port_name("tcp-kafka"), Some(Protocol::Kafka));
        assert_eq!(
            protocol_of_port_name("tcp-zookeeper"),
            Some(Protocol::Zookeeper)
        );
        assert_eq!(protocol_of_port_name("http-dubbo"), None);
        assert_eq!(protocol_of_port_name("tcp-mysql"), Some(Protocol::Mysql));
        assert_eq!(
            protocol_of_port_name("tcp-postgres-main"),
            Some(Protocol::Postgres)
        );
        assert_eq!(protocol_of_port_name("tcp-mongo"), None);
        assert_eq!(protocol_of_port_name("tcp-dubbox"), None);
    }
}
