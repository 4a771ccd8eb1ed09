//! The filter on Istio ingress and egress gateways. Asked for the way Istio users ask for
//! VirtualService rules on gateways: `MetaRouter.spec.gateways` names Istio `Gateway`s (`ns/name`, or
//! `name` in the router's namespace; the reserved `mesh` means the sidecars, which are the default
//! when the list is empty; a list without `mesh` applies the routes to the gateways only). A service
//! without routes asks with the annotation `meltemi.io/gateways: ns/name,...` (observe only).
//!
//! For each (Gateway, server port, service port): one EnvoyFilter in the root namespace with the
//! Gateway's `selector` as workload selector, context `GATEWAY`, the listener on the server's port,
//! our filter before `tcp_proxy` (the TCP route a VirtualService binds to that port), and the
//! bridge twins the routes need. The server is a `TCP` server of the Gateway whose `hosts` match
//! the service host (`*`, `*.suffix`, exact; `ns/` prefix honoured), the one on the service's
//! port number if several match.

use std::collections::BTreeMap;

use super::json::filter_value;
use super::listener::{
    bridged_clusters, listener_config, resolve_adapter, route_table, RouteSource,
};
use super::names::{dns_piece, object_name, stat_piece};
use super::output::{key_of, ObjectKey, RenderError, Rendered};
use super::patches::{before_tcp_proxy, envoy_filter, filter_annotations, twin_patches};
use crate::crd::MetaRouter;
use crate::inputs::Inputs;
use crate::istio::{DestinationRuleSpec, Gateway, ListenerMatch, WorkloadSelector};
use crate::model::{ServicePort, GATEWAYS_ANNOTATION};
use crate::routes::{Catalog, Problem};

/// The reserved gateway name for "all sidecars".
pub const MESH: &str = "mesh";

/// Whether a router's routes go to the sidecars: no gateways listed, or `mesh` among them.
pub fn applies_to_mesh(mr: &MetaRouter) -> bool {
    mr.spec.gateways.is_empty() || mr.spec.gateways.iter().any(|g| g == MESH)
}

/// What the sidecar pass already indexed.
pub struct Lookups<'a> {
    pub cat: &'a Catalog<'a>,
    pub subsets_by_host: &'a BTreeMap<&'a str, BTreeMap<String, BTreeMap<String, String>>>,
    pub drs_by_host: &'a BTreeMap<&'a str, &'a DestinationRuleSpec>,
}

struct Target<'a> {
    gateway: &'a Gateway,
    sp: &'a ServicePort,
    routers: Vec<&'a MetaRouter>,
}

/// `ns/name` or `name` (in `default_ns`).
fn split_ref<'a>(r: &'a str, default_ns: &'a str) -> (&'a str, &'a str) {
    r.split_once('/').unwrap_or((default_ns, r))
}

fn find<'a>(inputs: &'a Inputs, ns: &str, name: &str) -> Option<&'a Gateway> {
    inputs.gateways.iter().find(|g| {
        g.metadata.namespace.as_deref() == Some(ns) && g.metadata.name.as_deref() == Some(name)
    })
}

/// Does a Gateway server host (`[ns/]host`) cover `sp`?
fn host_matches(pattern: &str, gateway_ns: &str, sp: &ServicePort) -> bool {
    let (ns, host) = pattern.split_once('/').unwrap_or(("*", pattern));
    let ns_ok = match ns {
        "*" => true,
        "." => gateway_ns == sp.namespace,
        ns => ns == sp.namespace,
    };
    ns_ok
        && (host == "*"
            || host == sp.host
            || host
                .strip_prefix('*')
                .is_some_and(|suffix| suffix.starts_with('.') && sp.host.ends_with(suffix)))
}

/// The port of the Gateway's TCP server for `sp`, if any.
fn server_port(gw: &Gateway, sp: &ServicePort) -> Option<u32> {
    let ns = gw.metadata.namespace.as_deref().unwrap_or("default");
    let mut ports = gw
        .spec
        .servers
        .iter()
        .filter(|s| {
            s.port
                .protocol
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("TCP"))
                && s.hosts.iter().any(|h| host_matches(h, ns, sp))
        })
        .map(|s| s.port.number);
    let first = ports.next()?;
    Some(
        std::iter::once(first)
            .chain(ports)
            .find(|p| *p == sp.port)
            .unwrap_or(first),
    )
}

