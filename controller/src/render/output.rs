//! What a render produces: the EnvoyFilters, a report per route object (its status), the route
//! tables, a plan per listener, and the errors that stop a render.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ObjectMeta;
use meltemi_proto as pb;

use crate::inputs::Adapter;
use crate::istio::EnvoyFilter;
use crate::model::ServicePort;
use crate::routes::{Problem, Problems};

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
    /// Problems of a Service or ServiceEntry itself (a `meltemi.io/gateways` entry the render
    /// skips), in service port order. Not route objects, so no report and no status: `meltemi
    /// validate` shows them.
    pub source_problems: Vec<(ObjectKey, Problem)>,
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

pub(super) fn key_of(kind: &'static str, meta: &ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        name: meta.name.clone().unwrap_or_default(),
    }
}

/// Appends `from` to `to`, skipping problems `to` already has (a router converted for a sidecar
/// and for a gateway reports each problem once).
pub(super) fn merge_problems(to: &mut Problems, from: Problems) {
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

impl Rendered {
    /// Adds one chunk's output (reports merged: problems once each, in chunk order).
    pub(super) fn merge(&mut self, part: Rendered) {
        self.filters.extend(part.filters);
        self.route_tables.extend(part.route_tables);
        self.listeners.extend(part.listeners);
        self.source_problems.extend(part.source_problems);
        for (k, rep) in part.reports {
            let dst = self.reports.entry(k).or_default();
            merge_problems(&mut dst.problems, rep.problems);
            dst.rendered.extend(rep.rendered);
            dst.generation = dst.generation.or(rep.generation);
        }
    }
}

/// Multi-document YAML of the filters (what `meltemi render` prints).
pub fn to_yaml(filters: &[EnvoyFilter]) -> String {
    let mut out = String::new();
    for f in filters {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(f).unwrap_or_default());
    }
    out
}
