//! Issue 4, Redis: both artifacts in one real Envoy in front of a real redis-server; the
//! per-command counts equal what redis-benchmark sent, and the two filters agree.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, redis_cli, Envoy, EnvoyOptions, RedisServer};
use std::process::Command;
use std::time::Duration;

#[test]
fn per_command_counts_equal_what_redis_benchmark_sent_in_both_artifacts() {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let yaml = bootstrap(
        listen,
        &[
            Filter::Module(r#"{"protocol":"redis","stat_prefix":"so","accessLog":true}"#.into()),
            Filter::Wasm(r#"{"protocol":"redis","stat_prefix":"wasm","accessLog":true}"#.into()),
            Filter::TcpProxy("redis".into()),
        ],
        &[("redis", redis.port())],
    );
    let mut opts = EnvoyOptions::new(yaml).with_dynamic_module();
    opts.log_level = "info".into();
    let envoy = Envoy::start_with(opts).expect("envoy");
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &listen.to_string()])
        .args([
            "-t",
            "set,get,incr,lpush",
            "-n",
            "2000",
            "-c",
            "8",
            "-P",
            "4",
            "--csv",
        ])
        .output()
        .expect("redis-benchmark");
    assert!(out.status.success());
    // One INCR that succeeds, one LPUSH, and one INCR the server rejects (an error reply).
    assert_eq!(redis_cli(listen, &["INCR", "counter"]).unwrap(), "1");
    assert!(redis_cli(listen, &["LPUSH", "s", "x"]).is_ok());
    let wrong = redis_cli(listen, &["INCR", "s"]).unwrap();
    assert!(wrong.contains("WRONGTYPE"), "{wrong}");

    for (host, prefix) in [("dynamicmodulescustom", "so"), ("wasmcustom", "wasm")] {
        let stat = |s: &str| format!("{host}.redis.{prefix}.{s}");
        // redis-benchmark: 2000 of each; redis-cli: one INCR (ok), one LPUSH, one INCR (error).
        let set =
            envoy.wait_stat_at_least(&stat("command.set.success"), 2000, Duration::from_secs(5));
        assert_eq!(set, Some(2000), "{prefix}");
        assert_eq!(
            envoy.stat(&stat("command.get.total")),
            Some(2000),
            "{prefix}"
        );
        assert_eq!(
            envoy.stat(&stat("command.lpush.total")),
            Some(2001),
            "{prefix}"
        );
        assert_eq!(
            envoy.stat(&stat("command.incr.total")),
            Some(2002),
            "{prefix}"
        );
        assert_eq!(envoy.stat(&stat("command.incr.error")), Some(1), "{prefix}");
        assert_eq!(envoy.stat(&stat("response_error")), Some(1), "{prefix}");
        assert_eq!(
            envoy.stat(&stat("request_decoding_error")),
            Some(0),
            "{prefix}"
        );
        assert_eq!(envoy.stat(&stat("response_unmatched")), Some(0), "{prefix}");
    }
    // Access log: one line per answered request, from each artifact; the rejected INCR is there.
    let log = envoy.log();
    for prefix in ["so", "wasm"] {
        let head = format!("meltemi protocol=redis stat_prefix={prefix} command=");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&head)).collect();
        // 4 x 2000 from redis-benchmark, its 2 CONFIG GETs at start, and the 3 redis-cli calls.
        assert_eq!(lines.len(), 8005, "{prefix}");
        let host = if prefix == "so" {
            "dynamicmodulescustom"
        } else {
            "wasmcustom"
        };
        assert_eq!(
            Some(lines.len() as u64),
            envoy.stat(&format!("{host}.redis.{prefix}.response")),
            "{prefix}: a line per answered request"
        );
        let errors = lines
            .iter()
            .filter(|l| l.contains("command=incr") && l.contains("outcome=error"))
            .count();
        assert_eq!(errors, 1, "{prefix}");
    }
    // Every response was paired: nothing left in flight once clients are gone.
    let idle = meltemi_testkit::wait_for(Duration::from_secs(5), || {
        (envoy.stat("dynamicmodulescustom.redis.so.request_active") == Some(0)
            && envoy.stat("wasmcustom.redis.wasm.request_active") == Some(0))
        .then_some(())
    });
    assert!(idle.is_some());
}

