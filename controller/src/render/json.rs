//! JSON builders for the typed configs handed to Envoy: our network filter entry (dynamic module or
//! wasm), the bridge upstream of a twin cluster, and the TypedStruct wrapping istiod passes through.
//! A leaf: it knows the filter config and the settings, nothing of Istio objects or of the render.

use meltemi_proto as pb;
use serde_json::Value;

use super::names::{stat_piece, DYNAMIC_MODULE_FILTER, WASM_FILTER};
use crate::inputs::{Adapter, Settings};

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
            // A VM that traps is reloaded (after a back-off) for new connections instead of
            // closing every connection of its worker from then on (Envoy's FAIL_CLOSED).
            let config = obj([
                ("name", "meltemi".into()),
                ("root_id", "meltemi".into()),
                ("failure_policy", "FAIL_RELOAD".into()),
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
