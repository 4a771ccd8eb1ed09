//! The pure render: inputs -> EnvoyFilters (plus a report per route object for its status, and the
//! full route tables for the route endpoint). No I/O, no clock: same inputs, same output.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ObjectMeta;
use meltemi_proto as pb;
use serde_json::Value;

use crate::crd::MetaRouter;
use crate::inputs::{Adapter, AdapterChoice, Inputs, Settings};
use crate::istio::{
    ConfigPatch, DestinationRuleSpec, EnvoyFilter, EnvoyFilterSpec, FilterChainMatch, FilterMatch,
    ListenerMatch, Patch, PatchMatch, PatchValue, WorkloadSelector,
};
use crate::model::{service_ports, ServicePort};
use crate::mtls::{self, Transport};
use crate::routes::{self, Catalog, Problems};

pub(crate) mod gateway;

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

/// A JSON object from moved values. `json!` copies every interpolated `Value` through `Serialize`
/// (a deep copy of each nested typed config); at 10k services that copying dominated the render.
/// Inserted one by one: collecting sorts through a temporary `Vec` per object.
pub(crate) fn obj<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in entries {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

fn string_value(s: String) -> Value {
    obj([
        (
            "@type",
            "type.googleapis.com/google.protobuf.StringValue".into(),
        ),
        ("value", s.into()),
    ])
}

/// Wraps a typed config in `udpa.type.v1.TypedStruct`, which istiod passes through without knowing
/// the type (dynamic-module configs are newer than many istiod releases); Envoy unwraps it.
pub fn typed_struct(type_url: &str, value: Value) -> Value {
    obj([
        (
            "@type",
            "type.googleapis.com/udpa.type.v1.TypedStruct".into(),
        ),
        ("type_url", format!("type.googleapis.com/{type_url}").into()),
        ("value", value),
    ])
}

const DM_FILTER_TYPE: &str =
    "envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter";
const DM_BRIDGE_TYPE: &str = "envoy.extensions.upstreams.http.dynamic_modules.v3.Config";
const WASM_TYPE: &str = "envoy.extensions.filters.network.wasm.v3.Wasm";

/// `v` as the typed config of type `type_url`: TypedStruct-wrapped (`wrap`, for EnvoyFilters) or
/// with `@type` set (bootstrap).
fn typed(type_url: &str, mut v: Value, wrap: bool) -> Value {
    if wrap {
        return typed_struct(type_url, v);
    }
    if let Value::Object(m) = &mut v {
        m.insert(
            "@type".into(),
            format!("type.googleapis.com/{type_url}").into(),
        );
    }
    v
}

/// The network filter entry carrying `cfg`. `wrap`: TypedStruct for the dynamic module (EnvoyFilter).
pub fn filter_value(adapter: Adapter, cfg: &pb::Config, settings: &Settings, wrap: bool) -> Value {
    match adapter {
        Adapter::Module => module_entry(
            DYNAMIC_MODULE_FILTER,
            DM_FILTER_TYPE,
            ["filter_name", "filter_config"],
            cfg.to_json(),
            settings,
            wrap,
        ),
        Adapter::Wasm => {
            let vm_config = obj([
                ("vm_id", "meltemi".into()),
                ("runtime", "envoy.wasm.runtime.v8".into()),
                (
                    "code",
                    obj([(
                        "local",
                        obj([("filename", settings.wasm_path.as_str().into())]),
                    )]),
                ),
            ]);
            let config = obj([
                ("name", "meltemi".into()),
                ("root_id", "meltemi".into()),
                ("vm_config", vm_config),
                ("configuration", string_value(cfg.to_json())),
            ]);
            obj([
                ("name", WASM_FILTER.into()),
                (
                    "typed_config",
                    obj([
                        ("@type", format!("type.googleapis.com/{WASM_TYPE}").into()),
                        ("config", config),
                    ]),
                ),
            ])
        }
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
    module_entry(
        "envoy.upstreams.http.dynamic_modules",
        DM_BRIDGE_TYPE,
        ["bridge_name", "bridge_config"],
        cfg.to_json(),
        settings,
        wrap,
    )
}

/// An extension entry `{name, typed_config}` of the dynamic module: `keys` name the fields holding
/// the module's name for the extension (`meltemi`) and its JSON config.
fn module_entry(
    name: &str,
    type_url: &str,
    keys: [&str; 2],
    config_json: String,
    settings: &Settings,
    wrap: bool,
) -> Value {
    let v = obj([
        (
            "dynamic_module_config",
            obj([("name", settings.module_name.as_str().into())]),
        ),
        (keys[0], "meltemi".into()),
        (keys[1], string_value(config_json)),
    ]);
    obj([
        ("name", name.into()),
        ("typed_config", typed(type_url, v, wrap)),
    ])
}

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

/// Our filter `value` inserted before `tcp_proxy` in the listener `listener` of `context`.
fn before_tcp_proxy(context: &str, listener: ListenerMatch, value: Value) -> ConfigPatch {
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
fn twin_patches(
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

fn resolve_adapter(sp: &ServicePort, no_routers: bool, settings: &Settings) -> Adapter {
    sp.adapter_override.unwrap_or(match settings.adapter {
        AdapterChoice::Wasm => Adapter::Wasm,
        AdapterChoice::Module => Adapter::Module,
        AdapterChoice::Auto if no_routers => Adapter::Wasm,
        AdapterChoice::Auto => Adapter::Module,
    })
}

/// Appends `from` to `to`, skipping problems `to` already has (a router converted for a sidecar
/// and for a gateway reports each problem once).
fn merge_problems(to: &mut Problems, from: Problems) {
    for e in from.errors {
        if !to.errors.contains(&e) {
            to.errors.push(e);
        }
    }
    for w in from.warnings {
        if !to.warnings.contains(&w) {
            to.warnings.push(w);
        }
    }
}

/// The route table of `sp` from the MetaRouters naming its host, and the routers that went in.
fn route_table(
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
fn bridged_clusters(
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
fn listener_config(
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

/// Below this many service ports a render stays on one thread (spawning costs more than it saves).
const PARALLEL_MIN_PORTS: usize = 512;

/// Runs `f` over contiguous chunks of `ports`, on up to `available_parallelism` threads; results
/// in chunk order.
fn render_chunks<F>(ports: &[ServicePort], f: &F) -> Vec<Result<Rendered, RenderError>>
where
    F: Fn(&[ServicePort]) -> Result<Rendered, RenderError> + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || ports.len() < PARALLEL_MIN_PORTS {
        return vec![f(ports)];
    }
    let size = ports.len().div_ceil(threads);
    let (first, rest) = ports.split_at(size.min(ports.len()));
    std::thread::scope(|s| {
        let handles: Vec<_> = rest.chunks(size).map(|c| s.spawn(move || f(c))).collect();
        // The calling thread takes the first chunk: its allocator arena is already grown, a new
        // thread's arena grows page by page (`mprotect`), which showed in profiles.
        let mut out = vec![f(first)];
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
        );
        out
    })
}

/// Adds one chunk's output to `out` (reports merged: problems once each, in chunk order).
fn merge_part(out: &mut Rendered, part: Rendered) {
    out.filters.extend(part.filters);
    out.route_tables.extend(part.route_tables);
    out.listeners.extend(part.listeners);
    for (k, rep) in part.reports {
        let dst = out.reports.entry(k).or_default();
        merge_problems(&mut dst.problems, rep.problems);
        dst.rendered.extend(rep.rendered);
        dst.generation = dst.generation.or(rep.generation);
    }
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
    // Same order as `key_of`, without building a key per comparison.
    fn order(m: &MetaRouter) -> (&str, &str) {
        (
            m.metadata.namespace.as_deref().unwrap_or("default"),
            m.metadata.name.as_deref().unwrap_or(""),
        )
    }
    sorted_routers.sort_by(|a, b| order(a).cmp(&order(b)));
    // Each router with the service ports it routes (the gateways pass needs them too).
    let mut routed: Vec<(&MetaRouter, Vec<&ServicePort>)> = Vec::new();
    for mr in sorted_routers {
        let key = key_of("MetaRouter", &mr.metadata);
        let report = out.reports.entry(key.clone()).or_default();
        report.generation = mr.metadata.generation;
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
    let mut drs_by_host: BTreeMap<&str, &DestinationRuleSpec> = BTreeMap::new();
    for dr in &inputs.destination_rules {
        drs_by_host.entry(dr.spec.host.as_str()).or_insert(&dr.spec);
    }

    // Service ports are independent: contiguous chunks render on their own threads into their
    // own `Rendered`, merged in port order, so the output equals a sequential render.
    let render_chunk = |chunk: &[ServicePort]| -> Result<Rendered, RenderError> {
        let mut part = Rendered::default();
        let out = &mut part;
        for sp in chunk {
            let routers: &[&MetaRouter] = routers_by_host
                .get(sp.host.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let subsets = subsets_by_host
                .get(sp.host.as_str())
                .cloned()
                .unwrap_or_default();
            let adapter = resolve_adapter(sp, routers.is_empty(), settings);
            let prefix = stat_prefix("outbound", sp);
            let (table, contributors) = route_table(sp, routers, adapter, &cat, &mut out.reports);
            let bridged = bridged_clusters(sp, table.as_ref(), &subsets);
            let config = listener_config(sp, &prefix, table, settings, &mut out.route_tables)?;

            // Outbound EnvoyFilter.
            let listener_name = match &sp.vip {
                Some(vip) => format!("{vip}_{}", sp.port),
                None => format!("0.0.0.0_{}", sp.port),
            };
            let mut patches = vec![before_tcp_proxy(
                "SIDECAR_OUTBOUND",
                ListenerMatch {
                    name: Some(listener_name),
                    ..Default::default()
                },
                filter_value(adapter, &config, settings, true),
            )];
            patches.extend(twin_patches(
                &bridged,
                "SIDECAR_OUTBOUND",
                sp.protocol,
                &drs_by_host,
                &cat,
                settings,
                &contributors,
                &mut out.reports,
            ));
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
            let annotations = filter_annotations(sp, &contributors);
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
                    max_held_bytes: 0,
                    worker_held_budget_bytes: 0,
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
                        value: filter_value(in_adapter, &in_cfg, settings, true).into(),
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
                subsets,
            });
        }
        Ok(part)
    };
    for part in render_chunks(&ports, &render_chunk) {
        merge_part(&mut out, part?);
    }
    gateway::render(
        inputs,
        &ports,
        &routed,
        &gateway::Lookups {
            cat: &cat,
            subsets_by_host: &subsets_by_host,
            drs_by_host: &drs_by_host,
        },
        &mut out,
    )?;
    out.filters.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    out.filters.dedup_by(|b, a| {
        a.metadata.namespace == b.metadata.namespace && a.metadata.name == b.metadata.name
    });
    Ok(out)
}

/// Annotations saying what a filter is for: host, port, source object, routers that went in.
fn filter_annotations(sp: &ServicePort, contributors: &[ObjectKey]) -> BTreeMap<String, String> {
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