#[test]
fn malformed_client_bytes_close_only_that_connection() {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let yaml = bootstrap(
        listen,
        &[
            Filter::Module(r#"{"protocol":"redis","stat_prefix":"so"}"#.into()),
            Filter::TcpProxy("redis".into()),
        ],
        &[("redis", redis.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"*2\r\n$3\r\nGET\r\n$x\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "connection closed without a reply: {:?}", &buf[..n]);
    assert_eq!(
        envoy.stat("dynamicmodulescustom.redis.so.request_decoding_error"),
        Some(1)
    );
    assert_eq!(redis_cli(listen, &["PING"]).unwrap(), "PONG");
}

/// Istio-style metrics from both artifacts, with the exact Prometheus series Istio's own HTTP
/// metrics have: `istio_requests_total{reporter="source",request_protocol="redis",...}`. The
/// module sets `metrics_namespace: wasmcustom` (the namespace the wasm filter registers as a
/// custom one, stripped in Prometheus output), so its series are as clean as the wasm filter's.
#[test]
fn istio_series_per_command_and_reply_code_in_both_artifacts() {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let cfg = |workload: &str| {
        format!(
            r#"{{"protocol":"redis","stat_prefix":"{workload}","istioMetrics":{{"enabled":true,
            "reporter":"source","requestMethod":true,"sourceWorkload":"e2e-client",
            "destinationWorkload":"{workload}","destinationServiceName":"cache",
            "destinationService":"cache.default.svc.cluster.local"}}}}"#
        )
    };
    let yaml = bootstrap(
        listen,
        &[
            Filter::ModuleIn("wasmcustom".into(), cfg("so")),
            Filter::Wasm(cfg("wasm")),
            Filter::TcpProxy("redis".into()),
        ],
        &[("redis", redis.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");

    // One pipelined connection: 20 SET, 30 GET, one LPUSH, one INCR the server rejects.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    req.extend(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".repeat(20));
    req.extend(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".repeat(30));
    req.extend(b"*3\r\n$5\r\nLPUSH\r\n$1\r\nl\r\n$1\r\nx\r\n");
    req.extend(b"*2\r\n$4\r\nINCR\r\n$1\r\nl\r\n");
    s.write_all(&req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !(got.ends_with(b"\r\n") && got.windows(10).any(|w| w == b"-WRONGTYPE")) {
        let n = s.read(&mut buf).expect("replies");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.windows(5).filter(|w| w == b"+OK\r\n").count(), 20);
    drop(s);

    let key = |m: &str, c: &str| (m.to_string(), c.to_string(), "-".to_string());
    let want = std::collections::BTreeMap::from([
        (key("set", "ok"), 20),
        (key("get", "ok"), 30),
        (key("lpush", "ok"), 1),
        (key("incr", "error"), 1),
    ]);
    // The duration histogram is per response code only (no request_method label).
    let want_hist = std::collections::BTreeMap::from([(key("", "ok"), 51), (key("", "error"), 1)]);
    for workload in ["so", "wasm"] {
        let select = [
            ("destination_workload", workload),
            ("reporter", "source"),
            ("request_protocol", "redis"),
            ("source_workload", "e2e-client"),
            ("destination_service_name", "cache"),
            ("destination_service", "cache.default.svc.cluster.local"),
            ("connection_security_policy", "unknown"),
        ];
        let series = |name: &str, want: &std::collections::BTreeMap<_, u64>| {
            meltemi_testkit::wait_for(Duration::from_secs(5), || {
                let got =
                    meltemi_testkit::istio_series(&envoy.admin("/stats/prometheus"), name, &select);
                (&got == want).then_some(())
            })
            .unwrap_or_else(|| {
                panic!(
                    "{workload} {name}: {:?}",
                    meltemi_testkit::istio_series(&envoy.admin("/stats/prometheus"), name, &select)
                )
            })
        };
        series("istio_requests_total", &want);
        series("istio_request_duration_milliseconds_count", &want_hist);
    }
}
