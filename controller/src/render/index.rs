//! What the passes look up, built once per render before any EnvoyFilter: the catalog of service
//! ports, the MetaRouters and the VirtualServices by the hosts they route (a MetaRouter host naming
//! no routable port is a problem of the router; a VirtualService naming no Dubbo/Thrift host is
//! not ours and gets no report), and the DestinationRules by host.

use std::collections::BTreeMap;

use meltemi_proto as pb;

use super::gateway;
use super::output::{key_of, ObjectKey, ObjectReport};
use crate::crd::MetaRouter;
use crate::inputs::Inputs;
use crate::istio::{DestinationRuleSpec, VirtualService};
use crate::model::ServicePort;
use crate::routes::Catalog;

/// MetaRouters by the host they route, in (namespace, name) order.
type RoutersByHost<'a> = BTreeMap<&'a str, Vec<&'a MetaRouter>>;
/// Each router with the service ports it routes.
type Routed<'a> = Vec<(&'a MetaRouter, Vec<&'a ServicePort>)>;

pub(super) struct Index<'a> {
    pub cat: Catalog<'a>,
    /// MetaRouters applying to the sidecars, by the host they route, in (namespace, name) order.
    pub routers_by_host: RoutersByHost<'a>,
    /// Each router with the service ports it routes (the gateways pass needs them too).
    pub routed: Routed<'a>,
    /// VirtualServices applying to the sidecars, by the Dubbo/Thrift host they name, in
    /// (namespace, name) order.
    pub virtuals_by_host: BTreeMap<&'a str, Vec<&'a VirtualService>>,
    /// Host -> subset name -> labels (the first DestinationRule naming a subset wins).
    pub subsets_by_host: BTreeMap<&'a str, BTreeMap<String, BTreeMap<String, String>>>,
    /// Host -> the first DestinationRule for it.
    pub drs_by_host: BTreeMap<&'a str, &'a DestinationRuleSpec>,
}

impl<'a> Index<'a> {
    /// Indexes `inputs` and `ports`; every MetaRouter gets a report in `reports`, even if it
    /// matches nothing.
    pub fn new(
        inputs: &'a Inputs,
        ports: &'a [ServicePort],
        reports: &mut BTreeMap<ObjectKey, ObjectReport>,
    ) -> Self {
        let cat = catalog(inputs, ports);
        let (routers_by_host, routed) = match_routers(inputs, &cat, reports);
        let virtuals_by_host = match_virtual_services(inputs, &cat, reports);
        let mut subsets_by_host: BTreeMap<&str, BTreeMap<String, BTreeMap<String, String>>> =
            BTreeMap::new();
        for dr in &inputs.destination_rules {
            let e = subsets_by_host.entry(dr.spec.host.as_str()).or_default();
            for s in &dr.spec.subsets {
                e.entry(s.name.clone()).or_insert_with(|| s.labels.clone());
            }
        }
        let mut drs_by_host: BTreeMap<&str, &DestinationRuleSpec> = BTreeMap::new();
        for dr in &inputs.destination_rules {
            drs_by_host.entry(dr.spec.host.as_str()).or_insert(&dr.spec);
        }
        Index {
            cat,
            routers_by_host,
            routed,
            virtuals_by_host,
            subsets_by_host,
            drs_by_host,
        }
    }
}

fn catalog<'a>(inputs: &'a Inputs, ports: &'a [ServicePort]) -> Catalog<'a> {
    let mut cat = Catalog::default();
    for sp in ports {
        cat.ports.entry(sp.host.as_str()).or_default().push(sp);
    }
    for dr in &inputs.destination_rules {
        let set = cat.subsets.entry(dr.spec.host.as_str()).or_default();
        for s in &dr.spec.subsets {
            set.insert(s.name.as_str());
        }
    }
    cat
}

/// The FQDNs a route's host may mean: itself, and for Kubernetes short names (`svc`, `svc.ns`)
/// the service's FQDN.
pub(super) fn host_candidates(pattern: &str, ns: &str, domain: &str) -> Vec<String> {
    let mut v = vec![pattern.to_string()];
    match pattern.matches('.').count() {
        0 => v.push(format!("{pattern}.{ns}.svc.{domain}")),
        1 => v.push(format!("{pattern}.svc.{domain}")),
        _ => {}
    }
    v
}

