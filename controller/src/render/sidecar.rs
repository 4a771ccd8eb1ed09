//! The sidecar pass, one service port at a time: the outbound EnvoyFilter (our filter before
//! `tcp_proxy` in the port's outbound listener, and the bridge twins its routes need), the inbound
//! one (server side, observe only, on the workloads behind the service), and the listener plan.
//! Ports are independent, so the orchestrator may run this on several threads.

use super::index::Index;
use super::json::filter_value;
use super::listener::{
    bridged_clusters, inbound_adapter, inbound_config, listener_config, pick_sources,
    resolve_adapter, route_table,
};
use super::names::{dns_piece, object_name, stat_prefix};
use super::output::{ListenerPlan, RenderError, Rendered};
use super::patches::{
    before_tcp_proxy, envoy_filter, filter_annotations, tcp_proxy_cluster, twin_patches,
};
use crate::crd::MetaRouter;
use crate::inputs::Settings;
use crate::istio::VirtualService;
use crate::istio::{FilterChainMatch, ListenerMatch, WorkloadSelector};
use crate::model::ServicePort;

/// Renders `sp` for the sidecars into `out`.
pub(super) fn render(
    sp: &ServicePort,
    ix: &Index<'_>,
    settings: &Settings,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let routers: &[&MetaRouter] = ix
        .routers_by_host
        .get(sp.host.as_str())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let virtuals: &[&VirtualService] = ix
        .virtuals_by_host
        .get(sp.host.as_str())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let sources = pick_sources(sp, routers, virtuals, &mut out.reports);
    let subsets = ix
        .subsets_by_host
        .get(sp.host.as_str())
        .cloned()
        .unwrap_or_default();
    let adapter = resolve_adapter(sp, sources.is_empty(), settings);
    let prefix = stat_prefix("outbound", sp);
    let (table, contributors) = route_table(sp, &sources, adapter, true, &ix.cat, &mut out.reports);
    let bridged = bridged_clusters(sp, table.as_ref(), &subsets);
    let config = listener_config(sp, &prefix, table, settings, &mut out.route_tables)?;

    // Outbound EnvoyFilter.
    let listener_name = match &sp.vip {
        Some(vip) => format!("{vip}_{}", sp.port),
        None => format!("0.0.0.0_{}", sp.port),
    };
    let listener = ListenerMatch {
        name: Some(listener_name),
        ..Default::default()
    };
    let mut patches = vec![before_tcp_proxy(
        "SIDECAR_OUTBOUND",
        listener.clone(),
        filter_value(adapter, &config, settings, true),
    )];
    // The fast path: tcp_proxy forwards to the routes' primary cluster.
    if let Some(primary) = config
        .routes
        .as_ref()
        .map(|t| &t.primary_cluster)
        .filter(|c| **c != sp.cluster(""))
    {
        patches.push(tcp_proxy_cluster(
            "SIDECAR_OUTBOUND",
            listener,
            primary,
            primary,
        ));
    }
    patches.extend(twin_patches(
        &bridged,
        "SIDECAR_OUTBOUND",
        sp.protocol,
        &ix.drs_by_host,
        &ix.cat,
        settings,
        &contributors,
        &mut out.reports,
    ));
    let exported_locally = sources.iter().any(|s| s.exported_locally()) || sp.export_to == ["."];
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
        let in_cfg = inbound_config(sp, settings);
        let in_adapter = inbound_adapter(adapter, sp, settings);
        let patch = before_tcp_proxy(
            "SIDECAR_INBOUND",
            ListenerMatch {
                name: Some("virtualInbound".into()),
                port_number: None,
                filter_chain: Some(FilterChainMatch {
                    destination_port: Some(sp.target_port),
                    filter: None,
                }),
            },
            filter_value(in_adapter, &in_cfg, settings, true),
        );
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
    Ok(())
}
