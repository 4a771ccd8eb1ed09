//! A complete Envoy bootstrap from the same render, for running without Kubernetes (demo, VMs,
//! end-to-end tests): one listener per service port on loopback, one cluster per subset with the
//! ServiceEntry's static endpoints, our filter before `tcp_proxy`, bridge twins for routing, and
//! with `--routes-address` the `meltemi-routes` cluster plus the module's route-discovery
//! bootstrap extension.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Value};

use crate::inputs::{Adapter, Inputs};
use crate::model::{Endpoint, ServicePort};
use crate::render::{
    self, bridge_upstream, filter_value, ListenerPlan, RenderError, BRIDGE_PREFIX, TCP_PROXY,
};

#[derive(Clone, Debug)]
pub struct BootstrapOptions {
    pub listen_address: String,
    /// Listener port = service port + offset, unless the service has `meltemi.io/listen-port`.
    pub port_offset: i32,
    pub admin_port: u16,
    /// `host:port` of the controller's route endpoint, for a `route_discovery` cluster.
    pub routes_address: Option<String>,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            listen_address: "127.0.0.1".into(),
            port_offset: 0,
            admin_port: 9901,
            routes_address: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(
        "{host}:{port}: no static endpoints (the bootstrap needs ServiceEntry.spec.endpoints)"
    )]
    NoEndpoints { host: String, port: u32 },
    #[error("{host}:{port}: listen port {value} out of range")]
    ListenPort { host: String, port: u32, value: i64 },
    #[error("two services listen on port {0}")]
    PortClash(u32),
    #[error("bad routes address {0:?} (want host:port)")]
    RoutesAddress(String),
}

fn socket(address: &str, port: u32) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

fn cluster(name: &str, endpoints: &[&Endpoint]) -> Value {
    let all_ips = endpoints
        .iter()
        .all(|e| e.address.parse::<IpAddr>().is_ok());
    json!({
        "name": name,
        "type": if all_ips { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{
                "lb_endpoints": endpoints.iter().map(|e| json!({"endpoint": {"address": socket(&e.address, e.port)}})).collect::<Vec<_>>(),
            }],
        },
    })
}

fn subset_endpoints<'a>(
    sp: &'a ServicePort,
    labels: Option<&BTreeMap<String, String>>,
) -> Vec<&'a Endpoint> {
    sp.endpoints
        .iter()
        .filter(|e| labels.is_none_or(|l| l.iter().all(|(k, v)| e.labels.get(k) == Some(v))))
        .collect()
}

