//! `meltemi validate`: every problem of a set of manifests, with object and field path.

use std::borrow::Cow;
use std::fmt;

use crate::inputs::{Inputs, ManifestError};
use crate::model::service_ports;
use crate::render::{gateway, render_all, ObjectKey};
use crate::routes::Problem;
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

/// A DestinationRule TLS mode the bridge twins cannot honour, or no mode Istio knows.
fn tls_finding(object: &str, path: String, mode: &str) -> Option<Finding> {
    let (severity, message) = match mode {
        "DISABLE" | "ISTIO_MUTUAL" => return None,
        "SIMPLE" | "MUTUAL" => (
            Severity::Warning,
            format!("{mode}: Meltemi's bridge twins do not originate TLS; detoured requests to this destination go in plaintext"),
        ),
        other => (
            Severity::Error,
            format!("{other:?} is not a TLS mode (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL)"),
        ),
    };
    Some(Finding {
        severity,
        object: object.into(),
        path: format!("{path}.mode"),
        message,
    })
}

/// A render problem `p` of the object `k`.
fn finding(severity: Severity, k: &ObjectKey, p: &Problem) -> Finding {
    Finding {
        severity,
        object: format!("{} {}/{}", k.kind, k.namespace, k.name),
        path: p.path.clone(),
        message: p.message.clone(),
    }
}

/// [`validate_with`], warnings kept as warnings.
pub fn validate(inputs: &Inputs, load_errors: &[ManifestError]) -> Vec<Finding> {
    validate_with(inputs, load_errors, false)
}

/// Load errors, render problems of each route object and service (fields set but not applied,
/// unknown fields, route objects that lost to another on a host, ...), and the rendered
/// EnvoyFilters checked against Istio's EnvoyFilter schema, all from one render. `strict`
/// (`meltemi validate --strict`): every warning is an error. Sorted: errors first.
pub fn validate_with(inputs: &Inputs, load_errors: &[ManifestError], strict: bool) -> Vec<Finding> {
    let mut out = findings(inputs, load_errors);
    if strict {
        for f in &mut out {
            f.severity = Severity::Error;
        }
    }
    out.sort_by_key(|f| f.severity);
    out
}

