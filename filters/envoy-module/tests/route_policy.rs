//! Routing policies in the real Envoy 1.40, on Thrift (Apache Thrift's Python library, one
//! client connection per call): mirroring a share to a mirror backend, per-request timeout,
//! bounded retries for idempotent methods and the retry budget, circuit breaking as an error
//! reply, and a client
//! that closes with detours in flight. The module sits before `tcp_proxy` (cluster `v1`, the
//! primary); the other clusters' upstream is the module's HTTP-to-TCP bridge.
//! Server behaviour by method name (`testkit/clients/route_thrift.py`): `sleep*` answers after
//! 1 s, `flaky*` closes the connection unanswered the first time the server sees that name.
//! Needs the release `.so` and `MELTEMI_ENVOY`; Python from `MELTEMI_VENV` (or `.venv`).

use meltemi_testkit::{free_port, venv_python, wait_for, Envoy, EnvoyOptions, Process, TempDir};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

mod common;

use common::{
    bridge_cluster, routed_listener, static_resources, tcp_cluster, thrift_script as script,
    thrift_server as server,
};

/// Requests `server` has read, by method.
fn seen(p: &Process, method: &str) -> u64 {
    let want = format!("req {method}");
    p.log().lines().filter(|l| *l == want).count() as u64
}

fn run(mode: &str, port: u16, n: usize, method: &str, extra: &[&str]) -> BTreeMap<String, u64> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(venv_python())
        .arg(script())
        .args([mode, &port.to_string(), &n.to_string(), method])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn call(port: u16, n: usize, method: &str, extra: &[&str]) -> BTreeMap<String, u64> {
    run("call", port, n, method, extra)
}

const CASES: &[(&str, &str)] = &[
    (
        "mirror",
        r#"{"primary_cluster":"v1","seed":11,"services":[{"service":"*","routes":[
            {"name":"tov2","match":{"method":{"exact":"getV2"}},"route":{"cluster":"v2"},"mirror":{"cluster":"shadow","percent":100}},
            {"name":"m","route":{"cluster":"v1"},"mirror":{"cluster":"shadow","percent":25}}]}]}"#,
    ),
    (
        "timeout",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[
            {"name":"t","route":{"cluster":"v2"},"timeout_ms":300}]}]}"#,
    ),
    (
        "retry",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[
            {"name":"r","route":{"cluster":"v2"},"timeout_ms":2000,"retries":2,"idempotent_methods":["flakyGet","sleepGet"]}]}]}"#,
    ),
    (
        "budget",
        r#"{"primary_cluster":"v1","retry_budget":{"budget_percent":0,"min_retry_concurrency":2},"services":[{"service":"*","routes":[
            {"name":"b","route":{"cluster":"v2"},"timeout_ms":300,"retries":2,"idempotent_methods":["sleepGet"]}]}]}"#,
    ),
    (
        "breaker",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[
            {"name":"cb","route":{"cluster":"cb"}}]}]}"#,
    ),
    (
        "cancel",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[
            {"name":"c","route":{"cluster":"slow"}}]}]}"#,
    ),
    (
        "cancel2",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[
            {"name":"c","match":{"method":{"exact":"sleepGet"}},"route":{"cluster":"slow"}}]}]}"#,
    ),
];

