//! Route changes without draining connections, through the real Envoy 1.40: the module fetches
//! newer route tables itself and every connection, old and new, routes by the newest one.
//!
//! 1. The whole chain: `meltemi serve-routes` serves the tables rendered from a MetaRouter,
//!    `meltemi bootstrap --routes-address` writes the Envoy config (listener, subset clusters,
//!    bridge twins, `meltemi-routes`, the module's poller bootstrap extension); ONE client
//!    connection calls continuously while the test rewrites the MetaRouter (v1 -> v2).
//! 2. Without the bootstrap extension (connections poll on traffic), a route server in the test
//!    serves bad, older and foreign tables: each is refused and routing stays where it was.
//!
//! Needs the release `.so`, `MELTEMI_ENVOY`, Python with `thrift` from `MELTEMI_VENV`.

mod common;

use common::{bridge_cluster, meltemi_binary, thrift_server, wait_listening, ThriftConn};
use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::routing::{write_calc_router, write_calc_service, ROUTE_DISCOVERY_FLAGS};
use meltemi_testkit::{free_port, Envoy, EnvoyOptions, Process, TempDir};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REFRESH_MS: u64 = 1000;

fn manifests(dir: &std::path::Path, listen: u16, p1: u16, p2: u16, subset: &str) {
    write_calc_service(dir, listen, p1, p2).unwrap();
    write_router(dir, subset);
}

/// The MetaRouter: one route `all` to `subset`.
fn write_router(dir: &std::path::Path, subset: &str) {
    write_calc_router(dir, "all", &[(subset, 100)]).unwrap();
}

fn stat_ending(envoy: &Envoy, suffix: &str) -> Option<u64> {
    envoy
        .stats()
        .into_iter()
        .find(|(k, _)| k.ends_with(suffix))
        .map(|(_, v)| v)
}

