//! The dynamic module in the real Envoy 1.40: a pass-through network filter before `tcp_proxy`
//! in front of a real redis-server, plus a second cluster whose upstream is the module's
//! HTTP-to-TCP bridge. Needs the release `.so` (`scripts/build-artifacts.sh`).

mod common;

use common::{bridge_cluster, module_listener, static_resources, tcp_cluster};
use meltemi_testkit::{free_port, redis_cli, Envoy, EnvoyOptions, RedisServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const FILTER: &str = r#"{"protocol":"redis","stat_prefix":"smoke","panic_on":"MELTEMI-PANIC","probe":{"on":"MELTEMI-PROBE","cluster":"meltemi_bridge"}}"#;

/// The working config shape: our filter (JSON in a StringValue) before tcp_proxy, and a
/// bridged cluster (`upstream_config` = the module's HTTP-to-TCP bridge) for callouts.
fn yaml(listen: u16, redis: u16, filter_json: &str) -> String {
    static_resources(
        &[module_listener("redis", listen, filter_json, "redis")],
        &[
            tcp_cluster("redis", redis),
            bridge_cluster("redis", "meltemi_bridge", redis, ""),
        ],
    )
}

fn start(listen: u16, redis: u16, filter_json: &str) -> std::io::Result<Envoy> {
    let mut o = EnvoyOptions::new(yaml(listen, redis, filter_json)).with_dynamic_module();
    o.log_level = "info".into();
    Envoy::start_with(o)
}

fn stat(name: &str) -> String {
    format!("dynamicmodulescustom.redis.smoke.{name}")
}

/// Sends `data` on a fresh connection and reads until EOF, reset or `wait` of silence.
fn exchange(port: u16, data: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Envoy");
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(data).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// RESP as redis-cli sends it, and the replies.
const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$5\r\nsmoke\r\n$2\r\nso\r\n";
const GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$5\r\nsmoke\r\n";
const REPLIES: &[u8] = b"+OK\r\n$2\r\nso\r\n";

#[test]
fn counts_exact_bytes_and_commands_of_real_redis_traffic() {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let envoy = start(listen, redis.port(), FILTER).expect("envoy with the module");
    assert!(envoy
        .log()
        .contains("Dynamic module ABI version v0.2.0 matched"));

    assert_eq!(redis_cli(listen, &["SET", "smoke", "so"]).unwrap(), "OK");
    assert_eq!(redis_cli(listen, &["GET", "smoke"]).unwrap(), "so");

    let down = (SET.len() + GET.len()) as u64;
    let got = envoy.wait_stat_at_least(&stat("downstream_rx_bytes"), down, Duration::from_secs(5));
    assert_eq!(got, Some(down));
    assert_eq!(
        envoy.stat(&stat("upstream_rx_bytes")),
        Some(REPLIES.len() as u64)
    );
    assert_eq!(envoy.stat(&stat("request")), Some(2));
    assert_eq!(envoy.stat(&stat("command.set.total")), Some(1));
    assert_eq!(envoy.stat(&stat("command.set.success")), Some(1));
    assert_eq!(envoy.stat(&stat("command.get.success")), Some(1));
    assert_eq!(envoy.stat(&stat("cx_total")), Some(2));
    assert_eq!(envoy.stat(&stat("panic")), Some(0));
    assert_eq!(envoy.stat(&stat("request_decoding_error")), Some(0));
    assert!(
        gauges_idle(&envoy),
        "gauges return to 0 after both connections close"
    );
}

/// Waits (5 s at most) until `cx_active` and `request_active` read 0.
fn gauges_idle(envoy: &Envoy) -> bool {
    meltemi_testkit::wait_for(Duration::from_secs(5), || {
        (envoy.stat(&stat("cx_active")) == Some(0)
            && envoy.stat(&stat("request_active")) == Some(0))
        .then_some(())
    })
    .is_some()
}

#[test]
fn a_panic_closes_only_its_connection() {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let mut envoy = start(listen, redis.port(), FILTER).expect("envoy with the module");

    let (reply, closed) = exchange(
        listen,
        b"*2\r\n$4\r\nECHO\r\n$13\r\nMELTEMI-PANIC\r\n",
        Duration::from_secs(5),
    );
    assert!(closed, "the panicking connection is closed");
    assert!(reply.is_empty(), "nothing reached redis: {reply:?}");
    assert!(envoy.is_running(), "Envoy survives the panic");

    assert_eq!(redis_cli(listen, &["SET", "after", "panic"]).unwrap(), "OK");
    assert_eq!(redis_cli(listen, &["GET", "after"]).unwrap(), "panic");
    assert_eq!(envoy.stat(&stat("panic")), Some(1));
    assert_eq!(envoy.stat(&stat("request")), Some(2));
    let log = envoy.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("meltemi: panic"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    assert!(lines[0].contains("on_network_filter_read") && lines[0].contains("closing"));
    // The panicking hook closed its connection; the close event it raised re-entrantly still
    // releases the connection's gauges.
    assert!(
        gauges_idle(&envoy),
        "gauges return to 0 after the panic: cx_active {:?}",
        envoy.stat(&stat("cx_active"))
    );
}

#[test]
fn callout_through_the_bridge_answers_ping_with_pong() {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let envoy = start(listen, redis.port(), FILTER).expect("envoy with the module");

    let (reply, _) = exchange(listen, b"MELTEMI-PROBE\r\n", Duration::from_secs(2));
    assert_eq!(reply, b"+PONG\r\n");
    assert_eq!(envoy.stat(&stat("callouts_ok")), Some(1));
    assert_eq!(envoy.stat(&stat("callouts_failed")), Some(0));
    // The probe never reached tcp_proxy's upstream, and module-written bytes are not counted
    // as upstream bytes.
    assert_eq!(envoy.stat(&stat("upstream_rx_bytes")), Some(0));
    assert_eq!(
        envoy.stat("cluster.meltemi_bridge.upstream_rq_200"),
        Some(1)
    );
}

#[test]
fn bad_json_config_is_refused_and_envoy_does_not_start() {
    let listen = free_port();
    let err = start(listen, 1, r#"{"protocol":"smtp"}"#).expect_err("Envoy must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains("meltemi: refusing network filter config") && msg.contains("smtp"),
        "the refusal names the problem: {msg}"
    );
}
