//! Issue 15, TARS observability: a real `@tars/rpc` servant and the framework's own client
//! (testkit/clients/tars, installed by scripts/setup.d/tars.sh) through the real Envoy with our
//! `.so` and `.wasm` both in the chain before `tcp_proxy`; one client connection per dialect
//! (TARS, TUP 2, TUP 3), many calls in flight on it, a 300 KB call decoded from its head.
//! Oracles: the client's tally (what it sent per function and the outcome it saw) and a
//! recording relay between Envoy and the servant (bytes each way). Every counter of both
//! artifacts (latency aside) must equal what they say; the Istio series carry the iRet codes.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, wait_for, Envoy, EnvoyOptions, Process, Relay, TempDir};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const SERVANT: &str = "Meltemi.CalcServer.CalcObj";
/// Configured labels: `add` by servant and function, the rest by function; `nosuch` is `other`.
const METHODS: &[&str] = &["Meltemi.CalcServer.CalcObj:add", "echo", "fail", "log"];

fn clients() -> PathBuf {
    meltemi_testkit::workspace_root()
        .join("testkit")
        .join("clients")
        .join("tars")
}

/// The servant (`server.js`) on a free port, ready once it accepts.
fn servant(dir: &TempDir) -> (Process, u16) {
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.current_dir(clients())
        .env("NODE_NO_WARNINGS", "1")
        .args(["server.js", &port.to_string(), "v1", SERVANT]);
    let mut p = Process::spawn("tars-servant", cmd, dir.path().join("servant.log")).expect("node");
    let up = wait_for(Duration::from_secs(15), || {
        if !p.is_running() {
            return Some(false);
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| true)
    });
    assert_eq!(up, Some(true), "servant did not start: {}", p.log_tail(20));
    (p, port)
}

