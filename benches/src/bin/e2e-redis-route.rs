//! End-to-end harness for Redis routing (issue 12, `docs/redis.md`): how the dynamic module can
//! reach Redis upstreams on stock Envoy 1.40, against Envoy's native `redis_proxy`, in one run.
//! Envoy (`--concurrency 1`) is pinned to CPU 0, redis-server and redis-benchmark to CPU 1.
//!
//! Set-ups:
//! - `tcp_proxy`: the ceiling (one upstream, no routing);
//! - `redis_proxy`: Envoy's native proxy with two prefix routes and a catch-all (the keys
//!   redis-benchmark uses go to the catch-all);
//! - `module own sockets`: the `.so` as the terminal filter, same routes, replies handed back
//!   through `network_filter_scheduler_commit` (what the module ships);
//! - `module callout+bridge`: the `.so` before `tcp_proxy`, each request sent by HTTP callout to
//!   a cluster whose upstream is the module's HTTP-to-TCP bridge (the probe: one PING per read,
//!   so only the 50 x 1 PING shape; pipelined the probe would answer one of 16).
//!
//! Usage: `cargo run --release -p meltemi-benches --bin e2e-redis-route [-- REQUESTS [ROUNDS]]`
//! (after `scripts/build-artifacts.sh`). Not a test: it measures.

use meltemi_benches::e2e::{envoy_cpu_ns, median};
use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, Envoy, EnvoyOptions, RedisServer};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    TcpProxy,
    RedisProxy,
    ModuleSockets,
    ModuleCallout,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::TcpProxy => "tcp_proxy",
            Setup::RedisProxy => "native redis_proxy (prefix routes)",
            Setup::ModuleSockets => "meltemi .so, own upstream sockets + scheduler",
            Setup::ModuleCallout => "meltemi .so, HTTP callout + bridge",
        }
    }
}

fn yaml(setup: Setup, listen: u16, upstream: u16, other: u16) -> String {
    let clusters = [("redis", upstream), ("other", other)];
    let chain = match setup {
        Setup::TcpProxy => vec![Filter::TcpProxy("redis".into())],
        Setup::RedisProxy => vec![Filter::Yaml(
            r#"      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: bench
          settings: { op_timeout: 5s }
          prefix_routes:
            routes: [ { prefix: "a:", cluster: other }, { prefix: "b:", cluster: other, remove_prefix: true } ]
            catch_all_route: { cluster: redis }"#
                .into(),
        )],
        Setup::ModuleSockets => {
            let json = format!(
                r#"{{"protocol":"redis","stat_prefix":"bench","redis":{{"routes":[{{"prefix":"a:","cluster":"other"}},{{"prefix":"b:","cluster":"other","removePrefix":true}}],"catchAllRoute":{{"cluster":"redis"}},"clusters":[{{"name":"redis","address":"127.0.0.1:{upstream}"}},{{"name":"other","address":"127.0.0.1:{other}"}}]}}}}"#
            );
            vec![Filter::TerminalModule(json)]
        }
        Setup::ModuleCallout => {
            let json = r#"{"protocol":"redis","stat_prefix":"bench","probe":{"on":"PING","cluster":"bridge"}}"#;
            vec![Filter::Module(json.into()), Filter::TcpProxy("redis".into())]
        }
    };
    let mut y = bootstrap(listen, &chain, &clusters);
    if setup == Setup::ModuleCallout {
        y.push_str(&format!(
            r#"  - name: bridge
    connect_timeout: 1s
    type: STATIC
    upstream_config:
      name: envoy.upstreams.http.dynamic_modules
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.dynamic_modules.v3.Config
        dynamic_module_config: {{ name: meltemi }}
        bridge_name: redis
        bridge_config:
          "@type": type.googleapis.com/google.protobuf.StringValue
          value: '{{"protocol":"redis"}}'
    load_assignment:
      cluster_name: bridge
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }} }}
"#
        ));
    }
    y
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    cpu_us_per_req: f64,
}

fn run_once(setup: Setup, ports: (u16, u16), test: &str, n: u64, c: u32, p: u32) -> Sample {
    let listen = free_port();
    let mut o = EnvoyOptions::new(yaml(setup, listen, ports.0, ports.1));
    o.cpu_list = Some("0".into());
    if matches!(setup, Setup::ModuleSockets | Setup::ModuleCallout) {
        o = o.with_dynamic_module();
    }
    let envoy = Envoy::start_with(o).expect("envoy");
    let pid = envoy.pid();
    let before = envoy_cpu_ns(pid);
    let out = Command::new("taskset")
        .args(["-c", "1", "redis-benchmark", "-h", "127.0.0.1"])
        .args(["-p", &listen.to_string(), "-t", test, "--csv"])
        .args(["-n", &n.to_string(), "-c", &c.to_string()])
        .args(["-P", &p.to_string()])
        .output()
        .expect("redis-benchmark");
    let after = envoy_cpu_ns(pid);
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("\"{}\"", test.to_ascii_uppercase());
    let Some(row) = text.lines().find(|l| l.starts_with(&want)) else {
        eprintln!("{}: no {test} row: {text}", setup.name());
        return Sample::default();
    };
    let cols: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    Sample {
        rps: cols[0],
        p50_ms: cols[3],
        cpu_us_per_req: (after - before) as f64 / 1e3 / n as f64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    meltemi_benches::e2e::require("e2e-redis-route", true, false, &[]);
    let redis = RedisServer::start().expect("redis-server");
    let other = RedisServer::start().expect("redis-server");
    for pid in [redis.pid(), other.pid()] {
        let _ = Command::new("taskset")
            .args(["-pc", "1", &pid.to_string()])
            .output();
    }
    let ports = (redis.port(), other.port());
    let shapes: [(&str, u32, u32, &[Setup]); 4] = [
        (
            "get",
            50,
            1,
            &[Setup::TcpProxy, Setup::RedisProxy, Setup::ModuleSockets],
        ),
        (
            "set",
            50,
            1,
            &[Setup::TcpProxy, Setup::RedisProxy, Setup::ModuleSockets],
        ),
        (
            "get",
            1,
            16,
            &[Setup::TcpProxy, Setup::RedisProxy, Setup::ModuleSockets],
        ),
        (
            "ping_mbulk",
            50,
            1,
            &[
                Setup::TcpProxy,
                Setup::RedisProxy,
                Setup::ModuleSockets,
                Setup::ModuleCallout,
            ],
        ),
    ];
    for (test, c, p, setups) in shapes {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); setups.len()];
        for _ in 0..rounds {
            for (i, s) in setups.iter().enumerate() {
                samples[i].push(run_once(*s, ports, test, n, c, p));
            }
        }
        println!("\nredis-benchmark {test}, {c} client(s) x pipeline {p}, {n} requests, median of {rounds}");
        println!(
            "| set-up | req/s | x redis_proxy | p50 ms | Envoy CPU us/req | CPU x redis_proxy |"
        );
        println!("|---|---|---|---|---|---|");
        let med = |i: usize, f: fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
        let (base_rps, base_cpu) = (med(1, |s| s.rps), med(1, |s| s.cpu_us_per_req));
        for (i, s) in setups.iter().enumerate() {
            let (rps, cpu) = (med(i, |s| s.rps), med(i, |s| s.cpu_us_per_req));
            println!(
                "| {} | {:.0} | {:.2} | {:.3} | {:.1} | {:.2} |",
                s.name(),
                rps,
                rps / base_rps,
                med(i, |s| s.p50_ms),
                cpu,
                cpu / base_cpu
            );
        }
    }
}
