//! Per-request Dubbo routing in the real Envoy 1.40: two Dubbo 2 providers (real Hessian2:
//! python-hessian decodes, dubbo-ssl-python encodes) that answer with their own version name,
//! and the real `dubbo-ssl-python` client keeping ONE connection (several threads share it, so
//! requests are pipelined and answers matched by request id). The module sits before
//! `tcp_proxy` (cluster `v1`, the primary); `v2`, `v3` and `down` are clusters whose upstream is
//! the module's HTTP-to-TCP bridge (the detour).
//! Needs the release `.so` and `MELTEMI_ENVOY`; Python from `MELTEMI_VENV` (or `.venv`).

mod common;

use common::{bridge_cluster, routed_listener, static_resources, tcp_cluster, wait_listening};
use meltemi_testkit::{free_port, venv_python, wait_for, Envoy, EnvoyOptions, Process, TempDir};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

fn script() -> std::path::PathBuf {
    meltemi_testkit::workspace_root().join("testkit/clients/route_dubbo.py")
}

fn provider(dir: &TempDir, name: &str) -> (Process, u16) {
    let port = free_port();
    let mut cmd = Command::new(venv_python());
    cmd.arg(script()).args(["serve", &port.to_string(), name]);
    let p = Process::spawn(name, cmd, dir.path().join(format!("{name}.log"))).unwrap();
    wait_listening(port, "dubbo provider");
    (p, port)
}

/// N calls of `method` on ONE client connection; answer -> count (`connections` checked = 1).
fn call(port: u16, n: usize, method: &str, extra: &[&str]) -> BTreeMap<String, u64> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(venv_python())
        .arg(script())
        .args(["call", &port.to_string(), &n.to_string(), method])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: BTreeMap<String, u64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got.remove("connections"), Some(1), "one client connection");
    got
}

const CASES: &[(&str, &str)] = &[
    ("pin_v1", r#"{"primary_cluster":"v1"}"#),
    (
        "pin_v2",
        r#"{"primary_cluster":"v1","default":{"cluster":"v2"}}"#,
    ),
    (
        "split",
        r#"{"primary_cluster":"v1","seed":7,"services":[{"service":"org.meltemi.demo.GreetingService","routes":[{"name":"split","route":{"weighted":[{"cluster":"v1","weight":90},{"cluster":"v2","weight":10}]}}]}]}"#,
    ),
    (
        "method",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"m","match":{"method":{"exact":"getV2"}},"route":{"cluster":"v2"}}]}]}"#,
    ),
    (
        "attach",
        r#"{"primary_cluster":"v1","services":[{"service":"org.meltemi.demo.GreetingService","routes":[
            {"name":"grp","match":{"attributes":{"group":{"exact":"canary"}}},"route":{"cluster":"v2"}},
            {"name":"ver","match":{"attributes":{"version":{"prefix":"2."}}},"route":{"cluster":"v2"}},
            {"name":"tag","match":{"attributes":{"x-tag":{"regex":"blue|green"}}},"route":{"cluster":"v2"}}]}]}"#,
    ),
    (
        "limit",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"lim","route":{"cluster":"v1"},"rate_limit":{"max_tokens":5,"fill_interval_ms":600000}}]}]}"#,
    ),
    (
        "down",
        r#"{"primary_cluster":"v1","default":{"cluster":"down"}}"#,
    ),
    (
        "timeout",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"t","route":{"cluster":"v2"},"timeout_ms":300}]}]}"#,
    ),
    (
        "stop",
        r#"{"primary_cluster":"v1","default":{"cluster":"v3"}}"#,
    ),
];

fn one(name: &str, n: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([(name.to_owned(), n)])
}

