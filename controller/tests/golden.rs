//! Golden tests: rendered EnvoyFilters (and bootstraps, and each route object's report) for every
//! protocol and every Aeraki example manifest, compared with `testdata/golden/*.yaml`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p meltemi-controller --test golden`, then review.
//! Every rendered EnvoyFilter is also checked against Istio's EnvoyFilter CRD schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meltemi_controller::bootstrap::{bootstrap, BootstrapOptions};
use meltemi_controller::inputs::{Inputs, Settings};
use meltemi_controller::render::{render_all, to_yaml};
use meltemi_controller::schema;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn load(files: &[&str], ns: &str, settings: Settings) -> Inputs {
    let mut inputs = Inputs {
        settings: Settings {
            default_namespace: ns.into(),
            ..settings
        },
        ..Default::default()
    };
    let mut errors = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(testdata().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        inputs.add_yaml(f, &text, &mut errors);
    }
    assert!(errors.is_empty(), "load errors: {errors:#?}");
    inputs
}

/// Filters, then the reports, then (if it builds) the bootstrap, as one YAML text.
fn render_text(inputs: &Inputs, with_bootstrap: bool) -> String {
    let r = render_all(inputs).expect("render");
    let schema = schema::envoy_filter_schema();
    for f in &r.filters {
        let v = serde_json::to_value(f).unwrap();
        let errs = schema::check_object(&v, &schema);
        assert!(
            errs.is_empty(),
            "{:?} violates Istio's EnvoyFilter schema: {errs:#?}",
            f.metadata.name
        );
    }
    let mut out = to_yaml(&r.filters);
    let reports: BTreeMap<String, serde_json::Value> = r
        .reports
        .iter()
        .map(|(k, rep)| {
            let list = |ps: &[meltemi_controller::routes::Problem]| {
                ps.iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect::<Vec<_>>()
            };
            (
                format!("{} {}/{}", k.kind, k.namespace, k.name),
                serde_json::json!({
                    "errors": list(&rep.problems.errors),
                    "warnings": list(&rep.problems.warnings),
                    "rendered": rep.rendered,
                }),
            )
        })
        .collect();
    out.push_str("---\n# reports (become status.conditions)\n");
    out.push_str(&serde_yaml_ng::to_string(&reports).unwrap());
    if with_bootstrap {
        let b = bootstrap(
            inputs,
            &BootstrapOptions {
                port_offset: 10_000,
                ..Default::default()
            },
        )
        .expect("bootstrap");
        out.push_str("---\n# bootstrap\n");
        out.push_str(&serde_yaml_ng::to_string(&b).unwrap());
    }
    out
}

fn check_golden(name: &str, text: &str) {
    let path = testdata().join("golden").join(format!("{name}.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    if want != text {
        let first = want
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name}: output differs from {} at line {}:\n want: {:?}\n got:  {:?}\n(UPDATE_GOLDEN=1 to accept)",
            path.display(),
            first + 1,
            want.lines().nth(first),
            text.lines().nth(first)
        );
    }
}

#[test]
fn protocols() {
    for p in ["dubbo", "thrift", "kafka", "zookeeper", "redis"] {
        let inputs = load(
            &[&format!("protocols/{p}.yaml")],
            "demo",
            Settings::default(),
        );
        check_golden(&format!("protocol-{p}"), &render_text(&inputs, true));
    }
}

#[test]
fn protocols_with_route_discovery() {
    for p in ["dubbo", "thrift"] {
        let settings = Settings {
            route_discovery_cluster: Some("meltemi-routes".into()),
            ..Default::default()
        };
        let inputs = load(&[&format!("protocols/{p}.yaml")], "demo", settings);
        let mut text = render_text(&inputs, false);
        // With a routes address: the `meltemi-routes` cluster and the poller extension.
        let b = bootstrap(
            &inputs,
            &BootstrapOptions {
                port_offset: 10_000,
                routes_address: Some("127.0.0.1:8080".into()),
                ..Default::default()
            },
        )
        .expect("bootstrap");
        text.push_str("---\n# bootstrap --routes-address 127.0.0.1:8080\n");
        text.push_str(&serde_yaml_ng::to_string(&b).unwrap());
        check_golden(&format!("protocol-{p}-discovery"), &text);
    }
}

/// Istio ingress/egress gateways: routes by `MetaRouter.spec.gateways`, observation by annotation.
#[test]
fn gateways() {
    let inputs = load(
        &["gateway/dubbo-ingress-thrift-egress.yaml"],
        "demo",
        Settings::default(),
    );
    let text = render_text(&inputs, false);
    assert!(text.contains("context: GATEWAY"));
    check_golden("gateway-dubbo-ingress-thrift-egress", &text);
}

/// DestinationRule TLS modes on the bridge twins (auto mTLS is in every other routing golden).
#[test]
fn mtls_modes() {
    let inputs = load(&["mtls/thrift-tls-modes.yaml"], "demo", Settings::default());
    check_golden("mtls-thrift-tls-modes", &render_text(&inputs, false));
    let plain = Settings {
        auto_mtls: false,
        ..Default::default()
    };
    let inputs = load(&["protocols/dubbo.yaml"], "demo", plain);
    let text = render_text(&inputs, false);
    assert!(text.contains("meltemi-bridge|") && !text.contains("transport_socket"));
}

