//! The rig itself: real Envoy (plain tcp_proxy) in front of a real redis-server.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, redis_cli, Envoy, RedisServer};

fn tcp_proxy_yaml(listen: u16, upstream: u16) -> String {
    bootstrap(
        listen,
        &[Filter::TcpProxy("rig".into())],
        &[("rig", upstream)],
    )
}

#[test]
fn envoy_proxies_real_redis_and_reports_stats() {
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let envoy = Envoy::start(&tcp_proxy_yaml(listen, redis.port()), &[]).expect("envoy");
    assert_eq!(redis_cli(listen, &["SET", "rig", "works"]).unwrap(), "OK");
    assert_eq!(redis_cli(listen, &["GET", "rig"]).unwrap(), "works");
    let cx = envoy
        .wait_stat_at_least(
            "tcp.rig.downstream_cx_total",
            2,
            std::time::Duration::from_secs(5),
        )
        .expect("tcp_proxy stat present");
    assert_eq!(cx, 2, "two redis-cli connections went through Envoy");
}

#[test]
fn two_envoys_run_side_by_side() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = (free_port(), free_port());
    let ea = Envoy::start(&tcp_proxy_yaml(a, redis.port()), &[]).expect("envoy a");
    let eb = Envoy::start(&tcp_proxy_yaml(b, redis.port()), &[]).expect("envoy b");
    assert_ne!(ea.admin_port(), eb.admin_port());
    assert_eq!(redis_cli(a, &["PING"]).unwrap(), "PONG");
    assert_eq!(redis_cli(b, &["PING"]).unwrap(), "PONG");
}