#[test]
fn a_route_change_reaches_a_live_connection_without_draining_it() {
    let dir = TempDir::new("rds-e2e").unwrap();
    let (_v1, p1) = thrift_server(&dir, "v1");
    let (_v2, p2) = thrift_server(&dir, "v2");
    let manifests_dir = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests_dir).unwrap();
    let listen = free_port();
    manifests(&manifests_dir, listen, p1, p2, "v1");
    let meltemi = meltemi_binary();

    // The controller's route endpoint.
    let routes_port = free_port();
    let mut cmd = Command::new(&meltemi);
    cmd.arg("serve-routes")
        .arg("-f")
        .arg(&manifests_dir)
        .args(ROUTE_DISCOVERY_FLAGS)
        .args(["--listen", &format!("127.0.0.1:{routes_port}")])
        .args(["--poll-ms", "100"]);
    let _routes = Process::spawn("serve-routes", cmd, dir.path().join("serve-routes.log")).unwrap();
    wait_listening(routes_port, "meltemi serve-routes");

    // Envoy from `meltemi bootstrap`.
    let out = Command::new(&meltemi)
        .arg("bootstrap")
        .arg("-f")
        .arg(&manifests_dir)
        .args(ROUTE_DISCOVERY_FLAGS)
        .args(["--routes-address", &format!("127.0.0.1:{routes_port}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("DynamicModuleBootstrapExtension"), "{text}");
    v.as_mapping_mut()
        .unwrap()
        .remove(serde_yaml_ng::Value::from("admin"));
    let envoy = Envoy::start_with(
        EnvoyOptions::new(serde_yaml_ng::to_string(&v).unwrap()).with_dynamic_module(),
    )
    .expect("envoy");

    // ONE connection for the whole test. The first table was fetched before Envoy let its
    // listener go (the poller holds Envoy's init until the first answer), so v1 from the start.
    let mut conn = ThriftConn::connect(listen).expect("connect");
    let local = conn.stream.local_addr().unwrap();
    for i in 0..20 {
        assert_eq!(
            conn.call("get").unwrap(),
            "v1",
            "call {i} before the change"
        );
    }
    let cx_total = |e: &Envoy| e.stat(&format!("listener.127.0.0.1_{listen}.downstream_cx_total"));
    let cx_destroy = |e: &Envoy| {
        e.stat(&format!(
            "listener.127.0.0.1_{listen}.downstream_cx_destroy"
        ))
    };
    assert_eq!(cx_total(&envoy), Some(1));
    assert_eq!(
        stat_ending(&envoy, ".route.all.detoured"),
        Some(0),
        "pinned to v1, the listener's primary: the fast path"
    );
    let per_call = |conn: &mut ThriftConn, want: &str| {
        let t = Instant::now();
        for _ in 0..200 {
            assert_eq!(conn.call("get").unwrap(), want);
        }
        t.elapsed().as_secs_f64() * 1e6 / 200.0
    };
    let fast_us = per_call(&mut conn, "v1");

    // The change: v1 -> v2, while the connection keeps calling.
    let written = Instant::now();
    write_router(&manifests_dir, "v2");
    let mut answers: Vec<(Duration, String)> = Vec::new();
    let deadline = written + Duration::from_secs(15);
    while Instant::now() < deadline {
        let a = conn.call("get").expect("a call on the live connection");
        answers.push((written.elapsed(), a));
        if answers.iter().filter(|(_, a)| a == "v2").count() >= 50 {
            break;
        }
    }
    let first_v2 = answers
        .iter()
        .position(|(_, a)| a == "v2")
        .unwrap_or_else(|| panic!("no v2 answer within 15 s: {:?}", answers.last()));
    let landed = answers[first_v2].0;
    eprintln!(
        "route change landed on the live connection {} ms after the file write (interval {REFRESH_MS} ms, {} calls in between)",
        landed.as_millis(),
        first_v2
    );
    assert!(
        landed < Duration::from_millis(REFRESH_MS + 2000),
        "landed after {landed:?}"
    );
    assert!(
        answers[..first_v2].iter().all(|(_, a)| a == "v1"),
        "only v1 before the change landed: {answers:?}"
    );
    assert!(
        answers[first_v2..].iter().all(|(_, a)| a == "v2"),
        "only v2 after it (no failure, no flapping)"
    );
    assert_eq!(
        conn.stream.local_addr().unwrap(),
        local,
        "same client socket"
    );

    // Nothing drained, nothing closed, the update counted.
    assert_eq!(cx_total(&envoy), Some(1), "no new connection");
    assert_eq!(
        cx_destroy(&envoy),
        Some(0),
        "the connection was never closed"
    );
    assert_eq!(envoy.stat("listener_manager.listener_modified"), Some(0));
    assert_eq!(
        envoy.stat("listener_manager.total_listeners_draining"),
        Some(0)
    );
    let updates = stat_ending(&envoy, ".rds.update_success").expect("rds stats");
    assert!(updates >= 2, "initial table + the change: {updates}");
    assert_eq!(stat_ending(&envoy, ".rds.update_rejected"), Some(0));
    assert_eq!(stat_ending(&envoy, ".route.other.errors"), Some(0));

    // Per-route stats: `meltemi bootstrap` gave the listener the current table, so the module
    // defined `route.all.*` when Envoy created the listener; every call, before and after the
    // swap, counts under it. The v2 subset's twin was in no table known then: `other`.
    // The served table now names v2 its primary; the listener's tcp_proxy (and this
    // connection's upstream) stays v1, so v2 is reached by detour: what a primary change costs
    // until a listener update, measured as one connection's sequential call time.
    let detour_us = per_call(&mut conn, "v2");
    eprintln!(
        "one call, sequential on one connection: {fast_us:.0} us on the fast path (v1), {detour_us:.0} us by detour (v2, the table's new primary)"
    );
    let calls = 20 + 200 + 200 + answers.len() as u64;
    let v2_calls = (answers.len() - first_v2) as u64 + 200;
    assert_eq!(
        stat_ending(&envoy, ".route.all.detoured"),
        Some(v2_calls),
        "every v2 call detoured (primary kept)"
    );
    assert_eq!(stat_ending(&envoy, ".route.all.requests"), Some(calls));
    assert_eq!(stat_ending(&envoy, ".route.all.errors"), Some(0));
    assert_eq!(stat_ending(&envoy, ".route.other.requests"), Some(0));
    assert_eq!(
        stat_ending(&envoy, "|v1|calc_demo_svc_cluster_local.requests"),
        Some(calls - v2_calls)
    );
    assert_eq!(
        stat_ending(&envoy, ".destination.other.requests"),
        Some(v2_calls)
    );
    assert!(stat_ending(&envoy, ".rds.version").unwrap_or(0) > 0);
}

/// A route endpoint whose answer the test sets: status and body, `ETag` = the version given.
struct RouteServer {
    port: u16,
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<Mutex<u64>>,
}

impl RouteServer {
    fn start() -> RouteServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new((503, String::new())));
        let hits = Arc::new(Mutex::new(0));
        let (a, h) = (Arc::clone(&answer), Arc::clone(&hits));
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (a, h) = (Arc::clone(&a), Arc::clone(&h));
                std::thread::spawn(move || serve_http(s, &a, &h));
            }
        });
        RouteServer { port, answer, hits }
    }

    fn set(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    fn hits(&self) -> u64 {
        *self.hits.lock().unwrap()
    }
}

