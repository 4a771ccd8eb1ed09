//! The demo, on 127.0.0.1 with the real Envoy 1.40:
//!
//! 1. Observe: Meltemi's filters in front of a real redis-server, real traffic from
//!    redis-benchmark and redis-cli, then the filters' counters as Envoy's `/stats` shows them.
//! 2. Route: two versions of a real Apache Thrift service, `meltemi serve-routes` serving the
//!    tables of a MetaRouter in a temp dir, Envoy running `meltemi bootstrap --routes-address`;
//!    ONE client connection calls continuously through a 90/10 split, then the MetaRouter is
//!    rewritten to send everything to v2 and the change lands on that same live connection.
//!
//! Each part has its own real Prometheus (Debian's) scraping that Envoy's `/stats/prometheus`
//! every second; the split, the rates and the latency percentiles are printed from PromQL
//! (`/api/v1/query`), and a PNG (matplotlib) of per-version requests through the route change
//! and latency percentiles per command is drawn from range queries (`/api/v1/query_range`).
//!
//! Every process it starts is stopped by PID when it ends; every loop is time-bounded.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::prometheus::{unix_now, RangeSeries};
use meltemi_testkit::routing::{
    await_listening, meltemi_binary, route_counts, version_server, without_top_level,
    write_calc_router, write_calc_service, ROUTE_DISCOVERY_FLAGS,
};
use meltemi_testkit::{
    free_port, prometheus_samples, redis_cli, run_client, Envoy, EnvoyOptions, Process, Prometheus,
    RedisServer, TempDir, ThriftConn,
};
use serde_json::json;
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
    // One Prometheus for both parts; each part points it at its Envoy.
    let mut prom = Prometheus::start(&[])?;
    let latency = observe_redis(&mut prom)?;
    println!("\n== 2. Route: per-request routing of Thrift calls, a live route change ==\n");
    let mut plot = route_thrift(&mut prom)?;
    plot["latency"] = latency;
    let png = draw(&plot)?;
    println!("\ndemo done in {:.1} s", t.elapsed().as_secs_f64());
    println!("picture (from Prometheus range queries): {}", png.display());
    Ok(())
}

/// Where the picture goes: `$MELTEMI_DEMO_PNG`, else next to the build in the cargo target dir.
fn png_path() -> std::path::PathBuf {
    std::env::var_os("MELTEMI_DEMO_PNG")
        .map(Into::into)
        .unwrap_or_else(|| {
            meltemi_testkit::artifacts::target_dir()
                .join("demo")
                .join("meltemi-demo.png")
        })
}

fn draw(plot: &serde_json::Value) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let png = png_path();
    if let Some(d) = png.parent() {
        std::fs::create_dir_all(d)?;
    }
    let data = png.with_extension("json");
    std::fs::write(&data, serde_json::to_string(plot)?)?;
    run_client(
        "demo_plot.py",
        &[&data.to_string_lossy(), &png.to_string_lossy()],
        Duration::from_secs(60),
    )?;
    Ok(png)
}

/// Points `prom` at `envoy` and waits for the first scrape.
fn scrape(prom: &mut Prometheus, envoy: &Envoy) -> Res {
    prom.set_targets(&[envoy.admin_port()])?;
    prom.wait_scraped_after(unix_now(), Duration::from_secs(10))?;
    println!(
        "Prometheus (pid {}) on 127.0.0.1:{} scrapes Envoy's /stats/prometheus every 1 s",
        prom.pid(),
        prom.port()
    );
    Ok(())
}

/// Waits for the second scrape after `t`: Envoy merges histograms when the admin handler
/// flushes (`stats_flush_on_admin`), so one scrape's histograms may lag by one flush. Queries
/// evaluated at one scrape interval past "now" see that last scrape with every step of a
/// subquery.
fn settle(prom: &Prometheus, t: f64) -> Result<(), Box<dyn std::error::Error>> {
    prom.wait_scraped_after(t, Duration::from_secs(10))?;
    prom.wait_scraped_after(unix_now(), Duration::from_secs(10))?;
    Ok(())
}

