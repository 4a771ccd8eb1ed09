//! Redis key-prefix routing in the real Envoy 1.40 (issue 12, `docs/redis.md`): the `.so` as
//! the terminal filter, three plain redis-servers (`a:` keys, `b:` keys with the prefix
//! removed, and a catch-all), clients `redis-cli`, redis-py and raw RESP. Every claim is
//! checked on the servers themselves. Needs the release `.so` (`scripts/build-artifacts.sh`)
//! and redis-py (`scripts/setup.d/redis-py.sh`).

use meltemi_testkit::config::Filter;
use meltemi_testkit::{free_port, redis_cli, run_client, Envoy, EnvoyOptions, RedisServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Rig {
    a: RedisServer,
    b: RedisServer,
    c: RedisServer,
    envoy: Envoy,
    port: u16,
}

fn start() -> Rig {
    let (a, b, c) = (
        RedisServer::start().expect("redis a"),
        RedisServer::start().expect("redis b"),
        RedisServer::start().expect("redis c"),
    );
    let port = free_port();
    let json = format!(
        r#"{{"protocol":"redis","stat_prefix":"rt","redis":{{"caseInsensitive":true,"routes":[{{"prefix":"a:","cluster":"a"}},{{"prefix":"a:long:","cluster":"c"}},{{"prefix":"b:","cluster":"b","removePrefix":true}}],"catchAllRoute":{{"cluster":"c"}},"clusters":[{{"name":"a","address":"127.0.0.1:{}"}},{{"name":"b","address":"127.0.0.1:{}"}},{{"name":"c","address":"127.0.0.1:{}"}}]}}}}"#,
        a.port(),
        b.port(),
        c.port()
    );
    let yaml = meltemi_testkit::config::bootstrap(port, &[Filter::TerminalModule(json)], &[]);
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module())
        .expect("envoy with the module");
    Rig {
        a,
        b,
        c,
        envoy,
        port,
    }
}

