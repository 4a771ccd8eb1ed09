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

fn cases(dir: &str, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(testdata().join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Istio VirtualServices for Dubbo and Thrift hosts, the shapes Aeraki's `dubbo_proxy` /
/// `thrift_proxy` generators and e2e tests used (30/70 split, version pin, method exact/prefix/
/// regex, header exact), rendered with the service and its DestinationRule.
#[test]
fn virtual_services() {
    for (p, ns) in [("dubbo", "meta-dubbo"), ("thrift", "thrift")] {
        let list = cases("virtualservice", &format!("{p}__"));
        assert_eq!(list.len(), 5, "{list:?}");
        for f in list {
            let files = [
                format!("virtualservice/{p}.yaml"),
                format!("virtualservice/{f}"),
            ];
            let inputs = load(
                &files.iter().map(String::as_str).collect::<Vec<_>>(),
                ns,
                Settings::default(),
            );
            assert_eq!(inputs.virtual_services.len(), 1, "{f}");
            let text = render_text(&inputs, p == "dubbo");
            assert!(text.contains("meltemi-bridge|"), "{f}: routed");
            assert!(!text.contains("errors:\n    - "), "{f}: no errors");
            check_golden(&format!("vs-{}", f.trim_end_matches(".yaml")), &text);
        }
    }
}

/// A VirtualService renders the route table of the MetaRouter with the same routes.
#[test]
fn a_virtual_service_routes_as_the_equivalent_meta_router() {
    let router = r#"
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: test-thrift-route}
spec:
  hosts: [thrift-sample-server.thrift.svc.cluster.local]
  routes:
    - name: jason
      match: {attributes: {user: {exact: jason}}}
      route: [{destination: {host: thrift-sample-server.thrift.svc.cluster.local, subset: v2}}]
    - name: pinned-methods
      match: {attributes: {method: {exact: ping}}}
      timeout: 500ms
      route: [{destination: {host: thrift-sample-server.thrift.svc.cluster.local, subset: v1}}]
    - name: pinned-methods-m1
      match: {attributes: {method: {exact: health}}}
      timeout: 500ms
      route: [{destination: {host: thrift-sample-server.thrift.svc.cluster.local, subset: v1}}]
    - name: route-2
      route:
        - {destination: {host: thrift-sample-server.thrift.svc.cluster.local, subset: v1}, weight: 30}
        - {destination: {host: thrift-sample-server.thrift.svc.cluster.local, subset: v2}, weight: 70}
"#;
    let tables = |extra: Option<&str>, vs: bool| {
        let mut files = vec!["virtualservice/thrift.yaml"];
        if vs {
            files.push("virtualservice/thrift__header-exact.yaml");
        }
        let mut inputs = load(&files, "thrift", Settings::default());
        if let Some(text) = extra {
            let mut errors = Vec::new();
            inputs.add_yaml("router.yaml", text, &mut errors);
            assert!(errors.is_empty(), "{errors:?}");
        }
        let r = render_all(&inputs).expect("render");
        (r.route_tables, r.filters)
    };
    let (from_vs, vs_filters) = tables(None, true);
    let (from_mr, mr_filters) = tables(Some(router), false);
    assert_eq!(from_vs.len(), 1);
    assert_eq!(from_vs, from_mr);
    // The same EnvoyFilters but for the annotation naming the route object.
    let strip = |fs: Vec<meltemi_controller::istio::EnvoyFilter>| {
        let mut v = serde_json::to_value(fs).unwrap();
        for f in v.as_array_mut().unwrap() {
            f["metadata"]["annotations"]
                .as_object_mut()
                .map(|a| a.remove("meltemi.io/routes"));
        }
        v
    };
    assert_eq!(strip(vs_filters), strip(mr_filters));
}

/// A MetaRouter and a VirtualService naming one host: the port decides, as in Aeraki; the loser
/// is reported naming the winner.
#[test]
fn virtual_service_and_meta_router_conflicts() {
    let inputs = load(
        &[
            "virtualservice/dubbo.yaml",
            "virtualservice/dubbo__split-30-70.yaml",
            "virtualservice/conflict__dubbo-metarouter.yaml",
        ],
        "meta-dubbo",
        Settings::default(),
    );
    let text = render_text(&inputs, false);
    assert!(text.contains("MetaRouter meta-dubbo/dubbo-pin-v2:\n  errors: []\n  rendered: []\n  warnings:\n  - 'spec.hosts: not applied to org.apache.dubbo.samples.basic.api.demoservice port 20880 (tcp-dubbo): VirtualService meta-dubbo/test-dubbo-route routes it"), "{text}");
    check_golden("vs-conflict-tcp-dubbo", &text);
    let inputs = load(
        &[
            "protocols/thrift.yaml",
            "virtualservice/conflict__metaprotocol-thrift-virtualservice.yaml",
        ],
        "demo",
        Settings::default(),
    );
    let text = render_text(&inputs, false);
    assert!(text.contains("VirtualService demo/thrift-demo:\n  errors: []\n  rendered: []\n  warnings:\n  - 'spec.hosts: not applied to thrift-demo.demo.svc.cluster.local port 9090 (tcp-metaprotocol-thrift): MetaRouter demo/thrift-demo routes it"), "{text}");
    check_golden("vs-conflict-tcp-metaprotocol-thrift", &text);
}

fn aeraki_cases(prefix: &str) -> Vec<String> {
    cases("aeraki", prefix)
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
            // Aeraki's own manifests have no field our tables do not know.
            for w in &rep.problems.warnings {
                assert!(
                    !w.message.starts_with("unknown field"),
                    "{f}: {k:?}: {}: {}",
                    w.path,
                    w.message
                );
            }
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