/// The MetaRouters by the sidecar hosts they route, and each router with its service ports; a
/// host naming no port, or a port MetaRouter cannot route, is an error in the router's report.
fn match_routers<'a>(
    inputs: &'a Inputs,
    cat: &Catalog<'a>,
    reports: &mut BTreeMap<ObjectKey, ObjectReport>,
) -> (RoutersByHost<'a>, Routed<'a>) {
    let domain = inputs.settings.cluster_domain.as_str();
    let mut routers_by_host = RoutersByHost::new();
    let mut sorted_routers: Vec<&MetaRouter> = inputs.meta_routers.iter().collect();
    // Same order as `key_of`, without building a key per comparison.
    fn order(m: &MetaRouter) -> (&str, &str) {
        (
            m.metadata.namespace.as_deref().unwrap_or("default"),
            m.metadata.name.as_deref().unwrap_or(""),
        )
    }
    sorted_routers.sort_by(|a, b| order(a).cmp(&order(b)));
    let mut routed = Routed::new();
    for mr in sorted_routers {
        let key = key_of("MetaRouter", &mr.metadata);
        let report = reports.entry(key.clone()).or_default();
        report.generation = mr.metadata.generation;
        export_to_warning(&mr.spec.export_to, &mut report.problems);
        let mut matched = Vec::new();
        for (i, h) in mr.spec.hosts.iter().enumerate() {
            let hits: Vec<&ServicePort> = host_candidates(h, &key.namespace, domain)
                .iter()
                .filter_map(|c| cat.ports.get(c.as_str()))
                .next()
                .cloned()
                .unwrap_or_default();
            if hits.is_empty() {
                report.problems.error(format!("spec.hosts[{i}]"), format!("no ServiceEntry/Service port named tcp-dubbo/tcp-thrift (or tcp-metaprotocol-*) for host {h:?}"));
            }
            for sp in hits {
                if !matches!(sp.protocol, pb::Protocol::Dubbo | pb::Protocol::Thrift) {
                    report.problems.error(
                        format!("spec.hosts[{i}]"),
                        format!(
                            "host {h:?} port {} speaks {}; MetaRouter routes dubbo and thrift",
                            sp.port,
                            sp.protocol.as_str_name()
                        ),
                    );
                    continue;
                }
                matched.push(sp);
                if gateway::applies_to_mesh(mr) {
                    routers_by_host
                        .entry(sp.host.as_str())
                        .or_default()
                        .push(mr);
                }
            }
        }
        if mr.spec.hosts.is_empty() {
            report.problems.error("spec.hosts", "required");
        }
        routed.push((mr, matched));
    }
    (routers_by_host, routed)
}

/// `exportTo` other than `[]`, `["*"]` (every namespace: the root namespace) or `["."]` (the
/// object's namespace): a namespace list, which the render does not apply.
fn export_to_warning(export_to: &[String], p: &mut crate::routes::Problems) {
    if !(export_to.is_empty() || export_to == ["*"] || export_to == ["."]) {
        p.warn(
            "spec.exportTo",
            format!("{export_to:?}: not applied: only [\".\"] (this namespace) and [\"*\"] are; the EnvoyFilter goes to the root namespace, seen by every namespace"),
        );
    }
}

/// The VirtualServices by the Dubbo/Thrift sidecar hosts they name. Only those naming such a host
/// are ours (a VirtualService of an HTTP service is Istio's alone): they get a report. Istio's
/// `gateways` semantics hold: empty or containing `mesh` means the sidecars; a list without `mesh`
/// binds the routes to gateways only, which Meltemi does not apply (reported).
fn match_virtual_services<'a>(
    inputs: &'a Inputs,
    cat: &Catalog<'a>,
    reports: &mut BTreeMap<ObjectKey, ObjectReport>,
) -> BTreeMap<&'a str, Vec<&'a VirtualService>> {
    let domain = inputs.settings.cluster_domain.as_str();
    let mut sorted: Vec<&VirtualService> = inputs.virtual_services.iter().collect();
    fn order(v: &VirtualService) -> (&str, &str) {
        (
            v.metadata.namespace.as_deref().unwrap_or("default"),
            v.metadata.name.as_deref().unwrap_or(""),
        )
    }
    sorted.sort_by(|a, b| order(a).cmp(&order(b)));
    let mut by_host: BTreeMap<&str, Vec<&VirtualService>> = BTreeMap::new();
    for vs in sorted {
        let key = key_of("VirtualService", &vs.metadata);
        let hosts: Vec<&str> = vs
            .spec
            .hosts
            .iter()
            .flat_map(|h| {
                host_candidates(h, &key.namespace, domain)
                    .iter()
                    .find_map(|c| cat.ports.get_key_value(c.as_str()))
                    .map(|(host, sps)| (*host, sps))
            })
            .filter(|(_, sps)| {
                sps.iter()
                    .any(|sp| matches!(sp.protocol, pb::Protocol::Dubbo | pb::Protocol::Thrift))
            })
            .map(|(host, _)| host)
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let report = reports.entry(key).or_default();
        report.generation = vs.metadata.generation;
        export_to_warning(&vs.spec.export_to, &mut report.problems);
        let gateways = &vs.spec.gateways;
        let mesh = gateways.is_empty() || gateways.iter().any(|g| g == gateway::MESH);
        for (i, g) in gateways.iter().enumerate() {
            if g != gateway::MESH {
                report.problems.warn(
                    format!("spec.gateways[{i}]"),
                    format!("not applied: Meltemi routes VirtualServices on sidecars (\"mesh\") only; gateway routes come from MetaRouter spec.gateways (Gateway {g})"),
                );
            }
        }
        if !mesh {
            continue;
        }
        for h in hosts {
            let v = by_host.entry(h).or_default();
            if !v.iter().any(|x| std::ptr::eq(*x, vs)) {
                v.push(vs);
            }
        }
    }
    by_host
}
