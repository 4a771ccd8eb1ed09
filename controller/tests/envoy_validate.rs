//! The Envoy configuration we generate is accepted by the real Envoy 1.40 (`--mode validate`):
//! every bootstrap, and every EnvoyFilter patch placed the way istiod places it (our filter before
//! `tcp_proxy` in a listener, bridge clusters added beside an ADS config source).
//!
//! Needs the Envoy binary (scripts/setup.sh, or `MELTEMI_ENVOY`) and the built artifacts
//! (scripts/build-artifacts.sh, or `MELTEMI_MODULE_DIR` / `MELTEMI_WASM`): validation loads the
//! dynamic module and the wasm file and hands them our JSON config.

use std::path::Path;
use std::process::Command;

use meltemi_controller::bootstrap::{bootstrap, BootstrapOptions};
use meltemi_controller::inputs::{Inputs, Settings};
use meltemi_controller::render::{render_all, TCP_PROXY};
use serde_json::{json, Value};

fn settings() -> Settings {
    Settings {
        wasm_path: meltemi_testkit::artifacts::wasm_path()
            .display()
            .to_string(),
        ..Default::default()
    }
}

fn load(files: &[&str], ns: &str, settings: Settings) -> Inputs {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut inputs = Inputs {
        settings: Settings {
            default_namespace: ns.into(),
            ..settings
        },
        ..Default::default()
    };
    let mut errors = Vec::new();
    for f in files {
        inputs.add_yaml(
            f,
            &std::fs::read_to_string(dir.join(f)).unwrap(),
            &mut errors,
        );
    }
    assert!(errors.is_empty(), "{errors:?}");
    inputs
}

/// The real Envoy binary: `$MELTEMI_ENVOY`, else the project's virtualenv (scripts/setup.sh).
fn envoy_binary() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("MELTEMI_ENVOY") {
        return p.into();
    }
    let lib = meltemi_testkit::workspace_root().join(".venv").join("lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no Envoy binary under {}: run scripts/setup.sh or set MELTEMI_ENVOY",
                lib.display()
            )
        })
}

fn envoy_validate(name: &str, config: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let out = Command::new(envoy_binary())
        .args(["--mode", "validate", "--log-level", "warning", "-c"])
        .arg(&path)
        .env(
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            meltemi_testkit::artifacts::module_dir(),
        )
        .output()
        .expect("run envoy");
    assert!(
        out.status.success(),
        "{name}: envoy --mode validate refused it:\n{}\n{}\nconfig:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        serde_json::to_string_pretty(config).unwrap()
    );
}

/// How many embedded Meltemi configs carry a route table (so a test knows routing is exercised).
fn routed_configs(v: &Value) -> usize {
    match v {
        Value::Object(m) => {
            let here = m.get("@type").and_then(|t| t.as_str())
                == Some("type.googleapis.com/google.protobuf.StringValue")
                && m.get("value")
                    .and_then(|s| s.as_str())
                    .and_then(|s| meltemi_proto::Config::from_json(s).ok())
                    .is_some_and(|c| c.routes.is_some());
            usize::from(here) + m.values().map(routed_configs).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(routed_configs).sum(),
        _ => 0,
    }
}

fn envoy_output(config: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.json");
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let out = Command::new(envoy_binary())
        .args(["--mode", "validate", "--log-level", "warning", "-c"])
        .arg(&path)
        .env(
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            meltemi_testkit::artifacts::module_dir(),
        )
        .output()
        .expect("run envoy");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn static_cluster(name: &str, port: u32, http2: bool) -> Value {
    let mut c = json!({
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    });
    if http2 {
        c["typed_extension_protocol_options"] = json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }});
    }
    c
}

/// A sidecar-like bootstrap holding every patch of the rendered EnvoyFilters.
fn sidecar_with_patches(inputs: &Inputs) -> Value {
    proxy_with_patches(inputs, |c| c != "GATEWAY")
}

/// The same for a gateway: the patches with context GATEWAY (`None` if there are none).
fn gateway_with_patches(inputs: &Inputs) -> Option<Value> {
    let v = proxy_with_patches(inputs, |c| c == "GATEWAY");
    (!v["static_resources"]["listeners"].as_array()?.is_empty()).then_some(v)
}

