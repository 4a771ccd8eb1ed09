//! What a render reads: Istio services, DestinationRules, our route CRDs, and settings. Loaded from
//! the API server (`meltemi run`) or from YAML files (`render`/`bootstrap`/`validate -f DIR`).

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Service;
use serde::de::DeserializeOwned;

use crate::crd::{MetaRouter, RedisDestination, RedisService};
use crate::fields::{self, FieldProblem};
use crate::istio::{DestinationRule, Gateway, ServiceEntry, VirtualService};

/// Which data-plane artifact a service gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AdapterChoice {
    /// The dynamic module where a route object (MetaRouter) routes the service, the `.wasm`
    /// elsewhere (observe only; works on any Istio >= 1.20).
    #[default]
    Auto,
    /// Always the proxy-wasm filter (observe/policy; routing is not applied).
    Wasm,
    /// Always the dynamic module (istio-proxy >= 1.31).
    Module,
}

/// Resolved per service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Adapter {
    Wasm,
    Module,
}

/// Rendering settings (flags of the CLI, the controller's Deployment args).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where outbound EnvoyFilters go (Istio's root namespace applies them to every sidecar).
    pub root_namespace: String,
    pub adapter: AdapterChoice,
    /// Path of the `.wasm` inside istio-proxy (or on the host for the bootstrap).
    pub wasm_path: String,
    /// Dynamic module name: Envoy loads `lib<name>.so` from `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    pub module_name: String,
    /// Also patch `virtualInbound` (server side, observe only).
    pub inbound: bool,
    /// Route tables come from the controller's route endpoint (no listener update on a route
    /// change). `Some(cluster)`: the Envoy cluster of that endpoint.
    pub route_discovery_cluster: Option<String>,
    pub route_refresh_ms: u32,
    pub access_log: bool,
    /// The mesh's `enableAutoMtls` (Istio's default: on): bridge twins speak Istio mTLS to
    /// endpoints with a sidecar unless a DestinationRule sets the TLS mode.
    pub auto_mtls: bool,
    /// Istio-style request metrics (`istio_requests_total`, ...) with the Service's labels; the
    /// mesh needs `deploy/istio/meshconfig-stats.yaml`.
    pub istio_metrics: bool,
    /// Kubernetes cluster domain.
    pub cluster_domain: String,
    /// Namespace of manifests that name none (like `kubectl apply -n`).
    pub default_namespace: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            root_namespace: "istio-system".into(),
            adapter: AdapterChoice::Auto,
            wasm_path: "/var/local/lib/meltemi/meltemi_wasm.wasm".into(),
            module_name: "meltemi".into(),
            inbound: true,
            route_discovery_cluster: None,
            route_refresh_ms: 0,
            access_log: false,
            auto_mtls: true,
            istio_metrics: false,
            cluster_domain: "cluster.local".into(),
            default_namespace: "default".into(),
        }
    }
}

/// Everything a render reads.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub service_entries: Vec<ServiceEntry>,
    pub services: Vec<Service>,
    pub destination_rules: Vec<DestinationRule>,
    /// Istio Gateways (ingress and egress): where `MetaRouter.spec.gateways` and the
    /// `meltemi.io/gateways` service annotation put the filter on gateway listeners.
    pub gateways: Vec<Gateway>,
    /// Istio VirtualServices; those naming a Dubbo/Thrift host route it (`http` routes).
    pub virtual_services: Vec<VirtualService>,
    pub meta_routers: Vec<MetaRouter>,
    pub redis_services: Vec<RedisService>,
    pub redis_destinations: Vec<RedisDestination>,
    pub settings: Settings,
    /// Fields of the route objects and DestinationRules that are set but not applied, or unknown
    /// (`crate::fields`); the render puts them in the objects' reports.
    pub field_problems: Vec<FieldProblem>,
}

/// A manifest problem: which file/document/object and which field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// `file#doc` or `Kind namespace/name`.
    pub object: String,
    /// JSON path inside the object, e.g. `spec.routes[0].route[1].weight`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.path, self.message)
        }
    }
}

