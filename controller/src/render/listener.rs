//! One listener's filter config: the adapter that serves the port, the route table from the
//! MetaRouters naming its host, the clusters that need a bridge twin, the Istio metric labels, and
//! the config checked against the schema's own validation.

use std::collections::{BTreeMap, BTreeSet};

use meltemi_proto as pb;

use super::names::stat_prefix;
use super::output::{key_of, merge_problems, ObjectKey, ObjectReport, RenderError};
use crate::crd::MetaRouter;
use crate::inputs::{Adapter, AdapterChoice, Settings};
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

/// The route table of `sp` from the MetaRouters naming its host, and the routers that went in.
pub(super) fn route_table(
    sp: &ServicePort,
    routers: &[&MetaRouter],
    adapter: Adapter,
    cat: &Catalog<'_>,
    reports: &mut BTreeMap<ObjectKey, ObjectReport>,
) -> (Option<pb::RouteTable>, Vec<ObjectKey>) {
    let mut contributors = Vec::new();
    if routers.is_empty() {
        return (None, contributors);
    }
    let mut services = Vec::new();
    let mut version = 0u64;
    for mr in routers {
        let key = key_of("MetaRouter", &mr.metadata);
        let report = reports.entry(key.clone()).or_default();
        let mut p = Problems::default();
        if adapter == Adapter::Wasm {
            p.warn("spec", format!("host {} uses the wasm adapter (observe only): routes are not applied; annotate the service with meltemi.io/adapter: module", sp.host));
        } else if let Some(s) = routes::convert(mr, sp, cat, &mut p) {
            version = version.max(u64::try_from(mr.metadata.generation.unwrap_or(1)).unwrap_or(1));
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
    // tcp_proxy keeps the service's own cluster: requests routed there stay on the fast path,
    // every subset-routed request is detoured through its bridge twin.
    let table = pb::RouteTable {
        version,
        services,
        primary_cluster: sp.cluster(""),
        retry_budget: None,
    };
    (Some(table), contributors)
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