/// Adds `sp` on `gw` to `targets`; `Err` names the host already on that gateway port.
fn add<'a>(
    targets: &mut BTreeMap<(String, String, u32), Target<'a>>,
    gw: &'a Gateway,
    port: u32,
    sp: &'a ServicePort,
    router: Option<&'a MetaRouter>,
) -> Result<(), String> {
    let key = (
        gw.metadata.namespace.clone().unwrap_or_default(),
        gw.metadata.name.clone().unwrap_or_default(),
        port,
    );
    let t = targets.entry(key).or_insert_with(|| Target {
        gateway: gw,
        sp,
        routers: Vec::new(),
    });
    if t.sp.host != sp.host || t.sp.port != sp.port {
        return Err(t.sp.host.clone());
    }
    if let Some(r) = router {
        if !t.routers.iter().any(|x| std::ptr::eq(*x, r)) {
            t.routers.push(r);
        }
    }
    Ok(())
}

/// Where the entry `g` of the `meltemi.io/gateways` annotation of `sp` puts our filter: the Gateway
/// and its server port, or why nowhere.
fn annotation_target<'a>(
    inputs: &'a Inputs,
    sp: &ServicePort,
    g: &str,
) -> Result<(&'a Gateway, u32), String> {
    let (ns, name) = split_ref(g, &sp.namespace);
    let gw = find(inputs, ns, name).ok_or_else(|| format!("no Gateway {ns}/{name}"))?;
    if gw.spec.selector.is_empty() {
        return Err(format!("Gateway {ns}/{name} has no selector"));
    }
    let port = server_port(gw, sp).ok_or_else(|| {
        format!(
            "Gateway {ns}/{name} has no TCP server whose hosts match {}",
            sp.host
        )
    })?;
    Ok((gw, port))
}

/// An annotation entry of `sp` that puts nothing on a gateway, as a problem of its source object.
fn annotation_problem(sp: &ServicePort, message: String) -> (ObjectKey, Problem) {
    let key = ObjectKey {
        kind: sp.source.kind,
        namespace: sp.source.namespace.clone(),
        name: sp.source.name.clone(),
    };
    let path = format!("metadata.annotations[{GATEWAYS_ANNOTATION:?}]");
    (key, Problem { path, message })
}

/// The annotation problems of `ports` without a render (what [`render`] puts in
/// `Rendered::source_problems`; for `meltemi validate` when the render fails).
pub(crate) fn source_problems(inputs: &Inputs, ports: &[ServicePort]) -> Vec<(ObjectKey, Problem)> {
    ports
        .iter()
        .flat_map(|sp| {
            sp.gateways.iter().filter_map(move |g| {
                let message = annotation_target(inputs, sp, g).err()?;
                Some(annotation_problem(sp, message))
            })
        })
        .collect()
}