/// Runs the framework's client (`client.js`) with `plan` against `port`; its JSON tally.
fn client(port: u16, plan: &str) -> String {
    let out = Command::new("timeout")
        .args(["60", "node", "client.js", &port.to_string(), plan])
        .current_dir(clients())
        .env("NODE_NO_WARNINGS", "1")
        .output()
        .expect("node client");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `{"calls":{"add":{"sent":20,"ok":20},...},"tags":{...}}` as (function, key) -> count.
fn tally(json: &str) -> BTreeMap<(String, String), u64> {
    let calls = json
        .split_once(r#""calls":{"#)
        .and_then(|(_, r)| r.split_once(r#"},"tags""#))
        .unwrap_or_else(|| panic!("not a tally: {json}"))
        .0;
    let mut m = BTreeMap::new();
    for part in calls.split("},") {
        let (func, body) = part.split_once(":{").expect("fn:{..}");
        for kv in body.trim_end_matches('}').split(',') {
            let (k, v) = kv.rsplit_once(':').expect("k:v");
            m.insert(
                (
                    func.trim_matches('"').to_string(),
                    k.trim_matches('"').to_string(),
                ),
                v.parse().expect("count"),
            );
        }
    }
    m
}

fn label(func: &str) -> &str {
    match func {
        "add" => "Meltemi_CalcServer_CalcObj:add",
        "echo" | "fail" | "log" => func,
        _ => "other",
    }
}

#[test]
fn tars_and_tup_counts_per_function_and_ret_code_match_the_framework_client_in_both_artifacts() {
    let dir = TempDir::new("observe-tars").expect("tmp");
    let (_servant, port) = servant(&dir);
    let relay = Relay::start(port).expect("relay");
    let listen = free_port();
    let methods = METHODS
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(",");
    let cfg = |prefix: &str| {
        format!(
            r#"{{"protocol":"tars","stat_prefix":"{prefix}","methods":[{methods}],"maxHeldBytes":65536,
            "istioMetrics":{{"enabled":true,"requestMethod":true,"sourceWorkload":"e2e-client",
            "sourceWorkloadNamespace":"default","destinationWorkload":"{prefix}",
            "destinationService":"tars.default.svc.cluster.local",
            "destinationServiceName":"tars","destinationServiceNamespace":"default"}}}}"#
        )
    };
    let yaml = bootstrap(
        listen,
        &[
            Filter::Module(cfg("so")),
            Filter::Wasm(cfg("wasm")),
            Filter::TcpProxy("tars".into()),
        ],
        &[("tars", relay.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");

    // One connection per dialect, every call of a plan in flight at once.
    let calls = r#"[{"fn":"add","n":40},{"fn":"echo","n":10},{"fn":"echo","n":1,"size":300000},
        {"fn":"fail","code":-9,"n":5},{"fn":"fail","code":-6,"n":3},{"fn":"fail","code":1234,"n":2},
        {"fn":"log","n":6,"oneway":true},{"fn":"nosuch","n":4}]"#;
    let mut sum: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (version, context) in [(1, r#","context":{"user":"alice"}"#), (2, ""), (3, "")] {
        let plan = format!(r#"{{"version":{version},"calls":{calls}{context}}}"#);
        let t = tally(&client(listen, &plan));
        // The framework's client saw the servant's answers: iRet per function.
        let get = |f: &str, k: &str| t.get(&(f.into(), k.into())).copied().unwrap_or(0);
        assert_eq!((get("add", "sent"), get("add", "ok")), (40, 40), "{t:?}");
        assert_eq!(get("add", "wrong"), 0);
        assert_eq!((get("echo", "sent"), get("echo", "ok")), (11, 11), "{t:?}");
        assert_eq!(get("fail", "err:-9"), 5, "{t:?}");
        assert_eq!(get("fail", "err:-6"), 3, "{t:?}");
        assert_eq!(get("fail", "err:1234"), 2, "{t:?}");
        assert_eq!(get("nosuch", "err:-3"), 4, "{t:?}");
        assert_eq!(get("log", "sent"), 6);
        for (k, v) in t {
            *sum.entry(k).or_default() += v;
        }
    }

    // Final counts once both artifacts saw the connections close.
    let done = wait_for(Duration::from_secs(10), || {
        let s = envoy.stats();
        (s.get("dynamicmodulescustom.tars.so.cx_active") == Some(&0)
            && s.get("wasmcustom.tars.wasm.cx_active") == Some(&0))
        .then_some(())
    });
    assert!(done.is_some(), "connections did not close");
    let (c2s, s2c) = relay.recorded().iter().fold((0, 0), |(a, b), r| {
        (a + r.c2s.len() as u64, b + r.s2c.len() as u64)
    });

    // The oracle: per label total/success/error from the client's tally.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for l in METHODS
        .iter()
        .map(|m| m.replace('.', "_"))
        .chain(["other".into()])
    {
        for o in ["total", "success", "error", "exception"] {
            want.insert(format!("method.{l}.{o}"), 0);
        }
    }
    let (mut calls, mut oneway, mut ok, mut err) = (0, 0, 0, 0);
    for ((func, k), v) in &sum {
        let l = label(func);
        match k.as_str() {
            "sent" => {
                *want.get_mut(&format!("method.{l}.total")).unwrap() += v;
                if func == "log" {
                    oneway += v;
                } else {
                    calls += v;
                }
            }
            "ok" if func != "log" => {
                *want.get_mut(&format!("method.{l}.success")).unwrap() += v;
                ok += v;
            }
            e if e.starts_with("err:") => {
                *want.get_mut(&format!("method.{l}.error")).unwrap() += v;
                err += v;
            }
            _ => {}
        }
    }
    for (k, v) in [
        ("cx_total", 3),
        ("cx_active", 0),
        ("downstream_rx_bytes", c2s),
        ("upstream_rx_bytes", s2c),
        ("panic", 0),
        ("cx_buffer_overflow", 0),
        ("held_bytes", 0),
        ("request", calls + oneway),
        ("request_call", calls),
        ("request_oneway", oneway),
        ("request_event", 0),
        ("request_active", 0),
        ("request_no_reply", 0),
        ("request_decoding_error", 0),
        ("response", ok + err),
        ("response_success", ok),
        ("response_error", err),
        ("response_exception", 0),
        ("response_unmatched", 0),
        ("response_decoding_error", 0),
        ("server_event", 0),
    ] {
        want.insert(k.into(), v);
    }
    assert_eq!(want["method.Meltemi_CalcServer_CalcObj:add.success"], 120);
    assert_eq!(want["method.other.error"], 12);
    let stats = envoy.stats();
    for (host, prefix) in [("dynamicmodulescustom", "so"), ("wasmcustom", "wasm")] {
        let p = format!("{host}.tars.{prefix}.");
        let got: BTreeMap<String, u64> = stats
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.to_string(), *v)))
            .filter(|(k, _)| {
                !k.contains("latency") && !k.ends_with("time_us") && !k.starts_with("callouts_")
            })
            .collect();
        let diff: Vec<String> = want
            .keys()
            .chain(got.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| got.get(*k) != want.get(*k))
            .map(|k| format!("{k}: ours {:?}, oracle {:?}", got.get(k), want.get(k)))
            .collect();
        assert!(diff.is_empty(), "{prefix}:\n{}", diff.join("\n"));
    }

    // Istio-style: request_protocol="tars", response_code = iRet, `none` for one-way calls.
    let mut want_total: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for ((func, k), v) in &sum {
        let code = match k.as_str() {
            "ok" if func == "log" => "none".to_string(),
            "ok" => "0".to_string(),
            e if e.starts_with("err:") => match &e[4..] {
                "1234" => "other".to_string(),
                c => c.to_string(),
            },
            _ => continue,
        };
        *want_total
            .entry((label(func).to_string(), code, "-".into()))
            .or_default() += v;
    }
    for artifact in ["so", "wasm"] {
        let metric = match artifact {
            "so" => "envoy_dynamicmodulescustom_istio_requests_total",
            _ => "istio_requests_total",
        };
        let got = meltemi_testkit::istio_series(
            &envoy.admin("/stats/prometheus"),
            metric,
            &[
                ("destination_workload", artifact),
                ("reporter", "destination"),
                ("request_protocol", "tars"),
                ("source_workload", "e2e-client"),
                ("destination_service_name", "tars"),
            ],
        );
        assert_eq!(got, want_total, "{artifact}");
    }
}