fn findings(inputs: &Inputs, load_errors: &[ManifestError]) -> Vec<Finding> {
    let rendered = render_all(inputs);
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
                .virtual_services
                .iter()
                .map(|o| ("VirtualService", &o.metadata)),
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
    // Problems of the services themselves; without a render (invalid settings), found on their own.
    let source_problems = match &rendered {
        Ok(r) => Cow::Borrowed(r.source_problems.as_slice()),
        Err(_) => Cow::Owned(gateway::source_problems(inputs, &service_ports(inputs))),
    };
    for (k, p) in source_problems.iter() {
        out.push(finding(Severity::Warning, k, p));
    }
    for dr in &inputs.destination_rules {
        let ns = dr.metadata.namespace.clone().unwrap_or_default();
        let name = dr.metadata.name.clone().unwrap_or_default();
        let object = format!("DestinationRule {ns}/{name}");
        let policies = std::iter::once(("spec.trafficPolicy".to_string(), &dr.spec.traffic_policy))
            .chain(dr.spec.subsets.iter().enumerate().map(|(i, s)| {
                (
                    format!("spec.subsets[{i}].trafficPolicy"),
                    &s.traffic_policy,
                )
            }));
        for (path, tp) in policies {
            let Some(tp) = tp else { continue };
            let tls = std::iter::once((format!("{path}.tls"), &tp.tls)).chain(
                tp.port_level_settings
                    .iter()
                    .enumerate()
                    .map(|(j, p)| (format!("{path}.portLevelSettings[{j}].tls"), &p.tls)),
            );
            for (path, t) in tls {
                if let Some(f) = t.as_ref().and_then(|t| tls_finding(&object, path, &t.mode)) {
                    out.push(f);
                }
            }
        }
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
    match rendered {
        Err(e) => out.push(Finding {
            severity: Severity::Error,
            object: "render".into(),
            path: String::new(),
            message: e.to_string(),
        }),
        Ok(r) => {
            for (k, rep) in &r.reports {
                for p in &rep.problems.errors {
                    out.push(finding(Severity::Error, k, p));
                }
                for p in &rep.problems.warnings {
                    out.push(finding(Severity::Warning, k, p));
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
                        path: e.split_once(": ").map(|(p, _)| p).unwrap_or("").into(),
                        message: format!(
                            "violates Istio's EnvoyFilter schema: {}",
                            e.split_once(": ").map(|(_, m)| m).unwrap_or(&e)
                        ),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Settings;

    fn load(files: &[&str], extra: &str) -> (Inputs, Vec<ManifestError>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut inputs = Inputs {
            settings: Settings {
                default_namespace: "demo".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut errors = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            inputs.add_yaml(f, &text, &mut errors);
        }
        inputs.add_yaml("extra.yaml", extra, &mut errors);
        (inputs, errors)
    }

    fn text(inputs: &Inputs, errors: &[ManifestError]) -> Vec<String> {
        validate(inputs, errors)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn findings(files: &[&str], extra: &str) -> Vec<String> {
        let (inputs, errors) = load(files, extra);
        text(&inputs, &errors)
    }

    /// The services' own problems come from the render; when it fails (here: invalid settings)
    /// they are found without it, the same.
    #[test]
    fn annotation_problems_with_and_without_a_render() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata:
  name: redis
  namespace: demo
  annotations: {meltemi.io/gateways: "nope"}
spec:
  ports: [{name: tcp-redis, port: 6379}, {name: tcp-redis-2, port: 6380}]
"#;
        let (mut inputs, errors) = load(&[], yaml);
        let rendered = render_all(&inputs).unwrap().source_problems;
        assert_eq!(rendered.len(), 2, "{rendered:#?}");
        assert_eq!(
            rendered,
            gateway::source_problems(&inputs, &service_ports(&inputs))
        );
        let warning = "warning: Service demo/redis: metadata.annotations[\"meltemi.io/gateways\"]: no Gateway demo/nope";
        assert_eq!(text(&inputs, &errors), [warning, warning]);
        inputs.settings.module_name = "bad name".into();
        assert_eq!(
            text(&inputs, &errors),
            [
                "error: render: invalid settings: module name \"bad name\" must be [A-Za-z0-9_-]+",
                warning,
                warning
            ]
        );
    }

    #[test]
    fn tls_modes_and_gateway_annotations_have_object_and_path() {
        let extra = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: typo, namespace: demo}
spec:
  host: x.demo.svc.cluster.local
  trafficPolicy:
    portLevelSettings:
      - port: {number: 1}
        tls: {mode: ISTIO_MUTAL}
---
apiVersion: v1
kind: Service
metadata:
  name: redis
  namespace: demo
  annotations: {meltemi.io/gateways: "istio-system/egress, nope"}
spec:
  ports: [{name: tcp-redis, port: 6379}]
"#;
        let f = findings(
            &[
                "mtls/thrift-tls-modes.yaml",
                "gateway/dubbo-ingress-thrift-egress.yaml",
            ],
            extra,
        );
        let has = |s: &str| f.iter().any(|x| x.contains(s));
        assert!(
            has("error: DestinationRule demo/typo: spec.trafficPolicy.portLevelSettings[0].tls.mode: \"ISTIO_MUTAL\" is not a TLS mode"),
            "{f:#?}"
        );
        assert!(
            has("warning: DestinationRule demo/thrift-demo: spec.subsets[2].trafficPolicy.tls.mode: SIMPLE"),
            "{f:#?}"
        );
        assert!(
            has("warning: Service demo/redis: metadata.annotations[\"meltemi.io/gateways\"]: Gateway istio-system/egress has no TCP server whose hosts match redis.demo.svc.cluster.local"),
            "{f:#?}"
        );
        assert!(
            has("warning: Service demo/redis: metadata.annotations[\"meltemi.io/gateways\"]: no Gateway demo/nope"),
            "{f:#?}"
        );
        assert!(
            has("error: MetaRouter demo/dubbo-missing-gateway: spec.gateways[0]: no Gateway demo/no-such-gateway"),
            "{f:#?}"
        );
    }
}