/// `--istio-metrics`: the filter configs carry `istioMetrics` with the Service's labels
/// (`reporter` by side), and the bootstrap carries the `stats_tags` regexes.
#[test]
fn protocol_with_istio_metrics() {
    let settings = Settings {
        istio_metrics: true,
        ..Default::default()
    };
    let inputs = load(&["protocols/dubbo.yaml"], "demo", settings);
    let text = render_text(&inputs, true);
    assert!(text.contains(r#"reporter":"source"#), "{text}");
    assert!(text.contains(r#"reporter":"destination"#), "{text}");
    assert!(text.contains("(response_code=\\.=(.*?);\\.;)"), "{text}");
    check_golden("protocol-dubbo-istio-metrics", &text);
}

/// The `sidecar.istio.io/bootstrapOverride` ConfigMap (`meltemi bootstrap-override -n demo`).
#[test]
fn mesh_bootstrap_override() {
    let cm = meltemi_controller::mesh_bootstrap::config_map("meltemi-bootstrap", "demo", "meltemi");
    check_golden(
        "mesh-bootstrap-override",
        &serde_yaml_ng::to_string(&cm).unwrap(),
    );
}

fn aeraki_cases(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(testdata().join("aeraki"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn aeraki_dubbo_examples() {
    for f in aeraki_cases("metaprotocol-dubbo__") {
        if !(f.contains("metarouter") || f.contains("traffic-")) {
            continue;
        }
        let files = [
            "aeraki/metaprotocol-dubbo__serviceentry.yaml".to_string(),
            "aeraki/metaprotocol-dubbo__destinationrule.yaml".to_string(),
            format!("aeraki/{f}"),
        ];
        let inputs = load(
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
            "meta-dubbo",
            Settings::default(),
        );
        assert_eq!(inputs.meta_routers.len(), 1, "{f}");
        check_golden(
            &format!("aeraki-{}", f.trim_end_matches(".yaml")),
            &render_text(&inputs, false),
        );
    }
}

#[test]
fn aeraki_thrift_examples() {
    for f in aeraki_cases("metaprotocol-thrift__") {
        if !(f.contains("metarouter") || f.contains("traffic-")) {
            continue;
        }
        let files = [
            "aeraki/metaprotocol-thrift__thrift-sample.yaml".to_string(),
            "aeraki/metaprotocol-thrift__destinationrule.yaml".to_string(),
            format!("aeraki/{f}"),
        ];
        let inputs = load(
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
            "meta-thrift",
            Settings::default(),
        );
        assert_eq!(inputs.meta_routers.len(), 1, "{f}");
        check_golden(
            &format!("aeraki-{}", f.trim_end_matches(".yaml")),
            &render_text(&inputs, false),
        );
    }
}

#[test]
fn aeraki_redis_examples() {
    for f in aeraki_cases("redis__") {
        let text = std::fs::read_to_string(testdata().join("aeraki").join(&f)).unwrap();
        if !(text.contains("kind: RedisService") || text.contains("kind: RedisDestination")) {
            continue;
        }
        let files = [
            "aeraki/redis__redis-single.yaml".to_string(),
            "aeraki/redis__redis-cluster.yaml".to_string(),
            format!("aeraki/{f}"),
        ];
        let inputs = load(
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
            "redis",
            Settings::default(),
        );
        assert!(
            inputs.redis_services.len() + inputs.redis_destinations.len() >= 1,
            "{f}"
        );
        check_golden(
            &format!("aeraki-{}", f.trim_end_matches(".yaml")),
            &render_text(&inputs, false),
        );
    }
}

/// Every Aeraki MetaRouter example renders without errors (only warnings for fields we accept but
/// do not apply), and Aeraki's other manifests (Deployments, ConfigMaps, ...) are skipped quietly.
#[test]
fn every_aeraki_example_loads_and_routers_render_without_errors() {
    let mut routers = 0;
    for f in aeraki_cases("") {
        let ns = if f.starts_with("metaprotocol-dubbo") {
            "meta-dubbo"
        } else if f.starts_with("metaprotocol-thrift") {
            "meta-thrift"
        } else {
            "redis"
        };
        let mut files = vec![format!("aeraki/{f}")];
        if f.starts_with("metaprotocol-dubbo") {
            files.extend([
                "aeraki/metaprotocol-dubbo__serviceentry.yaml".into(),
                "aeraki/metaprotocol-dubbo__destinationrule.yaml".into(),
            ]);
        } else if f.starts_with("metaprotocol-thrift") {
            files.extend([
                "aeraki/metaprotocol-thrift__thrift-sample.yaml".into(),
                "aeraki/metaprotocol-thrift__destinationrule.yaml".into(),
            ]);
        }
        let mut inputs = load(
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
            ns,
            Settings::default(),
        );
        inputs
            .service_entries
            .dedup_by(|a, b| a.metadata.name == b.metadata.name);
        inputs
            .destination_rules
            .dedup_by(|a, b| a.metadata.name == b.metadata.name);
        routers += inputs.meta_routers.len();
        let r = render_all(&inputs).expect("render");
        for (k, rep) in &r.reports {
            if k.kind == "MetaRouter" {
                assert!(
                    rep.problems.errors.is_empty(),
                    "{f}: {k:?}: {:#?}",
                    rep.problems.errors
                );
                assert!(!rep.rendered.is_empty(), "{f}: {k:?} rendered nothing");
            }
        }
    }
    assert_eq!(routers, 13, "MetaRouter examples seen");
}
