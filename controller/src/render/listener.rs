//! One listener's filter config: the adapter that serves the port, the route table from the
//! MetaRouters or the VirtualService naming its host (which one: [`pick_sources`]), the clusters
//! that need a bridge twin, the Istio metric labels, and the config checked against the schema's
//! own validation.

use std::collections::{BTreeMap, BTreeSet};

use meltemi_proto as pb;

use super::names::stat_prefix;
use super::output::{key_of, merge_problems, ObjectKey, ObjectReport, RenderError};
use crate::crd::MetaRouter;
use crate::inputs::{Adapter, AdapterChoice, Settings};
use crate::istio::VirtualService;
use crate::model::ServicePort;
use crate::routes::{self, Catalog, Problems};

/// The Istio metric labels the Service gives (`reporter` by side); workload labels stay
/// `unknown` because one EnvoyFilter serves every sidecar.
fn istio_metrics(
    settings: &Settings,
    sp: &ServicePort,
    reporter: &str,
) -> Option<pb::IstioMetrics> {
    let valid = |v: &str| meltemi_proto::istio_tag_value_problem(v).is_none();
    let name = sp.host.split('.').next().unwrap_or_default();
    settings.istio_metrics.then(|| pb::IstioMetrics {
        enabled: true,
        reporter: reporter.into(),
        destination_service: if valid(&sp.host) {
            sp.host.clone()
        } else {
            String::new()
        },
        destination_service_name: if valid(name) {
            name.into()
        } else {
            String::new()
        },
        destination_service_namespace: if valid(&sp.namespace) {
            sp.namespace.clone()
        } else {
            String::new()
        },
        ..Default::default()
    })
}

pub(super) fn resolve_adapter(sp: &ServicePort, no_routers: bool, settings: &Settings) -> Adapter {
    sp.adapter_override.unwrap_or(match settings.adapter {
        AdapterChoice::Wasm => Adapter::Wasm,
        AdapterChoice::Module => Adapter::Module,
        AdapterChoice::Auto if no_routers => Adapter::Wasm,
        AdapterChoice::Auto => Adapter::Module,
    })
}

/// A route object that routes a host.
#[derive(Clone, Copy, Debug)]
pub(super) enum RouteSource<'a> {
    Meta(&'a MetaRouter),
    Virtual(&'a VirtualService),
}

impl RouteSource<'_> {
    pub(super) fn key(&self) -> ObjectKey {
        match self {
            RouteSource::Meta(m) => key_of("MetaRouter", &m.metadata),
            RouteSource::Virtual(v) => key_of("VirtualService", &v.metadata),
        }
    }

    fn generation(&self) -> Option<i64> {
        match self {
            RouteSource::Meta(m) => m.metadata.generation,
            RouteSource::Virtual(v) => v.metadata.generation,
        }
    }

    /// `exportTo: ["."]`: the outbound EnvoyFilter goes to the object's namespace.
    pub(super) fn exported_locally(&self) -> bool {
        match self {
            RouteSource::Meta(m) => m.spec.export_to == ["."],
            RouteSource::Virtual(v) => v.spec.export_to == ["."],
        }
    }
}

fn describe(k: &ObjectKey) -> String {
    format!("{} {}/{}", k.kind, k.namespace, k.name)
}

/// Which route objects route `sp` on the sidecars. One VirtualService per host: the first by
/// (namespace, name), as Aeraki used the first it listed. When MetaRouters and a VirtualService
/// both name the host, the port decides as it did in Aeraki, where the port name picked the
/// generator: a `tcp-metaprotocol-*` port went to the MetaProtocol proxy, configured from the
/// MetaRouter only; a `tcp-dubbo`/`tcp-thrift` port went to Envoy's `dubbo_proxy`/`thrift_proxy`,
/// configured from the VirtualService only. Every loser gets a warning naming the winner.
pub(super) fn pick_sources<'a>(
    sp: &ServicePort,
    routers: &[&'a MetaRouter],
    virtuals: &[&'a VirtualService],
    reports: &mut BTreeMap<ObjectKey, ObjectReport>,
) -> Vec<RouteSource<'a>> {
    let at = format!("{} port {} ({})", sp.host, sp.port, sp.port_name);
    let mut warn = |loser: ObjectKey, message: String| {
        let r = reports.entry(loser).or_default();
        let p = crate::routes::Problem {
            path: "spec.hosts".into(),
            message,
        };
        if !r.problems.warnings.contains(&p) {
            r.problems.warnings.push(p);
        }
    };
    let vs = virtuals.first().copied();
    if let Some(first) = vs {
        let winner = describe(&RouteSource::Virtual(first).key());
        for other in &virtuals[1..] {
            warn(
                RouteSource::Virtual(other).key(),
                format!("not applied to {at}: {winner} routes it (one VirtualService per host: the first by namespace/name)"),
            );
        }
    }
    let metas = || routers.iter().map(|m| RouteSource::Meta(m));
    let Some(vs) = vs else {
        return metas().collect();
    };
    if routers.is_empty() {
        return vec![RouteSource::Virtual(vs)];
    }
    let why = "as in Aeraki, a tcp-metaprotocol-* port is routed by its MetaRouter, a tcp-dubbo/tcp-thrift port by its VirtualService";
    if sp.port_name.starts_with("tcp-metaprotocol-") {
        let winners: Vec<String> = metas().map(|m| describe(&m.key())).collect();
        warn(
            RouteSource::Virtual(vs).key(),
            format!(
                "not applied to {at}: {} routes it ({why})",
                winners.join(", ")
            ),
        );
        metas().collect()
    } else {
        let winner = describe(&RouteSource::Virtual(vs).key());
        for m in metas() {
            warn(
                m.key(),
                format!("not applied to {at}: {winner} routes it ({why})"),
            );
        }
        vec![RouteSource::Virtual(vs)]
    }
}

