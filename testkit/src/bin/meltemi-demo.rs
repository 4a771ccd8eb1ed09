//! The demo: the real Envoy 1.40 with Meltemi's filters in front of a real redis-server on
//! 127.0.0.1, real traffic from redis-benchmark and redis-cli, then the filters' counters as
//! Envoy's `/stats` shows them. Every process it starts is stopped by PID when it ends.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, redis_cli, Envoy, EnvoyOptions, RedisServer};
use std::process::Command;
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("meltemi-demo: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
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