/// Renders the gateway EnvoyFilters into `out` (problems go to the routers' reports).
pub fn render<'a>(
    inputs: &'a Inputs,
    ports: &'a [ServicePort],
    routed: &[(&'a MetaRouter, Vec<&'a ServicePort>)],
    look: &Lookups<'_>,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let settings = &inputs.settings;
    let mut targets: BTreeMap<(String, String, u32), Target<'a>> = BTreeMap::new();
    for (mr, sps) in routed {
        let key = key_of("MetaRouter", &mr.metadata);
        for (i, g) in mr.spec.gateways.iter().enumerate() {
            if g == MESH {
                continue;
            }
            let path = format!("spec.gateways[{i}]");
            let (ns, name) = split_ref(g, &key.namespace);
            let Some(gw) = find(inputs, ns, name) else {
                if let Some(r) = out.reports.get_mut(&key) {
                    r.problems.error(path, format!("no Gateway {ns}/{name}"));
                }
                continue;
            };
            let mut problems = Vec::new();
            if gw.spec.selector.is_empty() {
                problems.push(format!(
                    "Gateway {ns}/{name} has no selector: no gateway workload to patch"
                ));
            } else {
                for sp in sps {
                    match server_port(gw, sp) {
                        None => problems.push(format!(
                            "Gateway {ns}/{name} has no TCP server whose hosts match {}",
                            sp.host
                        )),
                        Some(port) => {
                            if let Err(other) = add(&mut targets, gw, port, sp, Some(mr)) {
                                problems.push(format!("Gateway {ns}/{name} port {port} already carries {other}; one service per TCP gateway port"));
                            }
                        }
                    }
                }
            }
            if let Some(r) = out.reports.get_mut(&key) {
                for m in problems {
                    r.problems.error(path.clone(), m);
                }
            }
        }
    }
    // Observe-only requests by annotation. No route object to report on: an entry naming nothing
    // usable is skipped and kept as a problem of the Service (`meltemi validate` shows it).
    for sp in ports {
        for g in &sp.gateways {
            match annotation_target(inputs, sp, g) {
                Ok((gw, port)) => {
                    let _ = add(&mut targets, gw, port, sp, None);
                }
                Err(message) => out.source_problems.push(annotation_problem(sp, message)),
            }
        }
    }

    for ((gw_ns, gw_name, port), t) in targets {
        let sp = t.sp;
        let adapter = resolve_adapter(sp, t.routers.is_empty(), settings);
        let prefix = format!("gateway_{port}_{}", stat_piece(&sp.host));
        let sources: Vec<RouteSource<'_>> =
            t.routers.iter().map(|m| RouteSource::Meta(m)).collect();
        let (table, contributors) =
            route_table(sp, &sources, adapter, false, look.cat, &mut out.reports);
        let subsets = look
            .subsets_by_host
            .get(sp.host.as_str())
            .cloned()
            .unwrap_or_default();
        let bridged = bridged_clusters(sp, table.as_ref(), &subsets);
        let config = listener_config(sp, &prefix, table, settings, &mut out.route_tables)?;
        let mut patches = vec![before_tcp_proxy(
            "GATEWAY",
            ListenerMatch {
                port_number: Some(port),
                ..Default::default()
            },
            filter_value(adapter, &config, settings, true),
        )];
        patches.extend(twin_patches(
            &bridged,
            "GATEWAY",
            sp.protocol,
            look.drs_by_host,
            look.cat,
            settings,
            &contributors,
            &mut out.reports,
        ));
        let ns = settings.root_namespace.clone();
        let name = object_name(format!(
            "meltemi-gateway-{}-{}-{port}",
            dns_piece(&gw_ns),
            dns_piece(&gw_name)
        ));
        let mut annotations = filter_annotations(sp, &contributors);
        annotations.insert("meltemi.io/gateway".into(), format!("{gw_ns}/{gw_name}"));
        let selector = WorkloadSelector {
            labels: t.gateway.spec.selector.clone(),
        };
        out.filters.push(envoy_filter(
            &ns,
            &name,
            annotations,
            Some(selector),
            patches,
            sp,
            false,
        ));
        for k in &contributors {
            if let Some(r) = out.reports.get_mut(k) {
                r.rendered.insert(format!("{ns}/{name}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;
    use meltemi_proto as pb;

    fn sp(host: &str, ns: &str) -> ServicePort {
        ServicePort {
            host: host.into(),
            namespace: ns.into(),
            source: Source {
                kind: "Service",
                api_version: "v1",
                namespace: ns.into(),
                name: "s".into(),
                uid: None,
            },
            vip: None,
            port: 20880,
            port_name: "tcp-dubbo".into(),
            target_port: 20880,
            protocol: pb::Protocol::Dubbo,
            workload_labels: BTreeMap::new(),
            endpoints: vec![],
            adapter_override: None,
            listen_port: None,
            export_to: vec![],
            mesh_external: false,
            gateways: vec![],
        }
    }

    #[test]
    fn server_hosts() {
        let s = sp("a.demo.svc.cluster.local", "demo");
        assert!(host_matches("*", "istio-system", &s));
        assert!(host_matches("*/a.demo.svc.cluster.local", "x", &s));
        assert!(host_matches("demo/*.svc.cluster.local", "x", &s));
        assert!(host_matches("./*", "demo", &s));
        assert!(!host_matches("./*", "istio-system", &s));
        assert!(!host_matches("other/*", "x", &s));
        assert!(!host_matches("b.demo.svc.cluster.local", "x", &s));
        assert!(!host_matches("*cluster.local", "x", &s));
    }
}
