//! Issue 13: every PromQL expression of the Grafana dashboards under `deploy/grafana/` returns
//! series from a real Prometheus that scraped a real Envoy with Meltemi's filter after real
//! traffic (Apache Thrift's Python client and server: successes, declared exceptions,
//! TApplicationExceptions, oneway calls, and calls whose client hung up before the reply). A
//! dashboard whose queries match no series is broken for its users.
//!
//! Once per artifact (`.so`, `.wasm`), each alone in its Envoy, as in a sidecar. Prometheus
//! scrapes with `deploy/grafana/prometheus-relabel.yaml` as a user is told to.
//! Template variables are set to "All" (`$reporter` etc. -> their `allValue`, `.*`),
//! `$__rate_interval` to a window that covers the traffic, and every query is evaluated at the
//! first scrape after the traffic (`testkit::prometheus::dashboard_queries`). A query fails when
//! it returns no series, only zeros or NaN (the traffic lights up every panel, so a query
//! with a wrong matcher shows here even though the counters exist at zero from the start), or
//! lacks a label it groups by.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::prometheus::{dashboard_queries, unix_now};
use meltemi_testkit::{
    free_port, run_client, venv_python, workspace_root, Envoy, EnvoyOptions, Prometheus,
    ThriftServer,
};
use std::time::Duration;

const METHODS: &str = r#"["add","get","ping","log","Calc:add"]"#;

fn filter(artifact: &str) -> Filter {
    let cfg = format!(
        r#"{{"protocol":"thrift","stat_prefix":"{artifact}","methods":{METHODS},
        "istioMetrics":{{"enabled":true,"requestMethod":true,"sourceWorkload":"e2e-client",
        "sourceWorkloadNamespace":"default","destinationWorkload":"calc",
        "destinationService":"calc.default.svc.cluster.local",
        "destinationServiceName":"calc","destinationServiceNamespace":"default"}}}}"#
    );
    match artifact {
        "so" => Filter::Module(cfg),
        _ => Filter::Wasm(cfg),
    }
}

/// A framed binary call of `get`, then the client resets the connection (`SO_LINGER` 0) before
/// the answer: Istio counts it as `response_code="none"`, `response_flags="UC"`. (A plain close
/// is a half-close that `tcp_proxy` passes on, and the answer still arrives.)
fn call_and_reset(port: u16) {
    let script = r#"
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
m = struct.pack(">Ii", 0x80010001, 3) + b"get" + struct.pack(">i", 1) + b"\x0b\x00\x01" + struct.pack(">i", 1) + b"k\x00"
s.sendall(struct.pack(">I", len(m)) + m)
s.close()
"#;
    let out = std::process::Command::new(venv_python())
        .args(["-c", script, &port.to_string()])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dashboards() -> Vec<(String, String)> {
    let dir = workspace_root().join("deploy/grafana");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("deploy/grafana")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

fn every_dashboard_query_returns_series(artifact: &str) {
    let server = ThriftServer::start().expect("thrift server");
    let listen = free_port();
    let yaml = bootstrap(
        listen,
        &[filter(artifact), Filter::TcpProxy("calc".into())],
        &[("calc", server.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    let prom = Prometheus::start(&[envoy.admin_port()]).expect("prometheus");
    // A scrape before the traffic: rates start from the counters' zeros.
    prom.wait_scraped_after(unix_now(), Duration::from_secs(20))
        .expect("first scrape");
    let started = unix_now();

    run_client(
        "thrift_calls.py",
        &["127.0.0.1", &listen.to_string()],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log()));
    for _ in 0..3 {
        call_and_reset(listen);
    }
    // Connections closed (so the hung-up calls are counted), then one more scrape.
    let settled = meltemi_testkit::wait_for(Duration::from_secs(10), || {
        let s = envoy.stats();
        s.iter()
            .any(|(k, v)| k.ends_with(&format!(".{artifact}.cx_active")) && *v == 0)
            .then_some(())
    });
    assert!(settled.is_some(), "connections did not close");
    let done = unix_now();
    prom.wait_scraped_after(done, Duration::from_secs(20))
        .expect("scrape after the traffic");
    let at = done + 1.5;
    let window = format!("{}s", (at - started).ceil() as u64 + 5);

    let mut failures = Vec::new();
    let mut ran = 0;
    for (file, json) in dashboards() {
        let queries = dashboard_queries(&json, &window).unwrap_or_else(|e| panic!("{file}: {e}"));
        for q in queries {
            ran += 1;
            let series = prom
                .query_at(&q.expr, Some(at))
                .unwrap_or_else(|e| panic!("{file} {}: {e}", q.origin));
            let values: Vec<String> = series
                .iter()
                .map(|s| format!("{:?} {}", s.labels, s.value))
                .collect();
            println!("{artifact} {file} {}: {}", q.origin, values.join("; "));
            let why = if series.is_empty() {
                Some("no series".to_string())
            } else if !series.iter().any(|s| s.value.is_finite() && s.value != 0.0) {
                Some("only zeros or NaN".to_string())
            } else {
                q.by.iter()
                    .find(|l| !series.iter().any(|s| s.labels.contains_key(*l)))
                    .map(|l| format!("no series has the label `{l}` it groups by"))
            };
            if let Some(why) = why {
                failures.push(format!("{file} {}: {why}\n    {}", q.origin, q.expr));
            }
        }
    }
    assert!(ran > 0, "no queries in the dashboards");
    assert!(
        failures.is_empty(),
        "{artifact}: {} of {ran} dashboard queries are broken:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn grafana_dashboard_queries_return_series_from_the_so() {
    every_dashboard_query_returns_series("so");
}

#[test]
fn grafana_dashboard_queries_return_series_from_the_wasm() {
    every_dashboard_query_returns_series("wasm");
}
