//! What the Istio-style metrics cost an Envoy 1.40 at rest: time to ready, resident memory and
//! `/stats/prometheus` size, for Kafka (the largest label sets) with both artifacts in the chain,
//! `istioMetrics` off, on, and on with `requestMethod`. A measurement, not a check:
//! `cargo test -p meltemi-testkit --test istio_cost -- --ignored --nocapture`.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, Envoy, EnvoyOptions};
use std::time::Instant;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore]
fn istio_metrics_cost_at_rest() {
    for istio in [
        r#"{"enabled":false}"#,
        r#"{"enabled":true}"#,
        r#"{"enabled":true,"requestMethod":true}"#,
    ] {
        let cfg = |p: &str| {
            format!(r#"{{"protocol":"kafka","stat_prefix":"{p}","istioMetrics":{istio}}}"#)
        };
        let yaml = bootstrap(
            free_port(),
            &[
                Filter::Module(cfg("so")),
                Filter::Wasm(cfg("wasm")),
                Filter::TcpProxy("kafka".into()),
            ],
            &[("kafka", free_port())],
        );
        let t = Instant::now();
        let envoy =
            Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
        let ready = t.elapsed();
        let t = Instant::now();
        let prom = envoy.admin("/stats/prometheus");
        let scrape = t.elapsed();
        let used = envoy.admin("/stats/prometheus?usedonly");
        println!(
            "istioMetrics {istio}: ready {:.2} s, RSS {} MB, /stats/prometheus {:.1} MB in {} ms (usedonly {:.2} MB)",
            ready.as_secs_f64(),
            rss_kb(envoy.pid()) / 1024,
            prom.len() as f64 / 1e6,
            scrape.as_millis(),
            used.len() as f64 / 1e6,
        );
    }
}
