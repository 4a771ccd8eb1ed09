//! End-to-end harness: Redis traffic through the real Envoy 1.40 (one worker) in four set-ups,
//! in one run on this machine: plain `tcp_proxy` (the ceiling), Envoy's native `redis_proxy`,
//! Meltemi's `.so` before `tcp_proxy`, Meltemi's `.wasm` before `tcp_proxy`. Envoy is pinned to
//! CPU 0, redis-server and redis-benchmark to CPU 1. Each set-up runs `ROUNDS` times, interleaved;
//! the table gives medians: throughput, p50/p99 latency, Envoy CPU per request, and ratios to
//! `tcp_proxy`.
//!
//! Usage: `cargo run --release -p meltemi-benches --bin e2e-redis [-- REQUESTS [ROUNDS]]`
//! (after `scripts/build-artifacts.sh`). Not a test: it asserts nothing, it measures.

use meltemi_benches::e2e::median;
use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, Envoy, EnvoyOptions, RedisServer};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    TcpProxy,
    NativeRedisProxy,
    MeltemiSo,
    MeltemiWasm,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::TcpProxy => "tcp_proxy",
            Setup::NativeRedisProxy => "native redis_proxy",
            Setup::MeltemiSo => "meltemi .so + tcp_proxy",
            Setup::MeltemiWasm => "meltemi .wasm + tcp_proxy",
        }
    }
}

fn yaml(setup: Setup, listen: u16, upstream: u16) -> String {
    let cfg = r#"{"protocol":"redis","stat_prefix":"bench"}"#;
    let tcp = Filter::TcpProxy("redis".into());
    let chain = match setup {
        Setup::TcpProxy => vec![tcp],
        Setup::NativeRedisProxy => vec![Filter::Yaml(
            r#"      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: bench
          settings: { op_timeout: 5s }
          prefix_routes: { catch_all_route: { cluster: redis } }"#
                .into(),
        )],
        Setup::MeltemiSo => vec![Filter::Module(cfg.into()), tcp],
        Setup::MeltemiWasm => vec![Filter::Wasm(cfg.into()), tcp],
    };
    bootstrap(listen, &chain, &[("redis", upstream)])
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let p = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    p(11) + p(12)
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
}

fn run_once(
    setup: Setup,
    redis: &RedisServer,
    requests: u64,
    clients: u32,
    pipeline: u32,
) -> Sample {
    let listen = free_port();
    let mut o = EnvoyOptions::new(yaml(setup, listen, redis.port()));
    o.cpu_list = Some("0".into());
    if setup == Setup::MeltemiSo {
        o = o.with_dynamic_module();
    }
    let envoy = Envoy::start_with(o).expect("envoy");
    // Started through `taskset`, which execs into Envoy: the PID is Envoy's.
    let pid = envoy.pid();
    let before = cpu_ticks(pid);
    let out = Command::new("taskset")
        .args(["-c", "1", "redis-benchmark", "-h", "127.0.0.1"])
        .args(["-p", &listen.to_string(), "-t", "get", "--csv"])
        .args(["-n", &requests.to_string(), "-c", &clients.to_string()])
        .args(["-P", &pipeline.to_string()])
        .output()
        .expect("redis-benchmark");
    let after = cpu_ticks(pid);
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = text
        .lines()
        .find(|l| l.starts_with("\"GET\""))
        .unwrap_or_else(|| panic!("no GET row in redis-benchmark output: {text}"));
    let cols: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    let ticks_per_s = 100.0; // Linux USER_HZ
    Sample {
        rps: cols[0],
        p50_ms: cols[3],
        p99_ms: cols[5],
        cpu_us_per_req: (after - before) as f64 / ticks_per_s * 1e6 / requests as f64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    // Every set-up runs in every round, the `.so` and the `.wasm` ones too.
    meltemi_benches::e2e::require("e2e-redis", true, true, &[]);
    let redis = RedisServer::start().expect("redis-server");
    let _ = Command::new("taskset")
        .args(["-pc", "1", &redis.pid().to_string()])
        .output();
    let setups = [
        Setup::TcpProxy,
        Setup::NativeRedisProxy,
        Setup::MeltemiSo,
        Setup::MeltemiWasm,
    ];
    for (clients, pipeline) in [(50u32, 1u32), (1, 16)] {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); setups.len()];
        for _ in 0..rounds {
            for (i, s) in setups.iter().enumerate() {
                samples[i].push(run_once(*s, &redis, requests, clients, pipeline));
            }
        }
        println!(
            "\nredis-benchmark GET, {clients} client(s) x pipeline {pipeline}, {requests} requests, median of {rounds}; Envoy --concurrency 1 on CPU 0, client+redis on CPU 1"
        );
        println!(
            "| set-up | req/s | x tcp_proxy | p50 ms | p99 ms | Envoy CPU us/req | CPU x tcp_proxy |"
        );
        println!("|---|---|---|---|---|---|---|");
        let base_rps = median(samples[0].iter().map(|s| s.rps).collect());
        let base_cpu = median(samples[0].iter().map(|s| s.cpu_us_per_req).collect());
        for (i, s) in setups.iter().enumerate() {
            let rps = median(samples[i].iter().map(|x| x.rps).collect());
            let cpu = median(samples[i].iter().map(|x| x.cpu_us_per_req).collect());
            println!(
                "| {} | {:.0} | {:.2} | {:.3} | {:.3} | {:.1} | {:.2} |",
                s.name(),
                rps,
                rps / base_rps,
                median(samples[i].iter().map(|x| x.p50_ms).collect()),
                median(samples[i].iter().map(|x| x.p99_ms).collect()),
                cpu,
                cpu / base_cpu
            );
        }
    }
}
