//! The demo, on 127.0.0.1 with the real Envoy 1.40:
//!
//! 1. Observe: Meltemi's filters in front of a real redis-server, real traffic from
//!    redis-benchmark and redis-cli, then the filters' counters as Envoy's `/stats` shows them.
//! 2. Route: two versions of a real Apache Thrift service, `meltemi serve-routes` serving the
//!    tables of a MetaRouter in a temp dir, Envoy running `meltemi bootstrap --routes-address`;
//!    ONE client connection calls continuously through a 90/10 split, then the MetaRouter is
//!    rewritten to send everything to v2 and the change lands on that same live connection.
//!
//! Every process it starts is stopped by PID when it ends; every loop is time-bounded.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::routing::{
    await_listening, meltemi_binary, route_counts, version_server, without_top_level,
    write_calc_router, write_calc_service, ROUTE_DISCOVERY_FLAGS,
};
use meltemi_testkit::{
    free_port, prometheus_samples, redis_cli, Envoy, EnvoyOptions, Process, RedisServer, TempDir,
    ThriftConn,
};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("meltemi-demo: {e}");
        std::process::exit(1);
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn run() -> Res {
    let t = Instant::now();
    println!("== 1. Observe: Redis through Envoy ==\n");
    observe_redis()?;
    println!("\n== 2. Route: per-request routing of Thrift calls, a live route change ==\n");
    route_thrift()?;
    println!("\ndemo done in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

fn observe_redis() -> Res {
    let redis = RedisServer::start()?;
    let listen = free_port();
    let yaml = bootstrap(
        listen,
        &[
            Filter::Module(r#"{"protocol":"redis","stat_prefix":"demo_so"}"#.into()),
            Filter::Wasm(r#"{"protocol":"redis","stat_prefix":"demo_wasm"}"#.into()),
            Filter::TcpProxy("redis".into()),
        ],
        &[("redis", redis.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module())?;
    println!(
        "Envoy 1.40 (pid {}) listens on 127.0.0.1:{listen} with the Meltemi .so and .wasm filters",
        envoy.pid()
    );
    println!("redis-server (port {}) is the backend\n", redis.port());

    println!(
        "redis-cli SET demo meltemi -> {}",
        redis_cli(listen, &["SET", "demo", "meltemi"])?
    );
    println!(
        "redis-cli GET demo         -> {}",
        redis_cli(listen, &["GET", "demo"])?
    );
    println!("\nredis-benchmark -t set,get -n 10000 -c 10 through Envoy...");
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &listen.to_string()])
        .args(["-t", "set,get", "-n", "10000", "-c", "10", "--csv"])
        .output()?;
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        if cols.len() > 4 {
            println!("  {:<4} {:>9} req/s  p50 {} ms", cols[0], cols[1], cols[4]);
        }
    }
    std::thread::sleep(Duration::from_millis(300));

    println!("\nMeltemi stats in Envoy's /stats (non-zero counters and gauges):");
    for (k, v) in envoy.stats() {
        if v > 0 && (k.starts_with("wasmcustom.") || k.starts_with("dynamicmodulescustom.")) {
            println!("  {k}: {v}");
        }
    }
    Ok(())
}

/// The route stats line: how many of the split's requests took the detour.
fn print_route_counts(phase: &str, (requests, detoured): (u64, u64)) {
    println!(
        "  route.split {phase}: requests {requests}, detoured {detoured} ({:.1} %), fast path {}",
        100.0 * detoured as f64 / requests.max(1) as f64,
        requests - detoured.min(requests)
    );
}

fn route_thrift() -> Res {
    let dir = TempDir::new("demo-routes")?;
    let (_v1, p1) = version_server(&dir, "v1")?;
    let (_v2, p2) = version_server(&dir, "v2")?;
    println!("Apache Thrift servers (Python `thrift`): v1 on port {p1}, v2 on port {p2}; each answers its version name");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let listen = free_port();
    write_calc_service(&manifests, listen, p1, p2)?;
    let router = write_calc_router(&manifests, "split", &[("v1", 90), ("v2", 10)])?;
    println!(
        "\nMetaRouter ({}):",
        manifests.join("router.yaml").display()
    );
    for line in router.lines().skip_while(|l| !l.starts_with("spec:")) {
        println!("  {line}");
    }

    let meltemi = meltemi_binary()?;
    let routes_port = free_port();
    let mut cmd = Command::new(&meltemi);
    cmd.arg("serve-routes")
        .arg("-f")
        .arg(&manifests)
        .args(ROUTE_DISCOVERY_FLAGS)
        .arg("--istio-metrics")
        .args(["--listen", &format!("127.0.0.1:{routes_port}")])
        .args(["--poll-ms", "100"]);
    let routes = Process::spawn("serve-routes", cmd, dir.path().join("serve-routes.log"))?;
    await_listening(routes_port, "meltemi serve-routes")?;
    println!(
        "\nmeltemi serve-routes (pid {}) serves the route tables on 127.0.0.1:{routes_port}",
        routes.pid()
    );

    let out = Command::new(&meltemi)
        .arg("bootstrap")
        .arg("-f")
        .arg(&manifests)
        .args(ROUTE_DISCOVERY_FLAGS)
        .arg("--istio-metrics")
        .args(["--routes-address", &format!("127.0.0.1:{routes_port}")])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "meltemi bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let yaml = without_top_level(&String::from_utf8_lossy(&out.stdout), "admin");
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module())?;
    println!(
        "Envoy 1.40 (pid {}) runs `meltemi bootstrap --adapter module --routes-address 127.0.0.1:{routes_port}`: listener 127.0.0.1:{listen}",
        envoy.pid()
    );

    // ONE connection for everything below.
    let mut conn = ThriftConn::connect(listen)?;
    let local = conn.stream.local_addr()?;
    println!("\nONE client connection from {local}, framed binary Thrift calls of `get`:");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let t = Instant::now();
    while counts.values().sum::<u64>() < 1000 && t.elapsed() < Duration::from_secs(10) {
        *counts.entry(conn.call("get")?).or_default() += 1;
    }
    let total: u64 = counts.values().sum();
    println!(
        "  90/10 split, {total} calls in {} ms:",
        t.elapsed().as_millis()
    );
    for (version, n) in &counts {
        println!(
            "    {version}: {n:>4} ({:.1} %)",
            100.0 * *n as f64 / total as f64
        );
    }

    let split_counts = route_counts(&envoy.stats(), "split");
    print_route_counts("90/10", split_counts);

    // The change, while the same connection keeps calling.
    write_calc_router(&manifests, "split", &[("v2", 100)])?;
    let written = Instant::now();
    println!("\nMetaRouter rewritten: 100 % to v2 (the connection keeps calling)");
    let (mut calls, mut run, mut run_start) = (0u64, 0u64, Duration::ZERO);
    while run < 300 && written.elapsed() < Duration::from_secs(15) {
        let at = written.elapsed();
        let a = conn.call("get")?;
        calls += 1;
        if a == "v2" {
            if run == 0 {
                run_start = at;
            }
            run += 1;
        } else {
            run = 0;
        }
    }
    if run < 300 {
        return Err("the route change did not land within 15 s".into());
    }
    println!(
        "  landed after {} ms (route refresh interval 1000 ms): from then on only v2, {run} calls in a row",
        run_start.as_millis()
    );
    println!(
        "  {calls} calls during the change, every one answered; same client socket: {}",
        conn.stream.local_addr()? == local
    );

    // Read while the connection is still open: one connection ever, none closed.
    let stats = envoy.stats();
    let now = route_counts(&stats, "split");
    print_route_counts(
        "during the change (v1 on the fast path until it landed, then v2 by detour: tcp_proxy's cluster stays v1 on this listener)",
        (now.0 - split_counts.0, now.1 - split_counts.1),
    );
    let cx = |s: &str| {
        stats
            .get(&format!("listener.127.0.0.1_{listen}.{s}"))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "\nEnvoy listener: downstream_cx_total {}, downstream_cx_destroy {} (one connection, never closed), listener_modified {}, draining {}",
        cx("downstream_cx_total"),
        cx("downstream_cx_destroy"),
        stats.get("listener_manager.listener_modified").copied().unwrap_or(0),
        stats
            .get("listener_manager.total_listeners_draining")
            .copied()
            .unwrap_or(0),
    );
    println!("\nMeltemi route stats in Envoy's /stats (non-zero):");
    for (k, v) in &stats {
        if *v > 0
            && k.starts_with("dynamicmodulescustom.")
            && [".route.", ".rds.", ".destination."]
                .iter()
                .any(|p| k.contains(p))
        {
            println!("  {k}: {v}");
        }
    }
    println!("\nistio_requests_total in /stats/prometheus (istioMetrics on; some of its labels):");
    let mut shown = 0;
    for s in prometheus_samples(&envoy.admin("/stats/prometheus")) {
        if s.name.ends_with("istio_requests_total") && s.value > 0.0 {
            let labels: Vec<String> = [
                "reporter",
                "destination_service",
                "destination_version",
                "request_protocol",
                "response_code",
                "response_flags",
            ]
            .iter()
            .filter_map(|k| Some(format!("{k}=\"{}\"", s.labels.get(*k)?)))
            .collect();
            println!("  {}{{{}}} {}", s.name, labels.join(","), s.value);
            shown += 1;
        }
    }
    if shown == 0 {
        println!("  (none)");
    }
    Ok(())
}
