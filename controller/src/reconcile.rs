//! The in-cluster side (`meltemi run`): a thin loop around the pure render.
//!
//! One reconcile pass lists every input, renders, applies each EnvoyFilter with server-side apply
//! (field manager [`FIELD_MANAGER`], forced: the objects are ours), deletes EnvoyFilters carrying our
//! label that nothing renders any more, writes `status.conditions` (with `observedGeneration`) on
//! every route object, and publishes the route tables to the route endpoint. Passes are triggered
//! by watch events on any input (debounced) and every [`RESYNC`]; a failed pass is retried with
//! exponential backoff. Invalid specs become conditions, never errors of the loop. The render is
//! global (routes of one host can name another), which is cheap: 10,000 services render in well
//! under a second (see the bench).
//!
//! Leader election: not implemented; the Deployment runs one replica with `strategy: Recreate`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::BackoffBuilder;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crd::{Condition, MetaRouter, RedisDestination, RedisService, RouteStatus};
use crate::inputs::{Inputs, Settings};
use crate::istio::{DestinationRule, EnvoyFilter, Gateway, ServiceEntry, VirtualService};
use crate::render::{render_all, ObjectKey, ObjectReport, MANAGED_BY};
use crate::serve::Shared;

pub const FIELD_MANAGER: &str = "meltemi";
pub const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub applied: Vec<String>,
    pub pruned: Vec<String>,
    pub statuses: Vec<String>,
}

async fn list_all<K>(client: &Client) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items)
}

/// VirtualServices, or none when the controller may not read them (a ClusterRole from before
/// VirtualService support: 403) or Istio's CRD is absent (404); logged, the rest still renders.
async fn list_virtual_services(client: &Client) -> Result<Vec<VirtualService>, kube::Error> {
    match list_all::<VirtualService>(client).await {
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => {
            tracing::warn!(error = %e, "cannot list VirtualServices: their routes are not applied (grant get/list/watch on networking.istio.io virtualservices)");
            Ok(Vec::new())
        }
        other => other,
    }
}

/// Reads every input from the API server.
pub async fn load(client: &Client, settings: &Settings) -> Result<Inputs, kube::Error> {
    let mut inputs = Inputs {
        service_entries: list_all::<ServiceEntry>(client).await?,
        services: list_all::<Service>(client).await?,
        destination_rules: list_all::<DestinationRule>(client).await?,
        gateways: list_all::<Gateway>(client).await?,
        virtual_services: list_virtual_services(client).await?,
        meta_routers: list_all::<MetaRouter>(client).await?,
        redis_services: list_all::<RedisService>(client).await?,
        redis_destinations: list_all::<RedisDestination>(client).await?,
        settings: settings.clone(),
        field_problems: Vec::new(),
    };
    inputs.check_typed_fields();
    Ok(inputs)
}

/// RFC 3339 UTC of a Unix time, seconds precision (as Kubernetes writes condition times).
pub fn rfc3339(unix_secs: u64) -> String {
    let secs = i64::try_from(unix_secs).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::MAX)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The status an object gets from its report. `previous` keeps `lastTransitionTime` when a