impl Inputs {
    /// Loads every `*.yaml`/`*.yml`/`*.json` under `dir` (recursively, sorted). Objects of other
    /// kinds are skipped; documents that fail to parse are reported, with the field path.
    pub fn load_dir(
        dir: &Path,
        settings: Settings,
    ) -> Result<(Inputs, Vec<ManifestError>), std::io::Error> {
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        let mut inputs = Inputs {
            settings,
            ..Default::default()
        };
        let mut errors = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            inputs.add_yaml(&file.display().to_string(), &text, &mut errors);
        }
        Ok((inputs, errors))
    }

    /// Adds the objects of one (multi-document) YAML text.
    pub fn add_yaml(&mut self, origin: &str, text: &str, errors: &mut Vec<ManifestError>) {
        use serde::Deserialize;
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let object = format!("{origin}#{}", i + 1);
            let value = match serde_yaml_ng::Value::deserialize(doc) {
                Ok(serde_yaml_ng::Value::Null) => continue,
                Ok(v) => v,
                Err(e) => {
                    errors.push(ManifestError {
                        object,
                        path: String::new(),
                        message: format!("not YAML: {e}"),
                    });
                    // The parser cannot resynchronise after a syntax error: the stream's
                    // iterator would yield the same error for ever (it did: an endless loop
                    // that ate memory), so the rest of this file is not read.
                    break;
                }
            };
            let value: serde_json::Value = match serde_json::to_value(&value) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(ManifestError {
                        object,
                        path: String::new(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            self.add_value(&object, value, errors);
        }
    }

    fn add_value(
        &mut self,
        origin: &str,
        value: serde_json::Value,
        errors: &mut Vec<ManifestError>,
    ) {
        if value.get("kind").and_then(|k| k.as_str()) == Some("List") {
            if let Some(items) = value.get("items").and_then(|i| i.as_array()) {
                for (i, item) in items.iter().enumerate() {
                    self.add_value(&format!("{origin}.items[{i}]"), item.clone(), errors);
                }
            }
            return;
        }
        let api = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let group = api.split_once('/').map(|(g, _)| g).unwrap_or("");
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        let name = value
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let default_ns = self.settings.default_namespace.clone();
        let ns = value
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .unwrap_or(&default_ns)
            .to_string();
        let object = format!("{origin} ({kind} {ns}/{name})");
        if let Some(kind) = fields::KINDS.iter().find(|k| **k == kind) {
            if matches!(
                group,
                "networking.istio.io" | "metaprotocol.aeraki.io" | "redis.aeraki.io"
            ) {
                self.add_field_problems(kind, &ns, name, &value);
            }
        }
        match (group, kind) {
            ("networking.istio.io", "ServiceEntry") => {
                push(&object, &ns, value, &mut self.service_entries, errors)
            }
            ("networking.istio.io", "DestinationRule") => {
                push(&object, &ns, value, &mut self.destination_rules, errors)
            }
            ("networking.istio.io", "Gateway") => {
                push(&object, &ns, value, &mut self.gateways, errors)
            }
            ("networking.istio.io", "VirtualService") => {
                push(&object, &ns, value, &mut self.virtual_services, errors)
            }
            ("", "Service") if api == "v1" => push(&object, &ns, value, &mut self.services, errors),
            ("metaprotocol.aeraki.io", "MetaRouter") => {
                push(&object, &ns, value, &mut self.meta_routers, errors)
            }
            ("redis.aeraki.io", "RedisService") => {
                push(&object, &ns, value, &mut self.redis_services, errors)
            }
            ("redis.aeraki.io", "RedisDestination") => {
                push(&object, &ns, value, &mut self.redis_destinations, errors)
            }
            _ => {}
        }
    }
}

impl Inputs {
    fn add_field_problems(
        &mut self,
        kind: &'static str,
        ns: &str,
        name: &str,
        v: &serde_json::Value,
    ) {
        for (path, message) in fields::check(kind, v) {
            self.field_problems.push(FieldProblem {
                kind,
                namespace: ns.to_string(),
                name: name.to_string(),
                path,
                message,
            });
        }
    }

    /// The field problems of typed objects (as the API server gives them: its schemas pruned
    /// unknown fields, so only fields not applied are found), replacing any found before.
    pub fn check_typed_fields(&mut self) {
        fn each<T: serde::Serialize + kube::Resource>(
            kind: &'static str,
            objects: &[T],
            out: &mut Vec<(&'static str, String, String, serde_json::Value)>,
        ) {
            for o in objects {
                let m = o.meta();
                out.push((
                    kind,
                    m.namespace.clone().unwrap_or_else(|| "default".into()),
                    m.name.clone().unwrap_or_default(),
                    serde_json::to_value(o).unwrap_or_default(),
                ));
            }
        }
        let mut all = Vec::new();
        each("MetaRouter", &self.meta_routers, &mut all);
        each("RedisService", &self.redis_services, &mut all);
        each("RedisDestination", &self.redis_destinations, &mut all);
        each("VirtualService", &self.virtual_services, &mut all);
        each("DestinationRule", &self.destination_rules, &mut all);
        self.field_problems.clear();
        for (kind, ns, name, v) in all {
            self.add_field_problems(kind, &ns, &name, &v);
        }
    }
}

/// Deserializes with the failing field's path; fills in the default namespace.
fn push<T: DeserializeOwned>(
    object: &str,
    ns: &str,
    mut value: serde_json::Value,
    out: &mut Vec<T>,
    errors: &mut Vec<ManifestError>,
) {
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.entry("namespace").or_insert_with(|| ns.into());
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => out.push(v),
        Err(e) => errors.push(ManifestError {
            object: object.to_string(),
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        }),
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntax error ends the file with one error that names the line (the multi-document
    /// iterator would repeat it for ever: `meltemi validate` hung and ate memory).
    #[test]
    fn a_syntax_error_is_one_error_with_its_line() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nmetadata: {name: x\n  bad: [\n";
        let mut inputs = Inputs::default();
        let mut errors = Vec::new();
        inputs.add_yaml("m.yaml", text, &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].object, "m.yaml#2");
        assert!(
            errors[0].message.contains("line 6"),
            "{}",
            errors[0].message
        );
    }
}
