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