/// The route table of `sp` from `sources`, and the objects that went in.
///
/// `fast_path`: make the likeliest destination the primary cluster (sidecars, whose `tcp_proxy`
/// gets that cluster by a patch). A gateway keeps the service's cluster: its `tcp_proxy` is the
/// one the gateway's own TCP route configures.
pub(super) fn route_table(
    sp: &ServicePort,
    sources: &[RouteSource<'_>],
    adapter: Adapter,
    fast_path: bool,
    cat: &Catalog<'_>,
    reports: &mut BTreeMap<ObjectKey, ObjectReport>,
) -> (Option<pb::RouteTable>, Vec<ObjectKey>) {
    let mut contributors = Vec::new();
    if sources.is_empty() {
        return (None, contributors);
    }
    let mut services = Vec::new();
    let mut version = 0u64;
    for src in sources {
        let key = src.key();
        let report = reports.entry(key.clone()).or_default();
        let mut p = Problems::default();
        let converted = if adapter == Adapter::Wasm {
            p.warn("spec", format!("host {} uses the wasm adapter (observe only): routes are not applied; annotate the service with meltemi.io/adapter: module", sp.host));
            None
        } else {
            match src {
                RouteSource::Meta(mr) => routes::convert(mr, sp, cat, &mut p),
                RouteSource::Virtual(vs) => routes::convert_virtual_service(vs, sp, cat, &mut p),
            }
        };
        if let Some(s) = converted {
            version = version.max(u64::try_from(src.generation().unwrap_or(1)).unwrap_or(1));
            services.push(s);
            contributors.push(key);
        }
        merge_problems(&mut report.problems, p);
    }
    if services.len() > 1 {
        // Several MetaRouters for one host: their routes are tried in (namespace, name) order.
        let merged = pb::ServiceRoutes {
            name: "*".into(),
            rate_limit: services.iter().find_map(|s| s.rate_limit.clone()),
            routes: services.into_iter().flat_map(|s| s.routes).collect(),
        };
        services = vec![merged];
    }
    if services.is_empty() {
        return (None, contributors);
    }
    let mut table = pb::RouteTable {
        version,
        services,
        primary_cluster: sp.cluster(""),
        retry_budget: None,
    };
    if fast_path {
        set_primary(&mut table, sp);
    }
    (Some(table), contributors)
}

/// Name of the catch-all route the controller appends when the primary is not the service's
/// cluster: requests that match no route go where Istio sends them (all endpoints). Its stats
/// are the ones the filter keeps for unmatched requests (`route.default.*`).
pub const DEFAULT_ROUTE: &str = "default";

/// Whether a route matches every request (no method, no attribute condition).
fn unconditional(r: &pb::Route) -> bool {
    r.r#match
        .as_ref()
        .is_none_or(|m| m.method.is_none() && m.attributes.is_empty())
}

/// The heaviest destination of a route (the first one listed on a tie).
fn heaviest(r: &pb::Route) -> Option<&str> {
    let a = r.action.as_ref()?;
    if !a.cluster.is_empty() {
        return Some(&a.cluster);
    }
    let mut best: Option<&pb::WeightedCluster> = None;
    for w in &a.weighted_clusters {
        if best.is_none_or(|b| w.weight > b.weight) {
            best = Some(w);
        }
    }
    best.map(|w| w.cluster.as_str())
}

/// The primary cluster of a rendered table: the destination most requests are expected to take,
/// a static guess (the controller sees no traffic). The table's default route decides: the first
/// route without conditions (it takes every request the routes before it leave), else the first
/// route (Aeraki's examples pin or split the one method their clients call); its destination, or
/// its heaviest weight. No route: the service's cluster. When the primary is not the service's
/// cluster and no route catches every request, a catch-all route to the service's cluster is
/// appended, so a request that matches no route goes where Istio sends it (by detour).
pub(super) fn set_primary(t: &mut pb::RouteTable, sp: &ServicePort) {
    let all = sp.cluster("");
    let Some(s) = t.services.first_mut() else {
        return;
    };
    let default_route = s
        .routes
        .iter()
        .find(|r| unconditional(r))
        .or(s.routes.first());
    let primary = default_route.and_then(heaviest).unwrap_or(&all).to_owned();
    if primary != all && !s.routes.iter().any(unconditional) {
        let taken: BTreeSet<&str> = s.routes.iter().map(|r| r.name.as_str()).collect();
        let name = std::iter::once(DEFAULT_ROUTE.to_owned())
            .chain((1..).map(|i| format!("{DEFAULT_ROUTE}-{i}")))
            .find(|n| !taken.contains(n.as_str()))
            .unwrap_or_default();
        s.routes.push(pb::Route {
            name,
            action: Some(pb::RouteAction::cluster(all)),
            ..Default::default()
        });
    }
    t.primary_cluster = primary;
}

/// Clusters that need a bridge twin: every subset of the host and every cluster a route names
/// (stable across route edits within the host, so edits need no new cluster).
pub(super) fn bridged_clusters(
    sp: &ServicePort,
    table: Option<&pb::RouteTable>,
    subsets: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeSet<String> {
    let Some(t) = table else {
        return BTreeSet::new();
    };
    let mut set: BTreeSet<String> = std::iter::once(sp.cluster(""))
        .chain(subsets.keys().map(|s| sp.cluster(s)))
        .collect();
    for s in &t.services {
        for r in &s.routes {
            if let Some(a) = &r.action {
                set.extend(std::iter::once(a.cluster.clone()).filter(|c| !c.is_empty()));
                set.extend(a.weighted_clusters.iter().map(|w| w.cluster.clone()));
            }
            if let Some(m) = &r.mirror {
                set.insert(m.cluster.clone());
            }
        }
    }
    set
}

/// The filter config of one listener (`prefix` is its stat prefix and route-table key), checked
/// against the schema's own validation.
pub(super) fn listener_config(
    sp: &ServicePort,
    prefix: &str,
    table: Option<pb::RouteTable>,
    settings: &Settings,
    route_tables: &mut BTreeMap<String, pb::RouteTable>,
) -> Result<pb::Config, RenderError> {
    let mut config = pb::Config {
        protocol: sp.protocol as i32,
        stat_prefix: prefix.to_string(),
        access_log: settings.access_log,
        on_decode_error: if table.is_some() {
            pb::OnDecodeError::Close
        } else {
            pb::OnDecodeError::Passthrough
        } as i32,
        max_frame_bytes: 0,
        max_held_bytes: 0,
        worker_held_budget_bytes: 0,
        routes: None,
        route_discovery: None,
        methods: Vec::new(),
        istio_metrics: istio_metrics(settings, sp, "source"),
        redis: None,
    };
    if let Some(t) = table {
        if let Some(cluster) = &settings.route_discovery_cluster {
            // The listener carries an empty table; the module fetches the current one. Route
            // edits then change no listener, so no connection drains.
            config.routes = Some(pb::RouteTable {
                version: 0,
                services: Vec::new(),
                primary_cluster: t.primary_cluster.clone(),
                retry_budget: None,
            });
            config.route_discovery = Some(pb::RouteDiscovery {
                cluster: cluster.clone(),
                path: format!("/routes/v1/{prefix}"),
                refresh_interval_ms: settings.route_refresh_ms,
            });
        } else {
            config.routes = Some(t.clone());
        }
        route_tables.insert(prefix.to_string(), t);
    }
    pb::validate_with(&config, &routes::check_regex).map_err(|errs| {
        RenderError::InvalidConfig {
            listener: prefix.to_string(),
            errors: errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        }
    })?;
    Ok(config)
}

/// The filter config of the inbound (server side) listener of `sp`: observe only.
pub(super) fn inbound_config(sp: &ServicePort, settings: &Settings) -> pb::Config {
    pb::Config {
        protocol: sp.protocol as i32,
        stat_prefix: stat_prefix("inbound", sp),
        access_log: settings.access_log,
        on_decode_error: pb::OnDecodeError::Passthrough as i32,
        max_frame_bytes: 0,
        max_held_bytes: 0,
        worker_held_budget_bytes: 0,
        routes: None,
        route_discovery: None,
        methods: Vec::new(),
        istio_metrics: istio_metrics(settings, sp, "destination"),
        redis: None,
    }
}

/// The adapter on the server side of `sp` when the client side has `adapter`.
pub(super) fn inbound_adapter(adapter: Adapter, sp: &ServicePort, settings: &Settings) -> Adapter {
    if adapter == Adapter::Module
        && sp.adapter_override.is_none()
        && settings.adapter == AdapterChoice::Auto
    {
        // Routing needs the module on the client side only; the server side observes.
        Adapter::Wasm
    } else {
        adapter
    }
}
