//! The `.wasm` filter in the real Envoy 1.40, before `tcp_proxy`, in front of a real redis-server.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, redis_cli, Envoy, RedisServer};
use std::io::{Read, Write};
use std::time::Duration;

fn yaml(listen: u16, upstream: u16, filter_json: &str) -> String {
    bootstrap(
        listen,
        &[
            Filter::Wasm(filter_json.into()),
            Filter::TcpProxy("redis".into()),
        ],
        &[("redis", upstream)],
    )
}

/// A redis-server and Envoy with the wasm filter (stat prefix `prefix`) before tcp_proxy to it;
/// the listener port.
fn start(prefix: &str) -> (RedisServer, Envoy, u16) {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let filter = format!(r#"{{"protocol":"redis","stat_prefix":"{prefix}"}}"#);
    let envoy = Envoy::start(&yaml(listen, redis.port(), &filter), &[])
        .expect("envoy with the wasm filter");
    (redis, envoy, listen)
}

/// RESP as redis-cli sends it: SET and GET as arrays of bulk strings.
const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$5\r\nsmoke\r\n$4\r\nwasm\r\n";
const GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$5\r\nsmoke\r\n";

#[test]
fn wasm_filter_loads_and_counts_exact_bytes_of_real_redis_traffic() {
    let (_redis, envoy, listen) = start("smoke");

    assert_eq!(redis_cli(listen, &["SET", "smoke", "wasm"]).unwrap(), "OK");
    assert_eq!(redis_cli(listen, &["GET", "smoke"]).unwrap(), "wasm");

    // redis-cli sends exactly these bytes per connection; the replies are +OK and $4 wasm.
    let want_down = (SET.len() + GET.len()) as u64;
    let want_up = (b"+OK\r\n".len() + b"$4\r\nwasm\r\n".len()) as u64;
    let name = |s: &str| format!("wasmcustom.redis.smoke.{s}");
    let got = envoy.wait_stat_at_least(
        &name("downstream_rx_bytes"),
        want_down,
        Duration::from_secs(5),
    );
    assert_eq!(got, Some(want_down), "client bytes seen by the filter");
    assert_eq!(envoy.stat(&name("upstream_rx_bytes")), Some(want_up));
    assert_eq!(envoy.stat(&name("cx_total")), Some(2));
    // Decoded by the codec: one SET and one GET, each answered successfully.
    assert_eq!(envoy.stat(&name("command.set.total")), Some(1));
    assert_eq!(envoy.stat(&name("command.set.success")), Some(1));
    assert_eq!(envoy.stat(&name("command.get.success")), Some(1));
    assert_eq!(envoy.stat(&name("response_success")), Some(2));
    assert_eq!(envoy.stat(&name("request_decoding_error")), Some(0));
    let active = envoy.wait_stat_at_least(&name("cx_total"), 2, Duration::from_secs(1));
    assert_eq!(active, Some(2));
    // Both redis-cli connections are closed: the active gauge returns to zero.
    let drained = meltemi_testkit::wait_for(Duration::from_secs(5), || {
        (envoy.stat(&name("cx_active")) == Some(0)).then_some(())
    });
    assert!(
        drained.is_some(),
        "cx_active back to 0: {:?}",
        envoy.stat(&name("cx_active"))
    );
}

/// Counter and gauge sums are held while a connection has requests in flight (each host call
/// is a crossing out of v8); the root's tick bounds that: a request the server holds (BLPOP
/// with a 3 s timeout) shows in `request_active` and its command count within the tick, while
/// still in flight, and the gauge returns to 0 when the answer comes.
#[test]
fn a_request_in_flight_is_counted_within_a_tick() {
    let (_redis, envoy, listen) = start("hold");
    let name = |s: &str| format!("wasmcustom.redis.hold.{s}");
    // On one connection: a GET answered (the connection is idle: sums written, the hold clock
    // restarts), then at once a BLPOP the server holds for 3 s: its counts are held, and only
    // the tick can write them before the answer.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(GET).unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"$-1\r\n");
    let started = std::time::Instant::now();
    conn.write_all(b"*3\r\n$5\r\nBLPOP\r\n$12\r\nmeltemi-none\r\n$1\r\n3\r\n")
        .unwrap();
    let blocked = std::thread::spawn(move || {
        let n = conn.read(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    let seen = meltemi_testkit::wait_for(Duration::from_millis(1500), || {
        (envoy.stat(&name("request_active")) == Some(1)).then_some(())
    });
    // Seen within 1.5 s, while the server still holds the answer (3 s).
    assert!(
        seen.is_some(),
        "request_active after {:?}: {:?}",
        started.elapsed(),
        envoy.stat(&name("request_active"))
    );
    assert_eq!(envoy.stat(&name("command.blpop.total")), Some(1));
    assert_eq!(envoy.stat(&name("command.blpop.success")), Some(0));
    assert_eq!(blocked.join().unwrap(), b"*-1\r\n");
    let done = meltemi_testkit::wait_for(Duration::from_secs(2), || {
        (envoy.stat(&name("request_active")) == Some(0)).then_some(())
    });
    assert!(done.is_some(), "request_active back to 0");
    assert_eq!(envoy.stat(&name("command.blpop.success")), Some(1));
}

#[test]
fn bad_wasm_config_is_refused_and_envoy_does_not_start() {
    let listen = free_port();
    let err = Envoy::start(&yaml(listen, 1, r#"{"protocol":"http"}"#), &[])
        .expect_err("Envoy must refuse the listener");
    let msg = err.to_string();
    assert!(
        msg.contains("unknown protocol \"http\""),
        "the refusal names the bad field: {msg}"
    );
}