#[test]
fn dubbo_requests_are_routed_per_request_on_one_connection() {
    let dir = TempDir::new("route-dubbo").unwrap();
    let (v1, p1) = provider(&dir, "v1");
    let (v2, p2) = provider(&dir, "v2");
    let (mut v3, p3) = provider(&dir, "v3");
    let ports: Vec<u16> = CASES.iter().map(|_| free_port()).collect();
    let listeners: Vec<String> = CASES
        .iter()
        .zip(&ports)
        .map(|((n, r), p)| routed_listener("dubbo", n, *p, &r.replace(['\n', ' '], "")))
        .collect();
    let yaml = static_resources(
        &listeners,
        &[
            tcp_cluster("v1", p1),
            bridge_cluster("dubbo", "v2", p2, ""),
            bridge_cluster("dubbo", "v3", p3, ""),
            bridge_cluster("dubbo", "down", free_port(), ""),
        ],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    let port = |name: &str| ports[CASES.iter().position(|(n, _)| *n == name).unwrap()];
    let stat = |l: &str, s: &str| envoy.stat(&format!("dynamicmodulescustom.dubbo.{l}.{s}"));

    // Version routing: 100% to the chosen version, 4 threads pipelining on the one connection.
    assert_eq!(
        call(port("pin_v1"), 200, "sayHello", &["--threads", "4"]),
        one("v1", 200)
    );
    assert_eq!(
        call(port("pin_v2"), 200, "sayHello", &["--threads", "4"]),
        one("v2", 200)
    );
    assert_eq!(stat("pin_v2", "route.default.detoured"), Some(200));
    assert_eq!(stat("pin_v1", "route.default.detoured"), Some(0));
    let v2_seen = || v2.log().lines().filter(|l| l.starts_with("req ")).count() as u64;
    assert_eq!(v2_seen(), 200);
    // A provider's own heartbeat request ahead of its answer: on the fast path the client
    // answers it; on a detour the bridge answers it and keeps it out of the reply.
    let hb = |p: &Process| p.log().lines().filter(|l| *l == "hb answered").count();
    assert_eq!(call(port("pin_v1"), 3, "hbHello", &[]), one("v1", 3));
    assert_eq!(call(port("pin_v2"), 3, "hbHello", &[]), one("v2", 3));
    wait_for(Duration::from_secs(2), || (hb(&v2) == 3).then_some(()))
        .expect("the bridge answered the provider's heartbeats");
    assert_eq!(hb(&v1), 3);
    assert_eq!(v2_seen(), 203);
    // A provider's heartbeat on a bridge connection idle in Envoy's pool (Apache Dubbo sends
    // one after 60 s without traffic; this provider 0.5 s after its answer): Envoy's TCP pool
    // closes an idle connection that receives bytes (measured: `upstream_cx_destroy_local`),
    // so the provider never waits on an unanswered heartbeat on a live connection, and the
    // next detours open a new one and are answered.
    let closed = |p: &Process| p.log().lines().filter(|l| *l == "conn closed").count();
    let (hb0, closed0) = (hb(&v2), closed(&v2));
    assert_eq!(call(port("pin_v2"), 1, "idleHello", &[]), one("v2", 1));
    wait_for(Duration::from_secs(3), || {
        v2.log().lines().any(|l| l == "idle hb sent").then_some(())
    })
    .expect("the provider sent its idle heartbeat");
    let outcome = wait_for(Duration::from_secs(2), || {
        if hb(&v2) > hb0 {
            Some("answered")
        } else if closed(&v2) > closed0 {
            Some("connection closed")
        } else {
            None
        }
    });
    eprintln!(
        "idle bridge connection, provider heartbeat: {outcome:?}; cluster v2 cx_destroy_local {:?} remote {:?}",
        envoy.stat("cluster.v2.upstream_cx_destroy_local"),
        envoy.stat("cluster.v2.upstream_cx_destroy_remote")
    );
    assert_eq!(call(port("pin_v2"), 3, "sayHello", &[]), one("v2", 3));
    assert_eq!(outcome, Some("connection closed"));
    assert!(envoy.stat("cluster.v2.upstream_cx_destroy_local") >= Some(1));
    assert_eq!(v2_seen(), 207);

    // 90/10 over 2,000 requests, 8 threads on one connection: v2 ~ Bin(2000, 0.1), mean 200,
    // sd 13.4; +-60 is 4.5 sd.
    let got = call(port("split"), 2000, "sayHello", &["--threads", "8"]);
    let v2n = got.get("v2").copied().unwrap_or(0);
    assert_eq!(got.values().sum::<u64>(), 2000, "{got:?}");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!((200 - 60..=200 + 60).contains(&v2n), "v2 got {v2n} of 2000");
    eprintln!("dubbo 90/10: v2 {v2n} of 2000");
    assert_eq!(stat("split", "route.split.requests"), Some(2000));
    assert_eq!(stat("split", "route.split.detoured"), Some(v2n));
    assert_eq!(stat("split", "destination.v2.requests"), Some(v2n));
    assert_eq!(v2_seen(), 207 + v2n);

    // Method rule.
    assert_eq!(call(port("method"), 50, "getV2", &[]), one("v2", 50));
    assert_eq!(call(port("method"), 50, "sayHello", &[]), one("v1", 50));

    // Attachment rules: group, service version, a context attachment (regex).
    let a = port("attach");
    assert_eq!(
        call(a, 40, "sayHello", &["--group", "canary", "--threads", "4"]),
        one("v2", 40)
    );
    assert_eq!(
        call(a, 40, "sayHello", &["--group", "stable"]),
        one("v1", 40)
    );
    assert_eq!(
        call(a, 40, "sayHello", &["--version", "2.1.0"]),
        one("v2", 40)
    );
    assert_eq!(
        call(a, 40, "sayHello", &["--version", "1.2.0"]),
        one("v1", 40)
    );
    assert_eq!(
        call(a, 40, "sayHello", &["--attach", "x-tag=green"]),
        one("v2", 40)
    );
    assert_eq!(
        call(a, 40, "sayHello", &["--attach", "x-tag=greenish"]),
        one("v1", 40)
    );
    assert_eq!(stat("attach", "route.grp.detoured"), Some(40));
    assert_eq!(stat("attach", "route.ver.detoured"), Some(40));
    assert_eq!(stat("attach", "route.tag.detoured"), Some(40));
    // Another interface does not see the GreetingService routes.
    assert_eq!(
        call(
            a,
            10,
            "sayHello",
            &[
                "--group",
                "canary",
                "--service",
                "org.meltemi.demo.EchoService"
            ]
        ),
        one("v1", 10)
    );

    // Rate limit: exactly 5 admitted in the window; the rest get status 100
    // (SERVER_THREADPOOL_EXHAUSTED), matched to their request ids by the library.
    assert_eq!(
        call(port("limit"), 12, "sayHello", &[]),
        BTreeMap::from([("v1".into(), 5), ("status:100".into(), 7)])
    );
    assert_eq!(stat("limit", "route.lim.rate_limited"), Some(7));
    assert_eq!(stat("limit", "route.lim.requests"), Some(12));

    // Per-request timeout (300 ms) on a detour to a method that answers after 1 s: status 31
    // (SERVER_TIMEOUT); the connection stays usable, also once the late answer has arrived.
    assert_eq!(
        call(
            port("timeout"),
            4,
            "sleepHello,sayHello,sleepHello,sayHello",
            &[]
        ),
        BTreeMap::from([("status:31".into(), 2), ("v2".into(), 2)])
    );
    assert_eq!(stat("timeout", "route.t.timeouts"), Some(2));

    // A backend that never listened: status 60 (SERVICE_NOT_FOUND), not a hang.
    assert_eq!(call(port("down"), 3, "sayHello", &[]), one("status:60", 3));
    assert_eq!(stat("down", "route.default.errors"), Some(3));

    // A backend stopped while in use: it answered, it is killed, the next calls get status 60.
    assert_eq!(call(port("stop"), 5, "sayHello", &[]), one("v3", 5));
    v3.stop();
    assert_eq!(
        call(port("stop"), 5, "sayHello", &["--threads", "2"]),
        one("status:60", 5)
    );
    assert_eq!(stat("stop", "route.default.errors"), Some(5));
}
