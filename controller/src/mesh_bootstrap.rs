//! Route discovery in a mesh: the `ConfigMap` a pod names in the annotation
//! `sidecar.istio.io/bootstrapOverride` to add the module's route-discovery poller to its
//! sidecar's bootstrap.
//!
//! An EnvoyFilter patches xDS resources only, never the bootstrap, so it cannot add a bootstrap
//! extension. Istio's injector, when a pod carries that annotation, mounts the named ConfigMap
//! (same namespace as the pod) at `/etc/istio/custom-bootstrap` and points pilot-agent at
//! `custom_bootstrap.json` in it (`ISTIO_BOOTSTRAP_OVERRIDE`); pilot-agent merges that JSON into
//! the bootstrap it generates (singular fields replace, repeated fields such as
//! `bootstrap_extensions` append). The fragment here carries only the poller extension: the
//! route endpoint's cluster (`outbound|8080||meltemi.<ns>.svc.cluster.local`) comes from the
//! mesh's CDS like any other.
//!
//! Without it the module still discovers routes, polling from the connections on traffic
//! (docs/design.md, "Route discovery").

use serde_json::{json, Value};

/// The pod annotation that names the ConfigMap.
pub const ANNOTATION: &str = "sidecar.istio.io/bootstrapOverride";
/// The ConfigMap key pilot-agent reads.
pub const KEY: &str = "custom_bootstrap.json";
/// Default ConfigMap name.
pub const DEFAULT_NAME: &str = "meltemi-bootstrap";

/// The module's route-discovery poller as a `bootstrap_extensions` entry (config `{}`).
pub fn poller_extension(module_name: &str) -> Value {
    json!({
        "name": "envoy.bootstrap.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.dynamic_modules.v3.DynamicModuleBootstrapExtension",
            "dynamic_module_config": {"name": module_name},
            "extension_name": "meltemi-route-discovery",
            "extension_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": "{}",
            },
        },
    })
}

/// The bootstrap fragment pilot-agent merges into the sidecar's bootstrap.
pub fn fragment(module_name: &str) -> Value {
    json!({"bootstrap_extensions": [poller_extension(module_name)]})
}

/// The ConfigMap `name` in `namespace` whose `custom_bootstrap.json` is [`fragment`].
pub fn config_map(name: &str, namespace: &str, module_name: &str) -> Value {
    let text = serde_json::to_string_pretty(&fragment(module_name)).unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "meltemi"},
            "annotations": {
                "meltemi.io/usage": format!("pods opt in with the annotation {ANNOTATION}: {name}"),
            },
        },
        "data": {KEY: text},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_map_carries_the_fragment_as_json_under_the_key_pilot_agent_reads() {
        let cm = config_map("meltemi-bootstrap", "demo", "meltemi");
        let text = cm["data"][KEY].as_str().unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v, fragment("meltemi"));
        assert_eq!(
            v["bootstrap_extensions"][0]["typed_config"]["dynamic_module_config"]["name"],
            "meltemi"
        );
        assert_eq!(cm["metadata"]["namespace"], "demo");
    }
}