/// HTTP/1.1 keep-alive, GET only, bounded: enough for Envoy's async client.
fn serve_http(s: TcpStream, answer: &Mutex<(u16, String)>, hits: &Mutex<u64>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(s);
    for _ in 0..10_000 {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
        }
        *hits.lock().unwrap() += 1;
        let (status, body) = answer.lock().unwrap().clone();
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn table(version: u64, primary: &str, cluster: &str) -> String {
    format!(
        r#"{{"version":"{version}","primaryCluster":"{primary}","services":[{{"name":"*","routes":[{{"name":"all","action":{{"cluster":"{cluster}"}}}}]}}]}}"#
    )
}

/// Calls until `want` answers `n` times in a row (bounded); every call must succeed.
fn until(conn: &mut ThriftConn, want: &str, n: usize) {
    let mut run = 0;
    for _ in 0..2_000 {
        let a = conn.call("get").expect("call");
        run = if a == want { run + 1 } else { 0 };
        if run >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{want} never answered {n} times in a row");
}

#[test]
fn bad_older_and_foreign_tables_are_refused_and_routing_stays() {
    let dir = TempDir::new("rds-reject").unwrap();
    let (_v1, p1) = thrift_server(&dir, "v1");
    let (_v2, p2) = thrift_server(&dir, "v2");
    let routes = RouteServer::start();
    let listen = free_port();
    // No bootstrap extension: the connections poll on traffic (every 200 ms at most).
    let cfg = r#"{"protocol":"thrift","statPrefix":"calc","routes":{"version":"0","primaryCluster":"v1"},"routeDiscovery":{"cluster":"routes","path":"/routes/v1/calc","refreshIntervalMs":200}}"#;
    let yaml = format!(
        "{}{}\n",
        bootstrap(
            listen,
            &[Filter::Module(cfg.into()), Filter::TcpProxy("v1".into())],
            &[("v1", p1), ("routes", routes.port)],
        )
        .trim_end(),
        bridge_cluster("thrift", "meltemi-bridge|v2", p2, ""),
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    let stat = |s: &str| envoy.stat(&format!("dynamicmodulescustom.thrift.calc.{s}"));
    let mut conn = ThriftConn::connect(listen).expect("connect");

    // A good table: everything to v2.
    routes.set(200, &table(5, "v1", "v2"));
    until(&mut conn, "v2", 20);
    assert_eq!(stat("rds.update_success"), Some(1));
    assert_eq!(stat("rds.version"), Some(5));

    // Refused: not JSON, an older version, a bad regex, a 500.
    let refused = [
        (200, "{not json".to_owned()),
        (200, table(3, "v1", "v1")),
        (
            200,
            table(9, "v1", "v1").replace(
                r#""action""#,
                r#""match":{"method":{"regex":"("}},"action""#,
            ),
        ),
    ];
    for (i, (status, body)) in refused.iter().enumerate() {
        routes.set(*status, body);
        let before = routes.hits();
        let t = Instant::now();
        while routes.hits() < before + 3 && t.elapsed() < Duration::from_secs(10) {
            assert_eq!(
                conn.call("get").unwrap(),
                "v2",
                "refused table {i} kept out"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(routes.hits() >= before + 3, "polled while refused");
        assert!(
            stat("rds.update_rejected").unwrap_or(0) > i as u64,
            "table {i} counted as rejected"
        );
    }
    routes.set(500, "");
    let t = Instant::now();
    while stat("rds.poll_failed").unwrap_or(0) == 0 && t.elapsed() < Duration::from_secs(10) {
        assert_eq!(conn.call("get").unwrap(), "v2");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stat("rds.poll_failed").unwrap_or(0) >= 1);
    assert_eq!(stat("rds.update_success"), Some(1));
    assert_eq!(stat("rds.version"), Some(5));

    // A table naming another primary (v2, a route edit moved the heaviest destination) is
    // used with the listener's: v1 stays tcp_proxy's, every call to v2 is detoured.
    let before = stat("route.other.detoured").unwrap_or(0);
    routes.set(200, &table(9, "v2", "v2"));
    let t = Instant::now();
    while stat("rds.version") != Some(9) && t.elapsed() < Duration::from_secs(10) {
        assert_eq!(conn.call("get").unwrap(), "v2");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stat("rds.version"), Some(9));
    for _ in 0..20 {
        assert_eq!(conn.call("get").unwrap(), "v2");
    }
    assert!(stat("route.other.detoured").unwrap_or(0) >= before + 20);

    // Polling goes on after refusals: a newer good table lands (back to the primary, v1).
    routes.set(200, &table(10, "v1", "v1"));
    until(&mut conn, "v1", 20);
    assert_eq!(stat("rds.update_success"), Some(3));
    assert_eq!(stat("rds.version"), Some(10));
    assert_eq!(
        envoy.stat(&format!("listener.127.0.0.1_{listen}.downstream_cx_total")),
        Some(1)
    );
    let log = envoy.log();
    assert_eq!(
        log.matches("refusing route table").count(),
        3,
        "each refusal logged once:\n{log}"
    );
}