#[test]
fn mirror_timeout_retries_circuit_breaker_and_cancel() {
    let dir = TempDir::new("route-policy").unwrap();
    let (_v1, p1) = server(&dir, "v1");
    let (v2, p2) = server(&dir, "v2");
    let (shadow, ps) = server(&dir, "shadow");
    let (cbs, pcb) = server(&dir, "cbs");
    let (slow, pslow) = server(&dir, "slow");
    let ports: Vec<u16> = CASES.iter().map(|_| free_port()).collect();
    let listeners: Vec<String> = CASES
        .iter()
        .zip(&ports)
        .map(|((n, r), p)| routed_listener("thrift", n, *p, &r.replace(['\n', ' '], "")))
        .collect();
    let breaker = "
    circuit_breakers:
      thresholds:
      - max_requests: 1
        max_pending_requests: 1
        max_connections: 1";
    let yaml = static_resources(
        &listeners,
        &[
            tcp_cluster("v1", p1),
            bridge_cluster("thrift", "v2", p2, ""),
            bridge_cluster("thrift", "shadow", ps, ""),
            bridge_cluster("thrift", "cb", pcb, breaker),
            bridge_cluster("thrift", "slow", pslow, ""),
        ],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    let port = |name: &str| ports[CASES.iter().position(|(n, _)| *n == name).unwrap()];
    let stat = |l: &str, s: &str| envoy.stat(&format!("dynamicmodulescustom.thrift.{l}.{s}"));

    // --- Mirroring: 25% of the primary route's requests also go to `shadow`; the client only
    // sees v1. 400 requests: Bin(400, 0.25), mean 100, sd 8.7.
    let got = call(port("mirror"), 400, "get", &[]);
    assert_eq!(got, BTreeMap::from([("v1".into(), 400)]));
    let mirrored = stat("mirror", "route.m.mirrored").unwrap();
    assert!((100 - 40..=100 + 40).contains(&mirrored), "{mirrored}");
    wait_for(Duration::from_secs(5), || {
        (seen(&shadow, "get") == mirrored).then_some(())
    })
    .unwrap_or_else(|| panic!("shadow saw {} of {mirrored}", seen(&shadow, "get")));
    eprintln!("mirror 25%: {mirrored} of 400 mirrored, shadow saw them all");
    // A detoured route mirrored at 100%: the client sees v2's answers only.
    let got = call(port("mirror"), 50, "getV2", &["--pipe"]);
    assert_eq!(got, BTreeMap::from([("v2".into(), 50)]));
    assert_eq!(stat("mirror", "route.tov2.mirrored"), Some(50));
    wait_for(Duration::from_secs(5), || {
        (seen(&shadow, "getV2") == 50).then_some(())
    })
    .expect("shadow saw the 50 getV2 copies");
    assert_eq!(seen(&v2, "getV2"), 50);

    // --- Per-request timeout (300 ms) on a detour to a method that sleeps 1 s: the client gets
    // TApplicationException after the timeout, and the connection stays usable, also after the
    // late answer has reached the bridge's abandoned upstream connection (pause 0.6 s twice).
    let mut got = call(port("timeout"), 1, "sleepGet", &["--time"]);
    let took = got.remove("ms").unwrap();
    assert_eq!(
        got,
        BTreeMap::from([("exc:6:meltemi: upstream timeout".into(), 1)])
    );
    assert!((290..800).contains(&took), "took {took} ms");
    let got = call(
        port("timeout"),
        8,
        "sleepGet,get,get,_pause,get,_pause,get,get",
        &[],
    );
    assert_eq!(
        got,
        BTreeMap::from([
            ("exc:6:meltemi: upstream timeout".into(), 1),
            ("v2".into(), 5)
        ])
    );
    assert_eq!(stat("timeout", "route.t.timeouts"), Some(2));
    assert_eq!(stat("timeout", "route.t.errors"), Some(2));
    eprintln!("timeout 300 ms: the error reply after {took} ms");

    // --- Retries: flakyGet (idempotent) loses its first attempt (the server closes the
    // connection) and the retry answers; flakyPut (not listed) is not retried.
    let before = seen(&v2, "flakyGet");
    let got = call(port("retry"), 3, "flakyGet,flakyPut,get", &[]);
    assert_eq!(
        got,
        BTreeMap::from([
            ("v2".into(), 2),
            ("exc:6:meltemi: upstream unavailable".into(), 1)
        ])
    );
    assert_eq!(seen(&v2, "flakyGet") - before, 2, "two attempts");
    assert_eq!(seen(&v2, "flakyPut"), 1, "one attempt");
    assert_eq!(stat("retry", "route.r.retries"), Some(1));
    assert_eq!(stat("retry", "route.r.errors"), Some(1));

    // --- Retry budget (at most 2 retries in flight on the listener): 20 sleeping idempotent
    // requests pipelined in one write time out together after 300 ms; 2 are retried, the 18
    // others get the timeout error at once (`retry_overflow`), not a retry storm. The 2 retries
    // time out 300 ms later and are retried once more (each retry slot is free again when its
    // attempt ends); those time out too. Without the budget: 40 retries.
    let got = call(port("budget"), 20, "sleepGet", &["--pipe"]);
    assert_eq!(
        got,
        BTreeMap::from([("exc:6:meltemi: upstream timeout".into(), 20)])
    );
    assert_eq!(stat("budget", "route.b.retries"), Some(4));
    assert_eq!(stat("budget", "route.b.retry_overflow"), Some(18));
    assert_eq!(stat("budget", "route.b.timeouts"), Some(24));
    assert_eq!(stat("budget", "route.b.errors"), Some(20));
    assert_eq!(stat("retry", "route.r.retry_overflow"), Some(0));

    // --- Circuit breaking: cluster `cb` allows 1 request (1 pending, 1 connection); 4 sleeping
    // requests pipelined on one connection in one write (so the 4 detours start together): the
    // first waits for its connection (the 1 pending request), the 3 past the breaker get the
    // error reply at once (Envoy's router answers 503 overflow). (Sent one by one, a request
    // that arrives once the first is connected is queued as the pending one instead.)
    let got = call(port("breaker"), 4, "sleepGet", &["--pipe"]);
    assert_eq!(
        got,
        BTreeMap::from([
            ("cbs".into(), 1),
            ("exc:6:meltemi: upstream unavailable".into(), 3)
        ])
    );
    assert_eq!(seen(&cbs, "sleepGet"), 1);
    assert_eq!(stat("breaker", "route.cb.errors"), Some(3));
    assert_eq!(stat("breaker", "route.cb.detoured"), Some(4));
    assert_eq!(
        envoy.stat("cluster.cb.upstream_rq_pending_overflow"),
        Some(3)
    );
    // The breaker closes again once the request is done.
    assert_eq!(
        call(port("breaker"), 3, "get", &[]),
        BTreeMap::from([("cbs".into(), 3)])
    );

    // --- A client closes with 3 detours in flight (the backend sleeps 1 s): Envoy cancels the
    // callouts at once (their upstream connections are closed with the request active), nothing
    // is answered, no error is counted, nothing stays active.
    let slow_stat = |s: &str| envoy.stat(&format!("cluster.slow.{s}")).unwrap_or(0);
    let got = run("fire", port("cancel"), 3, "sleepGet", &[]);
    assert!(got.is_empty());
    wait_for(Duration::from_millis(500), || {
        (slow_stat("upstream_cx_destroy_local_with_active_rq") == 3).then_some(())
    })
    .expect("the 3 detours cancelled before the backend answered");
    assert_eq!(seen(&slow, "sleepGet"), 3);
    assert_eq!(slow_stat("upstream_rq_active"), 0);
    assert_eq!(slow_stat("upstream_cx_active"), 0);

    // The primary upstream closes (v1 drops `flakyClose`) while a detour is in flight:
    // tcp_proxy closes the client connection; the detour is cancelled, the client receives
    // nothing, and no late answer is written.
    let got = run(
        "fire",
        port("cancel2"),
        2,
        "sleepGet,flakyClose",
        &["--wait"],
    );
    assert_eq!(got, BTreeMap::from([("bytes".into(), 0)]));
    wait_for(Duration::from_millis(500), || {
        (slow_stat("upstream_cx_destroy_local_with_active_rq") == 4).then_some(())
    })
    .expect("the detour cancelled when the server side closed");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(seen(&slow, "sleepGet"), 4);
    assert_eq!(slow_stat("upstream_rq_active"), 0);
    assert_eq!(slow_stat("upstream_cx_active"), 0);
    assert_eq!(stat("cancel", "route.c.errors"), Some(0));
    assert_eq!(stat("cancel2", "route.c.errors"), Some(0));
    assert_eq!(stat("cancel2", "route.c.detoured"), Some(1));
    // Envoy is alive and the listener still routes.
    assert_eq!(
        call(port("cancel2"), 2, "get", &[]),
        BTreeMap::from([("v1".into(), 2)])
    );
}
