//! The pure render: inputs -> EnvoyFilters (plus a report per route object for its status, and the
//! full route tables for the route endpoint). No I/O, no clock: same inputs, same output.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ObjectMeta;
use meltemi_proto as pb;
use serde_json::{json, Value};

use crate::crd::MetaRouter;
use crate::inputs::{Adapter, AdapterChoice, Inputs, Settings};
use crate::istio::{
    ConfigPatch, EnvoyFilter, EnvoyFilterSpec, FilterChainMatch, FilterMatch, ListenerMatch, Patch,
    PatchMatch, WorkloadSelector,
};
use crate::model::{service_ports, ServicePort};
use crate::routes::{self, Catalog, Problems};

/// Label on everything we render (the reconcile prunes by it).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meltemi");
/// Prefix of the bridge twin of an Istio cluster: a request the module sends elsewhere than the
/// connection's primary cluster goes by HTTP callout to `BRIDGE_PREFIX + cluster`, whose upstream
/// is the module's HTTP-to-TCP bridge.
pub const BRIDGE_PREFIX: &str = "meltemi-bridge|";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
pub const DYNAMIC_MODULE_FILTER: &str = "envoy.filters.network.dynamic_modules";
pub const WASM_FILTER: &str = "envoy.filters.network.wasm";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("invalid settings: {0}")]
    Settings(String),
    /// A rendered filter config failed the schema's own validation (a bug in the conversion).
    #[error("rendered config for {listener} is invalid: {errors}")]
    InvalidConfig { listener: String, errors: String },
}

/// Which route object a report is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectReport {
    pub generation: Option<i64>,
    pub problems: Problems,
    /// `namespace/name` of EnvoyFilters this object went into.
    pub rendered: BTreeSet<String>,
}

/// Everything one render produces.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub filters: Vec<EnvoyFilter>,
    pub reports: BTreeMap<ObjectKey, ObjectReport>,
    /// stat prefix -> the full route table of that listener (served by the route endpoint).
    pub route_tables: BTreeMap<String, pb::RouteTable>,
    /// One entry per service port rendered (the bootstrap uses them).
    pub listeners: Vec<ListenerPlan>,
}

/// What goes in front of one service port, independent of Istio or bootstrap packaging.
#[derive(Clone, Debug)]
pub struct ListenerPlan {
    pub service: ServicePort,
    pub adapter: Adapter,
    /// Outbound filter config.
    pub config: pb::Config,
    /// Clusters that need a bridge twin (routing only).
    pub bridged_clusters: BTreeSet<String>,
    /// Subsets of the host (DestinationRules): name -> labels.
    pub subsets: BTreeMap<String, BTreeMap<String, String>>,
}

/// The render the brief names: EnvoyFilters only.
pub fn render(inputs: &Inputs) -> Result<Vec<EnvoyFilter>, RenderError> {
    render_all(inputs).map(|r| r.filters)
}

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

fn check_settings(s: &Settings) -> Result<(), RenderError> {
    if s.root_namespace.is_empty() {
        return Err(RenderError::Settings("root namespace is empty".into()));
    }
    if s.module_name.is_empty()
        || !s
            .module_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(RenderError::Settings(format!(
            "module name {:?} must be [A-Za-z0-9_-]+",
            s.module_name
        )));
    }
    Ok(())
}