/// condition's status did not change.
pub fn status_for(report: &ObjectReport, previous: Option<&RouteStatus>, now: &str) -> RouteStatus {
    let fmt = |ps: &[crate::routes::Problem]| {
        ps.iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let errors = &report.problems.errors;
    let warnings = &report.problems.warnings;
    let accepted = if errors.is_empty() {
        let msg = if report.rendered.is_empty() {
            "valid".to_string()
        } else {
            format!(
                "rendered into {}",
                report
                    .rendered
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ("True", "Rendered", msg)
    } else {
        ("False", "InvalidSpec", fmt(errors))
    };
    let degraded = if warnings.is_empty() {
        ("False", "AllApplied", "every field is applied".to_string())
    } else {
        ("True", "PartiallyApplied", fmt(warnings))
    };
    let cond = |t: &str, (status, reason, message): (&str, &str, String)| {
        let since = previous
            .and_then(|p| {
                p.conditions
                    .iter()
                    .find(|c| c.type_ == t && c.status == status)
            })
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        Condition {
            type_: t.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: report.generation,
            last_transition_time: Some(since),
        }
    };
    RouteStatus {
        observed_generation: report.generation,
        conditions: vec![cond("Accepted", accepted), cond("Degraded", degraded)],
        rendered: report.rendered.iter().cloned().collect(),
    }
}

async fn write_status<K>(
    client: &Client,
    key: &ObjectKey,
    status: &RouteStatus,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(client.clone(), &key.namespace);
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &key.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// One reconcile pass.
pub async fn reconcile_once(
    client: &Client,
    settings: &Settings,
    shared: &Shared,
) -> Result<Summary, Error> {
    shared.metrics.reconciles.inc();
    let inputs = load(client, settings).await?;
    let rendered = render_all(&inputs)?;
    let mut summary = Summary::default();

    // Route tables first: a filter that fetches them right after its EnvoyFilter lands finds them.
    let changed = shared.store.update(&rendered.route_tables);
    shared.metrics.route_updates.inc_by(changed.len() as u64);

    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut desired = BTreeSet::new();
    for ef in &rendered.filters {
        let ns = ef.namespace().unwrap_or_default();
        let name = ef.name_any();
        Api::<EnvoyFilter>::namespaced(client.clone(), &ns)
            .patch(&name, &pp, &Patch::Apply(ef))
            .await?;
        shared.metrics.applied.inc();
        summary.applied.push(format!("{ns}/{name}"));
        desired.insert((ns, name));
    }
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let existing = Api::<EnvoyFilter>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await?;
    for ef in existing.items {
        let (ns, name) = (ef.namespace().unwrap_or_default(), ef.name_any());
        if !desired.contains(&(ns.clone(), name.clone())) {
            Api::<EnvoyFilter>::namespaced(client.clone(), &ns)
                .delete(&name, &DeleteParams::default())
                .await?;
            shared.metrics.pruned.inc();
            summary.pruned.push(format!("{ns}/{name}"));
        }
    }

    let now = rfc3339(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let previous: BTreeMap<ObjectKey, Option<RouteStatus>> = inputs
        .meta_routers
        .iter()
        .map(|o| (key("MetaRouter", o), o.status.clone()))
        .chain(
            inputs
                .redis_services
                .iter()
                .map(|o| (key("RedisService", o), o.status.clone())),
        )
        .chain(
            inputs
                .redis_destinations
                .iter()
                .map(|o| (key("RedisDestination", o), o.status.clone())),
        )
        .collect();
    for (k, report) in &rendered.reports {
        let prev = previous.get(k).and_then(|p| p.as_ref());
        let status = status_for(report, prev, &now);
        if prev.is_some_and(|p| same_ignoring_time(p, &status)) {
            continue;
        }
        match k.kind {
            "MetaRouter" => write_status::<MetaRouter>(client, k, &status).await?,
            "RedisService" => write_status::<RedisService>(client, k, &status).await?,
            "RedisDestination" => write_status::<RedisDestination>(client, k, &status).await?,
            // Istio's objects (VirtualService, DestinationRule): their status is istiod's; their
            // problems are in `meltemi validate` and the controller's log.
            _ => {
                for p in &report.problems.errors {
                    tracing::warn!(object = %format!("{} {}/{}", k.kind, k.namespace, k.name), path = %p.path, "{}", p.message);
                }
                for p in &report.problems.warnings {
                    tracing::info!(object = %format!("{} {}/{}", k.kind, k.namespace, k.name), path = %p.path, "{}", p.message);
                }
                continue;
            }
        }
        summary
            .statuses
            .push(format!("{} {}/{}", k.kind, k.namespace, k.name));
    }
    Ok(summary)
}

fn key<K: Resource>(kind: &'static str, o: &K) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: o.meta().namespace.clone().unwrap_or_default(),
        name: o.meta().name.clone().unwrap_or_default(),
    }
}

fn same_ignoring_time(a: &RouteStatus, b: &RouteStatus) -> bool {
    let strip = |s: &RouteStatus| {
        let mut s = s.clone();
        s.conditions
            .iter_mut()
            .for_each(|c| c.last_transition_time = None);
        s
    };
    strip(a) == strip(b)
}

/// Watches every input and reconciles on change, every [`RESYNC`], with backoff on failure, until
/// `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: Settings,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    fn watch<K>(client: &Client) -> futures::stream::BoxStream<'static, ()>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        watcher(Api::<K>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map(|_| ())
            .boxed()
    }
    let mut events = futures::stream::select_all([
        watch::<ServiceEntry>(&client),
        watch::<Service>(&client),
        watch::<DestinationRule>(&client),
        watch::<Gateway>(&client),
        watch::<VirtualService>(&client),
        watch::<MetaRouter>(&client),
        watch::<RedisService>(&client),
        watch::<RedisDestination>(&client),
        watch::<EnvoyFilter>(&client),
    ]);
    tokio::pin!(shutdown);
    // Failed passes retry after 1 s, 2 s, 4 s, ... up to 60 s; a good pass starts over.
    let backoff = || {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_factor(2.0)
            .without_max_times()
            .build()
    };
    let mut delays = backoff();
    let mut due = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                return;
            }
            ev = events.next() => {
                if ev.is_none() {
                    tracing::error!("watch streams ended");
                    return;
                }
                // Debounce: a burst of events (start-up lists) makes one pass.
                due = due.max(tokio::time::Instant::now() + Duration::from_millis(200));
                continue;
            }
            _ = tokio::time::sleep_until(due) => {}
        }
        match reconcile_once(&client, &settings, &shared).await {
            Ok(s) => {
                tracing::info!(
                    applied = s.applied.len(),
                    pruned = s.pruned.len(),
                    statuses = s.statuses.len(),
                    "reconciled"
                );
                delays = backoff();
                due = tokio::time::Instant::now() + RESYNC;
            }
            Err(e) => {
                shared.metrics.reconcile_errors.inc();
                let retry_in = delays.next().unwrap_or(Duration::from_secs(60));
                tracing::warn!(error = %e, ?retry_in, "reconcile failed");
                due = tokio::time::Instant::now() + retry_in;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn the_retry_delays_double_to_a_minute() {
        let d: Vec<u64> = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_factor(2.0)
            .without_max_times()
            .build()
            .take(8)
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