/// The one value of an instant query (NaN when it returns nothing).
fn one(prom: &Prometheus, expr: &str, at: f64) -> Result<f64, Box<dyn std::error::Error>> {
    Ok(prom
        .query_at(expr, Some(at))?
        .first()
        .map(|s| s.value)
        .unwrap_or(f64::NAN))
}

/// `[[t, v], ...]` of the first series of a range query.
fn points(series: &[RangeSeries]) -> serde_json::Value {
    json!(series
        .first()
        .map(|s| s
            .points
            .iter()
            .map(|(t, v)| json!([t, v]))
            .collect::<Vec<_>>())
        .unwrap_or_default())
}

/// The Istio-style histogram's percentiles, `sel` its label matchers, over `window`.
fn percentiles(
    prom: &Prometheus,
    metric: &str,
    window: &str,
    at: f64,
    scale: f64,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for q in [0.5, 0.9, 0.99] {
        let v = one(
            prom,
            &format!("histogram_quantile({q}, sum by (le) (rate({metric}[{window}])))"),
            at,
        )?;
        out.push(format!("p{} {:.2} ms", (q * 100.0) as u32, v * scale));
    }
    Ok(out.join(", "))
}

fn observe_redis(prom: &mut Prometheus) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
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
    println!("redis-server (port {}) is the backend", redis.port());
    scrape(prom, &envoy)?;
    println!();

    println!(
        "redis-cli SET demo meltemi -> {}",
        redis_cli(listen, &["SET", "demo", "meltemi"])?
    );
    println!(
        "redis-cli GET demo         -> {}",
        redis_cli(listen, &["GET", "demo"])?
    );
    println!("\nredis-benchmark -t set,get -n 10000 -c 10 through Envoy...");
    let bench_start = unix_now();
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
    settle(prom, unix_now())?;
    let at = unix_now() + 1.0;
    let window = format!("{}s", (at - bench_start).ceil() as u64 + 1);
    println!("\nFrom Prometheus (PromQL), per command, both artifacts:");
    let mut bars = serde_json::Map::new();
    for (artifact, prefix) in [
        (".so  ", "envoy_dynamicmodulescustom_redis_demo_so_command"),
        (".wasm", "redis_demo_wasm_command"),
    ] {
        for cmd in ["set", "get"] {
            let n = one(prom, &format!("{prefix}_{cmd}_total"), at)?;
            let peak = one(
                prom,
                &format!("max_over_time(rate({prefix}_{cmd}_total[2s])[{window}:1s])"),
                at,
            )?;
            let lat = percentiles(
                prom,
                &format!("{prefix}_{cmd}_latency_us_bucket"),
                &window,
                at,
                1e-3,
            )?;
            println!(
                "  {artifact} {:<3} {n:>6} requests, peak {peak:>6.0} req/s (2 s rate), {lat}",
                cmd.to_uppercase()
            );
            // The picture's bars: the same percentiles as one range query each, its one step
            // the end of the benchmark (the window covers all of it; a benchmark of 1-2 s has
            // too few 1 s scrapes for a line over time).
            for q in [0.5, 0.9, 0.99] {
                let r = prom.query_range(
                    &format!(
                        "histogram_quantile({q}, sum by (le) (rate({prefix}_{cmd}_latency_us_bucket[{window}]))) / 1000"
                    ),
                    at,
                    at,
                    1.0,
                )?;
                let v = r.first().and_then(|s| s.points.last()).map(|p| p.1);
                bars.insert(
                    format!(
                        "{} {} p{}",
                        artifact.trim(),
                        cmd.to_uppercase(),
                        (q * 100.0) as u32
                    ),
                    json!(v),
                );
            }
        }
    }

    println!("\nMeltemi stats in Envoy's /stats (non-zero counters and gauges):");
    for (k, v) in envoy.stats() {
        if v > 0 && (k.starts_with("wasmcustom.") || k.starts_with("dynamicmodulescustom.")) {
            println!("  {k}: {v}");
        }
    }
    Ok(serde_json::Value::Object(bars))
}

/// The route stats line: how many of the split's requests took the detour.
fn print_route_counts(phase: &str, (requests, detoured): (u64, u64)) {
    println!(
        "  route.split {phase}: requests {requests}, detoured {detoured} ({:.1} %), fast path {}",
        100.0 * detoured as f64 / requests.max(1) as f64,
        requests - detoured.min(requests)
    );
}