/// `[a-z0-9-]` only, no leading/trailing `-`: a DNS label piece.
pub fn dns_piece(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `[A-Za-z0-9_]` for stat names.
fn stat_piece(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn stat_prefix(direction: &str, sp: &ServicePort) -> String {
    format!("{direction}_{}_{}", sp.port, stat_piece(&sp.host))
}

/// Keeps names within the 253 characters of a DNS subdomain (a hash keeps them distinct).
fn object_name(base: String) -> String {
    if base.len() <= 253 {
        return base;
    }
    let h = fnv1a(base.as_bytes());
    format!("{}-{h:016x}", base[..236].trim_end_matches('-'))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn string_value(s: String) -> Value {
    json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": s})
}

/// Wraps a typed config in `udpa.type.v1.TypedStruct`, which istiod passes through without knowing
/// the type (dynamic-module configs are newer than many istiod releases); Envoy unwraps it.
pub fn typed_struct(type_url: &str, value: Value) -> Value {
    json!({
        "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
        "type_url": format!("type.googleapis.com/{type_url}"),
        "value": value,
    })
}

const DM_FILTER_TYPE: &str =
    "envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter";
const DM_BRIDGE_TYPE: &str = "envoy.extensions.upstreams.http.dynamic_modules.v3.Config";
const WASM_TYPE: &str = "envoy.extensions.filters.network.wasm.v3.Wasm";

/// The network filter entry carrying `cfg`. `wrap`: TypedStruct for the dynamic module (EnvoyFilter).
pub fn filter_value(adapter: Adapter, cfg: &pb::Config, settings: &Settings, wrap: bool) -> Value {
    match adapter {
        Adapter::Module => {
            let v = json!({
                "dynamic_module_config": {"name": settings.module_name},
                "filter_name": "meltemi",
                "filter_config": string_value(cfg.to_json()),
            });
            let typed = if wrap {
                typed_struct(DM_FILTER_TYPE, v)
            } else {
                let mut v = v;
                v["@type"] = json!(format!("type.googleapis.com/{DM_FILTER_TYPE}"));
                v
            };
            json!({"name": DYNAMIC_MODULE_FILTER, "typed_config": typed})
        }
        Adapter::Wasm => json!({
            "name": WASM_FILTER,
            "typed_config": {
                "@type": format!("type.googleapis.com/{WASM_TYPE}"),
                "config": {
                    "name": "meltemi",
                    "root_id": "meltemi",
                    "vm_config": {
                        "vm_id": "meltemi",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": settings.wasm_path}},
                    },
                    "configuration": string_value(cfg.to_json()),
                },
            },
        }),
    }
}

/// The `upstream_config` of a bridge twin cluster.
pub fn bridge_upstream(
    protocol: pb::Protocol,
    cluster: &str,
    settings: &Settings,
    wrap: bool,
) -> Value {
    let cfg = pb::Config {
        protocol: protocol as i32,
        stat_prefix: format!("bridge_{}", stat_piece(cluster)),
        ..Default::default()
    };
    let v = json!({
        "dynamic_module_config": {"name": settings.module_name},
        "bridge_name": "meltemi",
        "bridge_config": string_value(cfg.to_json()),
    });
    let typed = if wrap {
        typed_struct(DM_BRIDGE_TYPE, v)
    } else {
        let mut v = v;
        v["@type"] = json!(format!("type.googleapis.com/{DM_BRIDGE_TYPE}"));
        v
    };
    json!({"name": "envoy.upstreams.http.dynamic_modules", "typed_config": typed})
}

/// Bridge twin of an Istio cluster inside a sidecar: same endpoints (Istio's EDS service name),
/// the module's bridge as upstream.
fn bridge_cluster_patch(cluster: &str, protocol: pb::Protocol, settings: &Settings) -> ConfigPatch {
    ConfigPatch {
        apply_to: "CLUSTER".into(),
        match_: PatchMatch {
            context: "SIDECAR_OUTBOUND".into(),
            ..Default::default()
        },
        patch: Patch {
            operation: "ADD".into(),
            value: json!({
                "name": format!("{BRIDGE_PREFIX}{cluster}"),
                "type": "EDS",
                "connect_timeout": "10s",
                "eds_cluster_config": {
                    "service_name": cluster,
                    "eds_config": {"ads": {}, "resource_api_version": "V3"},
                },
                "upstream_config": bridge_upstream(protocol, cluster, settings, true),
            }),
        },
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

fn key_of(kind: &'static str, meta: &ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        name: meta.name.clone().unwrap_or_default(),
    }
}

/// The FQDNs a route's host may mean: itself, and for Kubernetes short names (`svc`, `svc.ns`)
/// the service's FQDN.
fn host_candidates(pattern: &str, ns: &str, domain: &str) -> Vec<String> {
    let mut v = vec![pattern.to_string()];
    match pattern.matches('.').count() {
        0 => v.push(format!("{pattern}.{ns}.svc.{domain}")),
        1 => v.push(format!("{pattern}.svc.{domain}")),
        _ => {}
    }
    v
}

/// Renders everything.
pub fn render_all(inputs: &Inputs) -> Result<Rendered, RenderError> {
    let settings = &inputs.settings;
    check_settings(settings)?;
    let ports = service_ports(inputs);
    let cat = catalog(inputs, &ports);
    let domain = settings.cluster_domain.as_str();
    let mut out = Rendered::default();

    // Route objects by the hosts they name; every object gets a report, even if it matches nothing.
    let mut routers_by_host: BTreeMap<&str, Vec<&MetaRouter>> = BTreeMap::new();
    let mut sorted_routers: Vec<&MetaRouter> = inputs.meta_routers.iter().collect();
    sorted_routers.sort_by_key(|m| key_of("MetaRouter", &m.metadata));
    for mr in sorted_routers {
        let key = key_of("MetaRouter", &mr.metadata);
        let report = out.reports.entry(key.clone()).or_default();
        report.generation = mr.metadata.generation;
        let mut matched = false;
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
                matched = true;
                routers_by_host
                    .entry(sp.host.as_str())
                    .or_default()
                    .push(mr);
            }
        }
        if mr.spec.hosts.is_empty() {
            report.problems.error("spec.hosts", "required");
        }
        let _ = matched;
    }
    for rs in &inputs.redis_services {
        let report = out
            .reports
            .entry(key_of("RedisService", &rs.metadata))
            .or_default();
        report.generation = rs.metadata.generation;
        report.problems.warn("spec", "accepted; Redis traffic is observed (commands, latency) but RedisService routing, auth and faults are not applied by Meltemi yet");
    }
    for rd in &inputs.redis_destinations {
        let report = out
            .reports
            .entry(key_of("RedisDestination", &rd.metadata))
            .or_default();
        report.generation = rd.metadata.generation;
        report.problems.warn(
            "spec",
            "accepted; RedisDestination settings are not applied by Meltemi yet",
        );
    }

    let mut subsets_by_host: BTreeMap<&str, BTreeMap<String, BTreeMap<String, String>>> =
        BTreeMap::new();
    for dr in &inputs.destination_rules {
        let e = subsets_by_host.entry(dr.spec.host.as_str()).or_default();
        for s in &dr.spec.subsets {
            e.entry(s.name.clone()).or_insert_with(|| s.labels.clone());
        }
    }
    let subsets_of = |host: &str| subsets_by_host.get(host).cloned().unwrap_or_default();

    for sp in &ports {
        let routers = routers_by_host
            .get(sp.host.as_str())
            .cloned()
            .unwrap_or_default();
        let adapter = sp.adapter_override.unwrap_or(match settings.adapter {
            AdapterChoice::Wasm => Adapter::Wasm,
            AdapterChoice::Module => Adapter::Module,
            AdapterChoice::Auto if routers.is_empty() => Adapter::Wasm,
            AdapterChoice::Auto => Adapter::Module,
        });
        let prefix = stat_prefix("outbound", sp);
        let mut table: Option<pb::RouteTable> = None;
        let mut contributors = Vec::new();
        if !routers.is_empty() {
            let mut services = Vec::new();
            let mut version = 0u64;
            for mr in &routers {
                let key = key_of("MetaRouter", &mr.metadata);
                let report = out.reports.entry(key.clone()).or_default();
                if adapter == Adapter::Wasm {
                    report.problems.warn("spec", format!("host {} uses the wasm adapter (observe only): routes are not applied; annotate the service with meltemi.io/adapter: module", sp.host));
                    continue;
                }
                let mut p = Problems::default();
                if let Some(s) = routes::convert(mr, sp, &cat, &mut p) {
                    version = version
                        .max(u64::try_from(mr.metadata.generation.unwrap_or(1)).unwrap_or(1));
                    services.push(s);
                    contributors.push(key);
                }
                report.problems.errors.extend(p.errors);
                report.problems.warnings.extend(p.warnings);
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
            if !services.is_empty() {
                // tcp_proxy keeps the service's own cluster: requests routed there stay on the
                // fast path, every subset-routed request is detoured through its bridge twin.
                table = Some(pb::RouteTable {
                    version,
                    services,
                    primary_cluster: sp.cluster(""),
                });
            }
        }
        let routing = table.is_some();
        let bridged: BTreeSet<String> = match &table {
            None => BTreeSet::new(),
            Some(t) => {
                // Every subset of the host and every cluster a route names: stable across route
                // edits within the host, so edits need no new cluster.
                let mut set: BTreeSet<String> = std::iter::once(sp.cluster(""))
                    .chain(subsets_of(&sp.host).keys().map(|s| sp.cluster(s)))
                    .collect();
                for s in &t.services {
                    for r in &s.routes {
                        if let Some(a) = &r.action {
                            set.extend(
                                std::iter::once(a.cluster.clone()).filter(|c| !c.is_empty()),
                            );
                            set.extend(a.weighted_clusters.iter().map(|w| w.cluster.clone()));
                        }
                        if let Some(m) = &r.mirror {
                            set.insert(m.cluster.clone());
                        }
                    }
                }
                set
            }
        };
        let mut config = pb::Config {
            protocol: sp.protocol as i32,
            stat_prefix: prefix.clone(),
            access_log: settings.access_log,
            on_decode_error: if routing {
                pb::OnDecodeError::Close
            } else {
                pb::OnDecodeError::Passthrough
            } as i32,
            max_frame_bytes: 0,
            routes: table.clone(),
            route_discovery: None,
            methods: Vec::new(),
            istio_metrics: istio_metrics(settings, sp, "source"),
        };
        if let (Some(t), Some(cluster)) = (&table, &settings.route_discovery_cluster) {
            out.route_tables.insert(prefix.clone(), t.clone());
            // The listener carries an empty table; the module fetches the current one. Route edits
            // then change no listener, so no connection drains.
            config.routes = Some(pb::RouteTable {
                version: 0,
                services: Vec::new(),
                primary_cluster: t.primary_cluster.clone(),
            });
            config.route_discovery = Some(pb::RouteDiscovery {
                cluster: cluster.clone(),
                path: format!("/routes/v1/{prefix}"),
                refresh_interval_ms: settings.route_refresh_ms,
            });
        } else if let Some(t) = &table {
            out.route_tables.insert(prefix.clone(), t.clone());
        }
        pb::validate_with(&config, &routes::check_regex).map_err(|errs| {
            RenderError::InvalidConfig {
                listener: prefix.clone(),
                errors: errs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;

        // Outbound EnvoyFilter.
        let listener_name = match &sp.vip {
            Some(vip) => format!("{vip}_{}", sp.port),
            None => format!("0.0.0.0_{}", sp.port),
        };
        let mut patches = vec![ConfigPatch {
            apply_to: "NETWORK_FILTER".into(),
            match_: PatchMatch {
                context: "SIDECAR_OUTBOUND".into(),
                listener: Some(ListenerMatch {
                    name: Some(listener_name),
                    port_number: None,
                    filter_chain: Some(FilterChainMatch {
                        destination_port: None,
                        filter: Some(FilterMatch {
                            name: TCP_PROXY.into(),
                        }),
                    }),
                }),
                cluster: None,
            },
            patch: Patch {
                operation: "INSERT_BEFORE".into(),
                value: filter_value(adapter, &config, settings, true),
            },
        }];
        patches.extend(
            bridged
                .iter()
                .map(|c| bridge_cluster_patch(c, sp.protocol, settings)),
        );
        let exported_locally =
            routers.iter().any(|m| m.spec.export_to == ["."]) || sp.export_to == ["."];
        let out_ns = if exported_locally {
            sp.namespace.clone()
        } else {
            settings.root_namespace.clone()
        };
        let out_name = object_name(format!(
            "meltemi-outbound-{}-{}",
            dns_piece(&sp.host),
            sp.port
        ));
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
        out.filters.push(envoy_filter(
            &out_ns,
            &out_name,
            annotations.clone(),
            None,
            patches,
            sp,
            out_ns == sp.namespace,
        ));
        for k in &contributors {
            if let Some(r) = out.reports.get_mut(k) {
                r.rendered.insert(format!("{out_ns}/{out_name}"));
            }
        }

        // Inbound EnvoyFilter: server side, observe only, on the workloads behind the service.
        if settings.inbound && !sp.workload_labels.is_empty() {
            let in_cfg = pb::Config {
                protocol: sp.protocol as i32,
                stat_prefix: stat_prefix("inbound", sp),
                access_log: settings.access_log,
                on_decode_error: pb::OnDecodeError::Passthrough as i32,
                max_frame_bytes: 0,
                routes: None,
                route_discovery: None,
                methods: Vec::new(),
                istio_metrics: istio_metrics(settings, sp, "destination"),
            };
            let in_adapter = if adapter == Adapter::Module
                && sp.adapter_override.is_none()
                && settings.adapter == AdapterChoice::Auto
            {
                // Routing needs the module on the client side only; the server side observes.
                Adapter::Wasm
            } else {
                adapter
            };
            let patch = ConfigPatch {
                apply_to: "NETWORK_FILTER".into(),
                match_: PatchMatch {
                    context: "SIDECAR_INBOUND".into(),
                    listener: Some(ListenerMatch {
                        name: Some("virtualInbound".into()),
                        port_number: None,
                        filter_chain: Some(FilterChainMatch {
                            destination_port: Some(sp.target_port),
                            filter: Some(FilterMatch {
                                name: TCP_PROXY.into(),
                            }),
                        }),
                    }),
                    cluster: None,
                },
                patch: Patch {
                    operation: "INSERT_BEFORE".into(),
                    value: filter_value(in_adapter, &in_cfg, settings, true),
                },
            };
            let in_name = object_name(format!(
                "meltemi-inbound-{}-{}",
                dns_piece(&sp.source.name),
                sp.port
            ));
            let selector = WorkloadSelector {
                labels: sp.workload_labels.clone(),
            };
            out.filters.push(envoy_filter(
                &sp.namespace,
                &in_name,
                annotations,
                Some(selector),
                vec![patch],
                sp,
                true,
            ));
        }

        out.listeners.push(ListenerPlan {
            service: sp.clone(),
            adapter,
            config,
            bridged_clusters: bridged,
            subsets: subsets_of(&sp.host),
        });
    }
    out.filters.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    out.filters.dedup_by(|b, a| {
        a.metadata.namespace == b.metadata.namespace && a.metadata.name == b.metadata.name
    });
    Ok(out)
}

fn envoy_filter(
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

/// Multi-document YAML of the filters (what `meltemi render` prints).
pub fn to_yaml(filters: &[EnvoyFilter]) -> String {
    let mut out = String::new();
    for f in filters {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(f).unwrap_or_default());
    }
    out
}
