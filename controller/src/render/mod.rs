//! The pure render: inputs -> EnvoyFilters (plus a report per route object for its status, and the
//! full route tables for the route endpoint). No I/O, no clock: same inputs, same output.
//!
//! This module is the orchestrator only: check the settings, index the inputs (`index`), run the
//! sidecar pass over the service ports (`sidecar`, in parallel chunks) and the gateway pass
//! (`gateway`), then order the filters. The pieces they share sit in leaf modules that never
//! import this one: `names` (object names, stat prefixes), `json` (typed filter configs),
//! `listener` (one listener's filter config and route table), `patches` (EnvoyFilter objects
//! and their patches), `output` (what a render returns).

use crate::inputs::{Inputs, Settings};
use crate::istio::EnvoyFilter;
use crate::model::{service_ports, ServicePort};

pub(crate) mod gateway;
mod index;
pub(crate) mod json;
mod listener;
mod names;
mod output;
mod patches;
mod sidecar;

pub use json::{bridge_upstream, filter_value, typed_struct};
pub use names::{
    dns_piece, stat_prefix, BRIDGE_PREFIX, DYNAMIC_MODULE_FILTER, MANAGED_BY, TCP_PROXY,
    WASM_FILTER,
};
pub use output::{to_yaml, ListenerPlan, ObjectKey, ObjectReport, RenderError, Rendered};

use index::Index;
use output::key_of;

/// The render the brief names: EnvoyFilters only.
pub fn render(inputs: &Inputs) -> Result<Vec<EnvoyFilter>, RenderError> {
    render_all(inputs).map(|r| r.filters)
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

/// Renders everything.
pub fn render_all(inputs: &Inputs) -> Result<Rendered, RenderError> {
    let settings = &inputs.settings;
    check_settings(settings)?;
    let ports = service_ports(inputs);
    let mut out = Rendered::default();
    let ix = Index::new(inputs, &ports, &mut out.reports);
    accept_redis_objects(inputs, &mut out);
    field_warnings(inputs, &ix, &mut out);

    // Service ports are independent: contiguous chunks render on their own threads into their
    // own `Rendered`, merged in port order, so the output equals a sequential render.
    let render_chunk = |chunk: &[ServicePort]| -> Result<Rendered, RenderError> {
        let mut part = Rendered::default();
        for sp in chunk {
            sidecar::render(sp, &ix, settings, &mut part)?;
        }
        Ok(part)
    };
    for part in render_chunks(&ports, &render_chunk) {
        out.merge(part?);
    }
    gateway::render(
        inputs,
        &ports,
        &ix.routed,
        &gateway::Lookups {
            cat: &ix.cat,
            subsets_by_host: &ix.subsets_by_host,
            drs_by_host: &ix.drs_by_host,
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

/// The Redis route objects get a report (what of them is not applied comes from `fields`).
fn accept_redis_objects(inputs: &Inputs, out: &mut Rendered) {
    let services = inputs
        .redis_services
        .iter()
        .map(|o| ("RedisService", &o.metadata));
    let destinations = inputs
        .redis_destinations
        .iter()
        .map(|o| ("RedisDestination", &o.metadata));
    for (kind, meta) in services.chain(destinations) {
        let report = out.reports.entry(key_of(kind, meta)).or_default();
        report.generation = meta.generation;
    }
}

/// The fields set but not applied, and the unknown ones (`crate::fields`), as warnings of their
/// objects: every MetaRouter and Redis object; a VirtualService that routes a Dubbo/Thrift host
/// (it has a report); a DestinationRule of a Dubbo/Thrift host (for any other host Istio alone
/// applies it, and says so itself).
fn field_warnings(inputs: &Inputs, ix: &Index<'_>, out: &mut Rendered) {
    for f in &inputs.field_problems {
        let key = ObjectKey {
            kind: f.kind,
            namespace: f.namespace.clone(),
            name: f.name.clone(),
        };
        let ours = match f.kind {
            "VirtualService" => out.reports.contains_key(&key),
            "DestinationRule" => inputs.destination_rules.iter().any(|dr| {
                key_of("DestinationRule", &dr.metadata) == key
                    && index::host_candidates(
                        &dr.spec.host,
                        &key.namespace,
                        &inputs.settings.cluster_domain,
                    )
                    .iter()
                    .filter_map(|h| ix.cat.ports.get(h.as_str()))
                    .flatten()
                    .any(|sp| {
                        matches!(
                            sp.protocol,
                            meltemi_proto::Protocol::Dubbo | meltemi_proto::Protocol::Thrift
                        )
                    })
            }),
            _ => true,
        };
        if ours {
            let r = out.reports.entry(key).or_default();
            r.problems.warn(f.path.clone(), f.message.clone());
        }
    }
}