/// The `.so`'s per-destination request counter of version `v` of the demo service: the
/// subset's own cluster when it is the listener's primary (fast path), its bridge twin when
/// requests reach it by detour.
fn version_requests(v: &str) -> String {
    format!(
        "{{__name__=~\"envoy_dynamicmodulescustom_thrift_outbound_9090_calc_demo_svc_cluster_local_\
         destination_(meltemi_bridge_)?outbound_9090_{v}_calc_demo_svc_cluster_local_requests\"}}"
    )
}

fn route_thrift(prom: &mut Prometheus) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
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
    scrape(prom, &envoy)?;

    // ONE connection for everything below.
    let mut conn = ThriftConn::connect(listen)?;
    let local = conn.stream.local_addr()?;
    println!("\nONE client connection from {local}, framed binary Thrift calls of `get`:");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let t = Instant::now();
    let split_start = unix_now();
    // At least 2 s, so Prometheus's 1 s scrapes see the split as a rate.
    while (counts.values().sum::<u64>() < 1000 || t.elapsed() < Duration::from_secs(2))
        && t.elapsed() < Duration::from_secs(10)
    {
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
    let written_unix = unix_now();
    println!("\nMetaRouter rewritten: 100 % to v2 (the connection keeps calling)");
    let (mut calls, mut run, mut run_start) = (0u64, 0u64, Duration::ZERO);
    // Until 300 calls in a row went to v2, and 2.5 s at least (for the picture).
    while (run < 300 || written.elapsed() < Duration::from_millis(2500))
        && written.elapsed() < Duration::from_secs(15)
    {
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
    let end_unix = unix_now();
    let landed_unix = written_unix + run_start.as_secs_f64();
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

    // The same story from Prometheus, while the connection is still open.
    settle(prom, end_unix)?;
    let at = unix_now() + 1.0;
    let window = format!("{}s", (at - split_start).ceil() as u64 + 1);
    println!("\nFrom Prometheus (PromQL):");
    let (c1, c2) = (
        one(prom, &version_requests("v1"), written_unix)?,
        one(prom, &version_requests("v2"), written_unix)?,
    );
    println!(
        "  split at the last scrape before the rewrite: v1 {c1} ({:.1} %), v2 {c2} ({:.1} %)",
        100.0 * c1 / (c1 + c2),
        100.0 * c2 / (c1 + c2)
    );
    let rate = |v: &str, t: f64| one(prom, &format!("rate({}[2s])", version_requests(v)), t);
    println!(
        "  rate (2 s) before the rewrite: v1 {:.0} req/s, v2 {:.0} req/s; at the end: v1 {:.0} req/s, v2 {:.0} req/s",
        rate("v1", written_unix)?,
        rate("v2", written_unix)?,
        rate("v1", end_unix)?,
        rate("v2", end_unix)?,
    );
    let istio = r#"istio_requests_total{request_protocol="thrift"}"#;
    println!(
        "  istio_requests_total (the .so's, relabelled as deploy/grafana/prometheus-relabel.yaml says): {:.0} req/s over the run, success {:.1} %",
        one(prom, &format!("sum(rate({istio}[{window}]))"), at)?,
        100.0
            * one(
                prom,
                &format!(
                    r#"sum(rate(istio_requests_total{{request_protocol="thrift",response_code="0"}}[{window}])) / sum(rate({istio}[{window}]))"#
                ),
                at
            )?,
    );
    println!(
        "  istio_request_duration_milliseconds: {}",
        percentiles(
            prom,
            r#"istio_request_duration_milliseconds_bucket{request_protocol="thrift"}"#,
            &window,
            at,
            1.0
        )?
    );
    let mut versions = serde_json::Map::new();
    for v in ["v1", "v2"] {
        let r = prom.query_range(
            &format!("rate({}[2s])", version_requests(v)),
            split_start - 1.0,
            end_unix + 1.0,
            1.0,
        )?;
        versions.insert(v.to_string(), points(&r));
    }
    Ok(json!({
        "versions": versions,
        "rewrite": written_unix,
        "landed": landed_unix,
        "t0": split_start - 1.0,
    }))
}