/// A proxy-like bootstrap holding the patches whose context passes `context`.
fn proxy_with_patches(inputs: &Inputs, context: impl Fn(&str) -> bool) -> Value {
    let r = render_all(inputs).expect("render");
    let mut listeners = Vec::new();
    let mut clusters = vec![
        static_cluster("xds-grpc", 15010, true),
        // istio-agent's SDS server: the bridge twins' mTLS certificates come from it.
        static_cluster(meltemi_controller::mtls::SDS_CLUSTER, 15011, true),
        static_cluster("outbound|1||upstream", 1, false),
    ];
    for (i, f) in r.filters.iter().enumerate() {
        for p in f
            .spec
            .config_patches
            .iter()
            .filter(|p| context(&p.match_.context))
        {
            match p.apply_to.as_str() {
                // The tcp_proxy MERGE (the routes' primary cluster) is a whole TcpProxy here.
                "NETWORK_FILTER" if p.patch.operation == "MERGE" => listeners.push(json!({
                    "name": format!("l{i}_{}", listeners.len()),
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 20000 + listeners.len()}},
                    "filter_chains": [{"filters": [p.patch.value]}],
                })),
                "NETWORK_FILTER" => listeners.push(json!({
                    "name": format!("l{i}_{}", listeners.len()),
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 20000 + listeners.len()}},
                    "filter_chains": [{"filters": [
                        p.patch.value,
                        {"name": TCP_PROXY, "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": "t", "cluster": "outbound|1||upstream"}},
                    ]}],
                })),
                "CLUSTER" => clusters.push(p.patch.value.to_json()),
                other => panic!("unexpected patch {other}"),
            }
        }
    }
    json!({
        "node": {"id": "sidecar", "cluster": "sidecar"},
        "dynamic_resources": {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

#[test]
fn bootstraps_validate() {
    for p in ["dubbo", "thrift", "kafka", "zookeeper", "redis"] {
        let inputs = load(&[&format!("protocols/{p}.yaml")], "demo", settings());
        let b = bootstrap(
            &inputs,
            &BootstrapOptions {
                port_offset: 10_000,
                ..Default::default()
            },
        )
        .unwrap();
        envoy_validate(&format!("bootstrap-{p}"), &b);
    }
    // With route discovery: the routes cluster exists.
    let s = Settings {
        route_discovery_cluster: Some("meltemi-routes".into()),
        ..settings()
    };
    let inputs = load(&["protocols/dubbo.yaml"], "demo", s);
    let opts = BootstrapOptions {
        port_offset: 10_000,
        routes_address: Some("127.0.0.1:18080".into()),
        ..Default::default()
    };
    let b = bootstrap(&inputs, &opts).unwrap();
    envoy_validate("bootstrap-dubbo-discovery", &b);
}

#[test]
fn envoyfilter_patches_validate() {
    for p in ["dubbo", "thrift", "kafka", "zookeeper", "redis"] {
        let inputs = load(&[&format!("protocols/{p}.yaml")], "demo", settings());
        let v = sidecar_with_patches(&inputs);
        envoy_validate(&format!("patches-{p}"), &v);
    }
    let cases: [(&str, &[&str]); 4] = [
        ("demo", &["gateway/dubbo-ingress-thrift-egress.yaml"]),
        ("demo", &["mtls/thrift-tls-modes.yaml"]),
        (
            "meta-dubbo",
            &[
                "aeraki/metaprotocol-dubbo__serviceentry.yaml",
                "aeraki/metaprotocol-dubbo__destinationrule.yaml",
                "aeraki/metaprotocol-dubbo__traffic-split.yaml",
            ],
        ),
        (
            "meta-thrift",
            &[
                "aeraki/metaprotocol-thrift__thrift-sample.yaml",
                "aeraki/metaprotocol-thrift__destinationrule.yaml",
                "aeraki/metaprotocol-thrift__metarouter-local-ratelimit.yaml",
            ],
        ),
    ];
    for (i, (ns, files)) in cases.into_iter().enumerate() {
        let v = sidecar_with_patches(&load(files, ns, settings()));
        assert!(routed_configs(&v) > 0);
        envoy_validate(&format!("patches-{ns}-{i}"), &v);
        if let Some(g) = gateway_with_patches(&load(files, ns, settings())) {
            assert!(routed_configs(&g) > 0);
            envoy_validate(&format!("gateway-patches-{ns}-{i}"), &g);
        }
    }
}

/// The full routing config (the `meltemi-proto` schema's `routes`) is accepted by the module's
/// config hook in the real Envoy.
#[test]
fn routing_config_reaches_the_module() {
    let inputs = load(&["protocols/dubbo.yaml"], "demo", settings());
    let b = bootstrap(
        &inputs,
        &BootstrapOptions {
            port_offset: 10_000,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(routed_configs(&b) > 0, "the dubbo bootstrap routes");
    let (ok, log) = envoy_output(&b);
    assert!(ok, "the module refused the routing config:\n{log}");
}

/// Merges `over` into `base` as pilot-agent merges a bootstrap override (protobuf merge:
/// singular fields replace, repeated fields append, messages merge field by field).
fn proto_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => proto_merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => b.extend(o.iter().cloned()),
        (b, o) => *b = o.clone(),
    }
}

/// In a mesh: the sidecar with our route-discovery patches, merged with the
/// `sidecar.istio.io/bootstrapOverride` ConfigMap's `custom_bootstrap.json` as pilot-agent merges
/// it, is accepted by the real Envoy (the module's poller extension loads, the filter configs
/// name the controller's outbound cluster).
#[test]
fn the_bootstrap_override_merges_into_a_sidecar_and_validates() {
    use meltemi_controller::mesh_bootstrap::{config_map, KEY};
    let routes = "outbound|8080||meltemi.meltemi-system.svc.cluster.local";
    let s = Settings {
        route_discovery_cluster: Some(routes.into()),
        ..settings()
    };
    let files = [
        "aeraki/metaprotocol-thrift__thrift-sample.yaml",
        "aeraki/metaprotocol-thrift__destinationrule.yaml",
        "aeraki/metaprotocol-thrift__metarouter-local-ratelimit.yaml",
    ];
    let mut sidecar = sidecar_with_patches(&load(&files, "meta-thrift", s));
    let text = serde_json::to_string(&sidecar).unwrap();
    assert!(
        text.contains("routeDiscovery"),
        "the patches discover routes"
    );
    // CDS would deliver the controller's cluster; a static stand-in here.
    sidecar["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
        .push(static_cluster(routes, 8080, false));
    let cm = config_map("meltemi-bootstrap", "meta-thrift", "meltemi");
    let fragment: Value = serde_json::from_str(cm["data"][KEY].as_str().unwrap()).unwrap();
    proto_merge(&mut sidecar, &fragment);
    assert_eq!(sidecar["bootstrap_extensions"].as_array().unwrap().len(), 1);
    envoy_validate("mesh-bootstrap-override", &sidecar);
}
