//! `meltemi validate`: every problem of a set of manifests, with object and field path.

use std::fmt;

use crate::inputs::{Inputs, ManifestError};
use crate::render::{render_all, ObjectKey};
use crate::schema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub object: String,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.path.is_empty() {
            write!(f, "{sev}: {}: {}", self.object, self.message)
        } else {
            write!(f, "{sev}: {}: {}: {}", self.object, self.path, self.message)
        }
    }
}

fn object_name(k: &ObjectKey) -> String {
    format!("{} {}/{}", k.kind, k.namespace, k.name)
}

/// Load errors, render problems of each route object, and the rendered EnvoyFilters checked against
/// Istio's EnvoyFilter schema. Sorted: errors first.
pub fn validate(inputs: &Inputs, load_errors: &[ManifestError]) -> Vec<Finding> {
    let mut out: Vec<Finding> = load_errors
        .iter()
        .map(|e| Finding {
            severity: Severity::Error,
            object: e.object.clone(),
            path: e.path.clone(),
            message: e.message.clone(),
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let metas = inputs
        .service_entries
        .iter()
        .map(|o| ("ServiceEntry", &o.metadata))
        .chain(inputs.services.iter().map(|o| ("Service", &o.metadata)))
        .chain(
            inputs
                .destination_rules
                .iter()
                .map(|o| ("DestinationRule", &o.metadata)),
        )
        .chain(
            inputs
                .meta_routers
                .iter()
                .map(|o| ("MetaRouter", &o.metadata)),
        )
        .chain(
            inputs
                .redis_services
                .iter()
                .map(|o| ("RedisService", &o.metadata)),
        )
        .chain(
            inputs
                .redis_destinations
                .iter()
                .map(|o| ("RedisDestination", &o.metadata)),
        );
    for (kind, m) in metas {
        let (ns, name) = (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        );
        if !seen.insert((kind, ns.clone(), name.clone())) {
            out.push(Finding {
                severity: Severity::Error,
                object: format!("{kind} {ns}/{name}"),
                path: "metadata.name".into(),
                message: "defined more than once (the API server would keep only the last)".into(),
            });
        }
    }
    for dr in &inputs.destination_rules {
        let ns = dr.metadata.namespace.clone().unwrap_or_default();
        let name = dr.metadata.name.clone().unwrap_or_default();
        for (i, s) in dr.spec.subsets.iter().enumerate() {
            if s.labels.is_empty() {
                out.push(Finding {
                    severity: Severity::Warning,
                    object: format!("DestinationRule {ns}/{name}"),
                    path: format!("spec.subsets[{i}].labels"),
                    message: "empty: the subset selects every endpoint".into(),
                });
            }
        }
    }
    match render_all(inputs) {
        Err(e) => out.push(Finding {
            severity: Severity::Error,
            object: "render".into(),
            path: String::new(),
            message: e.to_string(),
        }),
        Ok(r) => {
            for (k, rep) in &r.reports {
                for p in &rep.problems.errors {
                    out.push(Finding {
                        severity: Severity::Error,
                        object: object_name(k),
                        path: p.path.clone(),
                        message: p.message.clone(),
                    });
                }
                for p in &rep.problems.warnings {
                    out.push(Finding {
                        severity: Severity::Warning,
                        object: object_name(k),
                        path: p.path.clone(),
                        message: p.message.clone(),
                    });
                }
            }
            let schema = schema::envoy_filter_schema();
            for f in &r.filters {
                let v = serde_json::to_value(f).unwrap_or_default();
                for e in schema::check_object(&v, &schema) {
                    out.push(Finding {
                        severity: Severity::Error,
                        object: format!(
                            "rendered EnvoyFilter {}/{}",
                            f.metadata.namespace.as_deref().unwrap_or(""),
                            f.metadata.name.as_deref().unwrap_or("")
                        ),
                        path: String::new(),
                        message: format!("violates Istio's EnvoyFilter schema: {e}"),
                    });
                }
            }
        }
    }
    out.sort_by_key(|f| f.severity);
    out
}
