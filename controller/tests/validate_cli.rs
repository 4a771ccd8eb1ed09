//! `meltemi validate` as users run it: Aeraki's manifests with fields Meltemi does not apply, and a
//! VirtualService with a typo, are warnings naming the field (exit 0); `--strict` makes them
//! errors (exit 1). `meltemi render` warns the same on stderr.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

use meltemi_testkit::TempDir;

fn testdata(f: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(f),
    )
    .unwrap()
}

fn meltemi(args: &[&str], dir: &TempDir) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meltemi"))
        .args(args)
        .arg("-f")
        .arg(dir.path())
        .output()
        .expect("run meltemi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Aeraki's consistent-hash and outlier-detection examples' DestinationRule fields, on one rule.
const LB: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: thrift-lb, namespace: meta-thrift}
spec:
  host: thrift-sample-server.meta-thrift.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: method}
    outlierDetection: {consecutiveErrors: 1, interval: 1s, baseEjectionTime: 15s, maxEjectionPercent: 100}
"#;

const TYPO: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: split, namespace: meta-thrift}
spec:
  hosts: [thrift-sample-server]
  http:
    - name: split
      retries: {attempts: 3}
      route:
        - destination: {host: thrift-sample-server.meta-thrift.svc.cluster.local, subset: v1}
          weight: 30
        - destination: {host: thrift-sample-server.meta-thrift.svc.cluster.local, subset: v2}
          wieght: 70
"#;

#[test]
fn strict_validate_fails_on_fields_not_applied_and_typos() {
    let dir = TempDir::new("validate-strict").unwrap();
    for f in [
        "aeraki/metaprotocol-thrift__thrift-sample.yaml",
        "aeraki/metaprotocol-thrift__destinationrule.yaml",
        "aeraki/metaprotocol-thrift__metarouter-header-mutation.yaml",
    ] {
        std::fs::write(dir.path().join(f.replace('/', "_")), testdata(f)).unwrap();
    }
    std::fs::write(dir.path().join("vs.yaml"), TYPO).unwrap();
    std::fs::write(dir.path().join("lb.yaml"), LB).unwrap();
    let want = [
        "DestinationRule meta-thrift/thrift-lb: spec.trafficPolicy.loadBalancer: not applied: per-request routing (the bridge twins) uses Envoy's default round robin",
        "DestinationRule meta-thrift/thrift-lb: spec.trafficPolicy.outlierDetection: not applied: no outlier detection on the bridge twins yet",
        "MetaRouter meta-thrift/test-metaprotocol-thrift-route: spec.routes[0].requestMutation: not applied",
        "VirtualService meta-thrift/split: spec.http[0].route[1].wieght: unknown field: not part of VirtualService, ignored; did you mean \"weight\"?",
        "VirtualService meta-thrift/split: spec.http[0].retries: not applied",
        // The port is tcp-metaprotocol-thrift: the MetaRouter routes it, as in Aeraki.
        "VirtualService meta-thrift/split: spec.hosts: not applied to thrift-sample-server.meta-thrift.svc.cluster.local port 9090 (tcp-metaprotocol-thrift-hello-server): MetaRouter meta-thrift/test-metaprotocol-thrift-route routes it",
    ];

    let (code, out, _) = meltemi(&["validate", "-n", "meta-thrift"], &dir);
    eprintln!("{out}");
    assert_eq!(code, 0, "warnings only:\n{out}");
    for w in want {
        assert!(out.contains(&format!("warning: {w}")), "{w}\n{out}");
    }

    let (code, out, _) = meltemi(&["validate", "-n", "meta-thrift", "--strict"], &dir);
    assert_eq!(code, 1, "--strict fails:\n{out}");
    for w in want {
        assert!(out.contains(&format!("error: {w}")), "{w}\n{out}");
    }
    assert!(!out.contains("warning:"), "{out}");

    let (code, _, err) = meltemi(&["render", "-n", "meta-thrift"], &dir);
    assert_eq!(code, 0, "{err}");
    for w in want {
        assert!(err.contains(&format!("warning: {w}")), "{w}\n{err}");
    }
}