/// The bootstrap, as JSON (serialize to YAML or JSON; Envoy reads both).
pub fn bootstrap(inputs: &Inputs, opts: &BootstrapOptions) -> Result<Value, BootstrapError> {
    let rendered = render::render_all(inputs)?;
    let settings = &inputs.settings;
    let mut listeners = Vec::new();
    let mut clusters: BTreeMap<String, Value> = BTreeMap::new();
    let mut used_ports = BTreeMap::new();
    for ListenerPlan {
        service: sp,
        adapter,
        config,
        subsets,
        ..
    } in &rendered.listeners
    {
        if sp.endpoints.is_empty() {
            return Err(BootstrapError::NoEndpoints {
                host: sp.host.clone(),
                port: sp.port,
            });
        }
        let listen = match sp.listen_port {
            Some(p) => i64::from(p),
            None => i64::from(sp.port) + i64::from(opts.port_offset),
        };
        let listen = u32::try_from(listen)
            .ok()
            .filter(|p| (1..=65535).contains(p))
            .ok_or(BootstrapError::ListenPort {
                host: sp.host.clone(),
                port: sp.port,
                value: listen,
            })?;
        if used_ports.insert(listen, ()).is_some() {
            return Err(BootstrapError::PortClash(listen));
        }
        let all = sp.cluster("");
        clusters.insert(all.clone(), cluster(&all, &subset_endpoints(sp, None)));
        // tcp_proxy forwards to the routes' primary cluster (the fast path).
        let primary = config
            .routes
            .as_ref()
            .map_or(all, |t| t.primary_cluster.clone());
        for (name, labels) in subsets {
            let c = sp.cluster(name);
            clusters.insert(c.clone(), cluster(&c, &subset_endpoints(sp, Some(labels))));
        }
        // A static bootstrap is never updated in place, so with route discovery its listener
        // carries the current table (as version 0: any served version replaces it) instead of
        // the EnvoyFilter's empty placeholder. The module defines its per-route stats when the
        // listener is created, so the routes of this table count under their own names.
        let mut config = config.clone();
        if config.route_discovery.is_some() {
            if let Some(t) = rendered.route_tables.get(&config.stat_prefix) {
                config.routes = Some(meltemi_proto::RouteTable {
                    version: 0,
                    ..t.clone()
                });
            }
        }
        let ours = filter_value(*adapter, &config, settings, false);
        listeners.push(json!({
            "name": format!("{}_{}", sp.host, sp.port),
            "address": socket(&opts.listen_address, listen),
            "filter_chains": [{
                "filters": [
                    ours,
                    {
                        "name": TCP_PROXY,
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": config.stat_prefix,
                            "cluster": primary,
                        },
                    },
                ],
            }],
        }));
    }
    // Bridge twins: same endpoints as the cluster they shadow, the module's bridge as upstream.
    for plan in &rendered.listeners {
        for c in &plan.bridged_clusters {
            let mut parts = c.splitn(4, '|');
            let (_, port, subset, host) = (
                parts.next(),
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let port: u32 = port.and_then(|p| p.parse().ok()).unwrap_or(0);
            let Some(target) = rendered
                .listeners
                .iter()
                .find(|l| l.service.host == host && l.service.port == port)
            else {
                continue;
            };
            let labels = if subset.is_empty() {
                None
            } else {
                target.subsets.get(subset)
            };
            let name = format!("{BRIDGE_PREFIX}{c}");
            let mut twin = cluster(&name, &subset_endpoints(&target.service, labels));
            twin["upstream_config"] = bridge_upstream(plan.service.protocol, c, settings, false);
            clusters.insert(name, twin);
        }
    }
    let mut extensions = Vec::new();
    if let (Some(addr), Some(name)) = (&opts.routes_address, &settings.route_discovery_cluster) {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u32>().ok()?)))
            .ok_or_else(|| BootstrapError::RoutesAddress(addr.clone()))?;
        let ep = Endpoint {
            address: host.to_string(),
            port,
            labels: BTreeMap::new(),
        };
        clusters.insert(name.clone(), cluster(name, &[&ep]));
        // The module's route-discovery poller: a main-thread timer that fetches newer tables
        // while connections are idle (without it, connections poll on traffic).
        if rendered
            .listeners
            .iter()
            .any(|l| l.adapter == Adapter::Module && l.config.route_discovery.is_some())
        {
            extensions.push(crate::mesh_bootstrap::poller_extension(
                &settings.module_name,
            ));
        }
    }
    let mut b = json!({
        "node": {"id": "meltemi", "cluster": "meltemi"},
        "admin": {"address": socket("127.0.0.1", u32::from(opts.admin_port))},
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters.into_values().collect::<Vec<_>>(),
        },
    });
    if !extensions.is_empty() {
        b["bootstrap_extensions"] = Value::Array(extensions);
    }
    if settings.istio_metrics {
        // Istio's tag convention: these regexes turn the labels embedded in the names of
        // `istio_requests_total` & co into Prometheus labels.
        let tags: Vec<Value> = meltemi_proto::IstioMetrics::stat_tags()
            .into_iter()
            .map(|t| json!({"tag_name": t, "regex": meltemi_proto::istio_stats_tag_regex(t)}))
            .collect();
        b["stats_config"] = json!({"stats_tags": tags});
    }
    Ok(b)
}