/// The value of `key` on one server, read directly ("" when absent).
fn on(server: &RedisServer, key: &str) -> String {
    redis_cli(server.port(), &["GET", key]).unwrap()
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Writes `data` at once on `s` and reads until `want` bytes arrived (5 s at most).
fn exchange(s: &mut TcpStream, data: &[u8], want: usize) -> Vec<u8> {
    s.write_all(data).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// Writes `data` and reads until the bytes end with `end` (5 s at most).
fn read_until(s: &mut TcpStream, data: &[u8], end: &[u8]) -> String {
    s.write_all(data).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(end) && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn keys_land_on_their_servers_replies_keep_the_clients_order() {
    let rig = start();
    let p = rig.port;
    let cli = |args: &[&str]| redis_cli(p, args).unwrap();

    // Every key lands on the server that owns it (longest prefix, case-insensitive, prefix
    // removal, catch-all), checked on the servers.
    for (k, v) in [
        ("a:1", "va"),
        ("A:2", "vA"),
        ("a:long:1", "vl"),
        ("b:1", "vb"),
        ("other", "vc"),
    ] {
        assert_eq!(cli(&["SET", k, v]), "OK", "{k}");
    }
    assert_eq!(
        (on(&rig.a, "a:1"), on(&rig.a, "A:2")),
        ("va".into(), "vA".into())
    );
    assert_eq!(on(&rig.c, "a:long:1"), "vl");
    assert_eq!(on(&rig.b, "1"), "vb", "b: is removed on the way");
    assert_eq!(on(&rig.b, "b:1"), "");
    assert_eq!(on(&rig.c, "other"), "vc");
    for s in [&rig.b, &rig.c] {
        assert_eq!(on(s, "a:1"), "");
    }
    assert_eq!(redis_cli(rig.a.port(), &["DBSIZE"]).unwrap(), "2");
    assert_eq!(redis_cli(rig.b.port(), &["DBSIZE"]).unwrap(), "1");
    assert_eq!(redis_cli(rig.c.port(), &["DBSIZE"]).unwrap(), "2");

    // MGET across the three servers: values in the client's order, nil for a missing key.
    assert_eq!(
        cli(&["MGET", "other", "b:1", "a:1", "missing", "a:long:1", "A:2"]),
        "vc\nvb\nva\n\nvl\nvA"
    );
    // MSET splits; EXISTS and DEL sum over the servers.
    assert_eq!(cli(&["MSET", "a:m", "1", "b:m", "2", "m", "3"]), "OK");
    assert_eq!(
        (on(&rig.a, "a:m"), on(&rig.b, "m"), on(&rig.c, "m")),
        ("1".into(), "2".into(), "3".into())
    );
    assert_eq!(cli(&["EXISTS", "a:m", "b:m", "m", "nope"]), "3");
    assert_eq!(cli(&["DEL", "a:m", "b:m", "m"]), "3");
    assert_eq!(redis_cli(rig.a.port(), &["EXISTS", "a:m"]).unwrap(), "0");

    // One connection: an unsupported command and a transaction get error replies, the
    // connection stays usable, then a pipeline of 16 over three servers keeps its order.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut req = resp(&["KEYS", "*"]);
    req.extend(resp(&["MULTI"]));
    req.extend(resp(&["PING"]));
    let got = read_until(&mut s, &req, b"+PONG\r\n");
    let lines: Vec<&str> = got.split("\r\n").collect();
    assert!(
        lines[0].starts_with("-ERR meltemi: command 'KEYS' is not supported"),
        "{got}"
    );
    assert!(
        lines[1].starts_with("-ERR meltemi: MULTI is not supported"),
        "{got}"
    );
    assert_eq!(lines[2], "+PONG", "{got}");

    let keys = ["a:1", "b:1", "other", "a:long:1", "A:2", "missing"];
    let mut pipe = Vec::new();
    let mut want = Vec::new();
    for i in 0..16 {
        let k = keys[i % keys.len()];
        pipe.extend(resp(&["GET", k]));
        want.extend_from_slice(match k {
            "a:1" => &b"$2\r\nva\r\n"[..],
            "b:1" => b"$2\r\nvb\r\n",
            "other" => b"$2\r\nvc\r\n",
            "a:long:1" => b"$2\r\nvl\r\n",
            "A:2" => b"$2\r\nvA\r\n",
            _ => b"$-1\r\n",
        });
    }
    let got = exchange(&mut s, &pipe, want.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );

    // A server that is down answers its keys with errors; the others keep serving.
    let mut rig = rig;
    rig.b.stop();
    let got = read_until(
        &mut s,
        &[resp(&["GET", "b:1"]), resp(&["GET", "a:1"])].concat(),
        b"$2\r\nva\r\n",
    );
    assert!(got.starts_with("-ERR meltemi: upstream"), "{got}");
    assert!(got.ends_with("$2\r\nva\r\n"), "{got}");
    drop(s);
    assert!(rig.envoy.is_running());
}

#[test]
fn redis_py_through_the_router() {
    let rig = start();
    let out = run_client(
        "redis_routes.py",
        &[&rig.port.to_string(), "a:py", "b:py", "py"],
        Duration::from_secs(20),
    )
    .expect("redis-py client");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert_eq!(v["get"], serde_json::json!(["py-a:py", "py-b:py", "py-py"]));
    assert_eq!(
        v["mget"],
        serde_json::json!(["py-a:py", "py-b:py", "py-py", null])
    );
    let pipeline: Vec<String> = (0..16)
        .map(|i| format!("py-{}", ["a:py", "b:py", "py"][i % 3]))
        .collect();
    assert_eq!(v["pipeline"], serde_json::json!(pipeline));
    assert!(v["keys"].as_str().unwrap().contains("not supported"), "{v}");
    assert_eq!(v["after_error"], true);
    assert!(v["resp3"].as_str().unwrap().contains("only RESP2"), "{v}");
    assert_eq!(
        (v["exists"].as_i64(), v["del"].as_i64()),
        (Some(3), Some(3))
    );
    // The keys were on their servers until the client deleted them.
    for s in [&rig.a, &rig.b, &rig.c] {
        assert_eq!(redis_cli(s.port(), &["DBSIZE"]).unwrap(), "0");
    }
    let log = rig.envoy.log();
    assert!(!log.contains("panic"), "{log}");
}
