//! Issue 20, items 1 and 2, through the real Envoy 1.40 in front of a real redis-server: what
//! one hostile client can make the filters hold is bounded by configuration.
//!
//! - Stalled max-size frames: connections that each send all but the last 200 bytes of an 8 MiB
//!   `SET` (or Thrift call) and then stall. Before the fix both artifacts copied every unfinished frame (the `.so`'s Envoy
//!   grew by the bytes in flight; the `.wasm`'s VM ran out of memory and died for good). Now a
//!   frame bigger than `maxHeldBytes` is observed from its head and passes uncopied: Envoy's RSS
//!   grows about as much as with a plain `tcp_proxy` (measured in the same test), and a
//!   well-behaved client on another connection is answered and counted throughout.
//! - The worker's budget: frames smaller than `maxHeldBytes` are held whole while they are
//!   unfinished; with `workerHeldBudgetBytes` set low, the connection that would go past it is
//!   closed and counted (`cx_buffer_overflow`), `held_bytes` never exceeds the budget by more
//!   than one connection's share, and returns to 0 when the connections go.
//! - The `.wasm` after a trap (a panic forced by the test-only `panic_on`): with
//!   `failure_policy: FAIL_RELOAD` (what the project renders) the VM is reloaded and new
//!   connections are observed again.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, redis_cli, wait_for, Envoy, RedisServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    TcpProxy,
    Module,
    Wasm,
}

fn start(setup: Setup, redis: &RedisServer, json: &str) -> (Envoy, u16) {
    let listen = free_port();
    let mut filters = Vec::new();
    match setup {
        Setup::TcpProxy => {}
        Setup::Module => filters.push(Filter::Module(json.into())),
        Setup::Wasm => filters.push(Filter::Wasm(json.into())),
    }
    filters.push(Filter::TcpProxy("redis".into()));
    let yaml = bootstrap(listen, &filters, &[("redis", redis.port())]);
    let envoy = Envoy::start(&yaml, &[]).expect("envoy");
    (envoy, listen)
}

fn stat_name(setup: Setup, prefix: &str, s: &str) -> String {
    match setup {
        Setup::Module => format!("dynamicmodulescustom.redis.{prefix}.{s}"),
        _ => format!("wasmcustom.redis.{prefix}.{s}"),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A well-behaved client: SET then GET of its own key, on a new connection.
fn good_client(listen: u16, i: usize) {
    let key = format!("good-{i}");
    assert_eq!(
        redis_cli(listen, &["SET", &key, "v"]).unwrap(),
        "OK",
        "round {i}"
    );
    assert_eq!(redis_cli(listen, &["GET", &key]).unwrap(), "v", "round {i}");
}

/// The value of the stalled SET: the frame just under `maxFrameBytes` (8 MiB).
const FRAME: usize = (8 << 20) - 64;
const SENT: usize = (8 << 20) - 200;

/// Opens `n` connections that each send the first `SENT` bytes of a `FRAME`-byte SET and stall;
/// returns them (open) once Envoy has seen every byte.
fn stall(envoy: &Envoy, listen: u16, n: usize, good: &mut usize) -> Vec<TcpStream> {
    let head = format!("*3\r\n$3\r\nSET\r\n$5\r\nstall\r\n${FRAME}\r\n");
    let mut body = head.into_bytes();
    body.resize(SENT, b'x');
    let mut conns = Vec::new();
    for i in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        if let Err(e) = c.write_all(&body) {
            let log = envoy.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!("connection {i}: {e}; Envoy log: {tail:#?}");
        }
        conns.push(c);
        if i % 10 == 9 {
            good_client(listen, *good);
            *good += 1;
        }
    }
    // Every byte through Envoy to the server (tcp_proxy's own counter).
    let want = (n * SENT) as u64;
    let seen = envoy.wait_stat_at_least(
        "tcp.redis.downstream_cx_rx_bytes_total",
        want,
        Duration::from_secs(60),
    );
    assert!(
        seen.is_some_and(|b| b >= want),
        "bytes through Envoy: {seen:?} < {want}"
    );
    conns
}

/// Stalls `n` connections against `setup` and returns Envoy's RSS growth (KiB).
fn stalled_growth(setup: Setup, n: usize) -> u64 {
    let redis = RedisServer::start().expect("redis-server");
    let json = r#"{"protocol":"redis","statPrefix":"mem","maxFrameBytes":8388608}"#;
    let (mut envoy, listen) = start(setup, &redis, json);
    let mut good = 0;
    good_client(listen, good);
    good += 1;
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(envoy.pid());
    let conns = stall(&envoy, listen, n, &mut good);
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(envoy.pid());
    // Still serving, and counting, while the stalled frames are open.
    good_client(listen, good);
    good += 1;
    assert!(envoy.is_running(), "{setup:?}: Envoy exited");
    if setup != Setup::TcpProxy && std::env::var_os("RSS_ONLY").is_none() {
        let name = |s: &str| stat_name(setup, "mem", s);
        let ok = wait_for(Duration::from_secs(3), || {
            (envoy.stat(&name("command.get.success")) == Some(good as u64)).then_some(())
        });
        assert!(
            ok.is_some(),
            "{setup:?}: GETs counted {:?} of {good}",
            envoy.stat(&name("command.get.success"))
        );
        assert_eq!(envoy.stat(&name("request_decoding_error")), Some(0));
        assert_eq!(envoy.stat(&name("cx_buffer_overflow")), Some(0));
        // Every stalled SET is counted from its head (in flight: no reply yet).
        assert_eq!(
            envoy.stat(&name("command.set.total")),
            Some((good + n) as u64),
            "{setup:?}"
        );
        assert!(envoy.stat(&name("held_bytes")).unwrap_or(0) < (n as u64) * 1024);
    }
    drop(conns);
    after.saturating_sub(before)
}

#[test]
fn stalled_max_size_frames_cost_what_tcp_proxy_costs() {
    // `MEM_CONNS` runs it at another scale by hand (the issue's 125 took the old `.wasm` down).
    let n = std::env::var("MEM_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let base = stalled_growth(Setup::TcpProxy, n);
    for setup in [Setup::Module, Setup::Wasm] {
        if std::env::var("MEM_SETUP").is_ok_and(|s| s != format!("{setup:?}")) {
            continue;
        }
        let grew = stalled_growth(setup, n);
        eprintln!(
            "{n} stalled 8 MiB Redis frames ({} KiB sent each): Envoy RSS +{grew} KiB with {setup:?}, +{base} KiB with tcp_proxy alone",
            SENT >> 10
        );
        // Before the fix: + n x 4 MiB (240 MiB). The filters may add their own small state.
        assert!(
            grew <= base + 32 * 1024,
            "{setup:?}: RSS grew {grew} KiB, tcp_proxy {base} KiB"
        );
    }
}

/// A framed strict-binary Thrift call `add(a, b)` with seq id `seq`; the reply's i32.
fn thrift_add(listen: u16, a: i32, b: i32, seq: i32) -> i32 {
    let mut m = vec![0x80, 0x01, 0x00, 0x01];
    m.extend(3u32.to_be_bytes());
    m.extend(b"add");
    m.extend(seq.to_be_bytes());
    for (id, v) in [(1i16, a), (2i16, b)] {
        m.push(8);
        m.extend(id.to_be_bytes());
        m.extend(v.to_be_bytes());
    }
    m.push(0);
    let mut f = (m.len() as u32).to_be_bytes().to_vec();
    f.extend(m);
    let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&f).unwrap();
    let mut len = [0u8; 4];
    c.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    c.read_exact(&mut reply).unwrap();
    // ... the result struct: field 0 (i32) and its STOP: the value is the 4 bytes before it.
    let n = reply.len();
    i32::from_be_bytes([reply[n - 5], reply[n - 4], reply[n - 3], reply[n - 2]])
}

/// As [`stalled_growth`], with Thrift: framed calls of `FRAME` bytes cut after `SENT`, in front
/// of the real Apache Thrift server; Envoy's RSS growth (KiB).
fn stalled_thrift_growth(setup: Setup, n: usize) -> u64 {
    let server = meltemi_testkit::ThriftServer::start().expect("thrift server");
    let listen = free_port();
    let mut filters = Vec::new();
    let json =
        r#"{"protocol":"thrift","statPrefix":"mem","maxFrameBytes":8388608,"methods":["add"]}"#;
    match setup {
        Setup::TcpProxy => {}
        Setup::Module => filters.push(Filter::Module(json.into())),
        Setup::Wasm => filters.push(Filter::Wasm(json.into())),
    }
    filters.push(Filter::TcpProxy("thrift".into()));
    let yaml = bootstrap(listen, &filters, &[("thrift", server.port())]);
    let mut envoy = Envoy::start(&yaml, &[]).expect("envoy");
    assert_eq!(thrift_add(listen, 2, 3, 1), 5);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(envoy.pid());
    // A call `add` whose frame says FRAME bytes: its string argument fills it.
    let mut m = vec![0x80, 0x01, 0x00, 0x01];
    m.extend(3u32.to_be_bytes());
    m.extend(b"add");
    m.extend(9i32.to_be_bytes());
    m.push(11);
    m.extend(1i16.to_be_bytes());
    let arg = FRAME - 4 - m.len() - 4 - 1;
    m.extend((arg as u32).to_be_bytes());
    let mut body = ((FRAME - 4) as u32).to_be_bytes().to_vec();
    body.extend(m);
    body.resize(SENT, b'x');
    let mut conns = Vec::new();
    for i in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(&body).unwrap();
        conns.push(c);
        if i % 10 == 9 {
            assert_eq!(thrift_add(listen, i as i32, 1, 2), i as i32 + 1);
        }
    }
    let want = (n * SENT) as u64;
    let seen = envoy.wait_stat_at_least(
        "tcp.thrift.downstream_cx_rx_bytes_total",
        want,
        Duration::from_secs(60),
    );
    assert!(
        seen.is_some_and(|b| b >= want),
        "bytes through Envoy: {seen:?} < {want}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(envoy.pid());
    assert_eq!(thrift_add(listen, 40, 2, 3), 42);
    assert!(envoy.is_running(), "{setup:?}: Envoy exited");
    if setup != Setup::TcpProxy && std::env::var_os("RSS_ONLY").is_none() {
        let name = |s: &str| match setup {
            Setup::Module => format!("dynamicmodulescustom.thrift.mem.{s}"),
            _ => format!("wasmcustom.thrift.mem.{s}"),
        };
        // Every call counted, the stalled ones from their head (no reply yet).
        let calls = (n / 10 + 2 + n) as u64;
        let ok = wait_for(Duration::from_secs(3), || {
            (envoy.stat(&name("method.add.total")) == Some(calls)).then_some(())
        });
        assert!(
            ok.is_some(),
            "{setup:?}: add calls {:?} of {calls}",
            envoy.stat(&name("method.add.total"))
        );
        assert_eq!(envoy.stat(&name("request_decoding_error")), Some(0));
        assert_eq!(envoy.stat(&name("request_active")), Some(n as u64));
    }
    drop(conns);
    after.saturating_sub(before)
}

#[test]
fn stalled_max_size_thrift_frames_cost_what_tcp_proxy_costs() {
    let n = 60;
    let base = stalled_thrift_growth(Setup::TcpProxy, n);
    for setup in [Setup::Module, Setup::Wasm] {
        let grew = stalled_thrift_growth(setup, n);
        eprintln!(
            "{n} stalled 8 MiB Thrift frames ({} KiB sent each): Envoy RSS +{grew} KiB with {setup:?}, +{base} KiB with tcp_proxy alone",
            SENT >> 10
        );
        assert!(
            grew <= base + 32 * 1024,
            "{setup:?}: RSS grew {grew} KiB, tcp_proxy {base} KiB"
        );
    }
}

#[test]
fn the_worker_budget_closes_the_connection_that_goes_past_it() {
    for setup in [Setup::Module, Setup::Wasm] {
        let redis = RedisServer::start().expect("redis-server");
        let json = r#"{"protocol":"redis","statPrefix":"budget","workerHeldBudgetBytes":1048576}"#;
        let (mut envoy, listen) = start(setup, &redis, json);
        let name = |s: &str| stat_name(setup, "budget", s);
        // 50 KiB SETs cut after 40 KiB: smaller than maxHeldBytes (64 KiB), so each is held
        // whole while it is unfinished; 1 MiB holds 25 of them.
        let mut body = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$51200\r\n".to_vec();
        body.resize(40 << 10, b'y');
        let mut conns = Vec::new();
        for i in 0..40 {
            let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
            c.write_all(&body).unwrap();
            conns.push(c);
            // Let the filter see it before the next one.
            wait_for(Duration::from_secs(2), || {
                let total = envoy.stat(&name("cx_total")).unwrap_or(0);
                (total > i as u64).then_some(())
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        let closed = wait_for(Duration::from_secs(5), || {
            envoy.stat(&name("cx_buffer_overflow")).filter(|n| *n >= 10)
        });
        assert!(
            closed.is_some(),
            "{setup:?}: overflow closes {:?}",
            envoy.stat(&name("cx_buffer_overflow"))
        );
        let held = envoy.stat(&name("held_bytes")).unwrap_or(u64::MAX);
        assert!(
            held <= (1 << 20) + (64 << 10),
            "{setup:?}: held {held} bytes, budget 1 MiB"
        );
        // The closed ones see EOF; a new well-behaved client is served and counted.
        let mut eof = 0;
        for c in &mut conns {
            c.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut b = [0u8; 16];
            if matches!(c.read(&mut b), Ok(0)) {
                eof += 1;
            }
        }
        assert_eq!(
            Some(eof),
            envoy.stat(&name("cx_buffer_overflow")),
            "{setup:?}"
        );
        good_client(listen, 0);
        drop(conns);
        let zero = wait_for(Duration::from_secs(5), || {
            (envoy.stat(&name("held_bytes")) == Some(0)
                && envoy.stat(&name("cx_active")) == Some(0))
            .then_some(())
        });
        assert!(
            zero.is_some(),
            "{setup:?}: held_bytes {:?}, cx_active {:?} after the connections closed",
            envoy.stat(&name("held_bytes")),
            envoy.stat(&name("cx_active"))
        );
        assert!(envoy.is_running());
    }
}

#[test]
fn a_trapped_wasm_vm_is_reloaded_and_serves_new_connections() {
    let redis = RedisServer::start().expect("redis-server");
    let json = r#"{"protocol":"redis","statPrefix":"reload","panic_on":"meltemi-trap"}"#;
    let (envoy, listen) = start(Setup::Wasm, &redis, json);
    let name = |s: &str| stat_name(Setup::Wasm, "reload", s);
    good_client(listen, 0);
    // The marker makes the session panic: in wasm a panic traps the VM.
    let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    c.write_all(b"*2\r\n$4\r\nECHO\r\n$12\r\nmeltemi-trap\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 64];
    let _ = c.read(&mut b);
    assert!(
        wait_for(Duration::from_secs(3), || envoy
            .log()
            .contains("panic_on marker")
            .then_some(()))
        .is_some(),
        "the VM trapped: {}",
        envoy.log()
    );
    // New connections after the reload back-off are observed again (a reloaded VM starts its
    // own sums: count what it sees from here on).
    let served = wait_for(Duration::from_secs(10), || {
        let before = envoy.stat(&name("command.get.success")).unwrap_or(0);
        let ok = redis_cli(listen, &["GET", "good-0"]).ok()? == "v";
        let after = wait_for(Duration::from_secs(1), || {
            envoy
                .stat(&name("command.get.success"))
                .filter(|n| *n > before)
        });
        (ok && after.is_some()).then_some(())
    });
    assert!(
        served.is_some(),
        "no connection observed after the trap: {}",
        envoy.log()
    );
}

/// The `.so`'s routing holds a partial request (it routes whole frames): that counts against
/// the worker's budget too, and the connection past it is closed while the others are served.
#[test]
fn a_routed_connection_past_the_budget_is_closed() {
    let server = meltemi_testkit::ThriftServer::start().expect("thrift server");
    let listen = free_port();
    let json = r#"{"protocol":"thrift","statPrefix":"routed","workerHeldBudgetBytes":262144,"routing":{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"all","route":{"cluster":"v1"}}]}]}}"#;
    let filters = [Filter::Module(json.into()), Filter::TcpProxy("v1".into())];
    let yaml = bootstrap(listen, &filters, &[("v1", server.port())]);
    let mut envoy = Envoy::start(&yaml, &[]).expect("envoy");
    let name = |s: &str| format!("dynamicmodulescustom.thrift.routed.{s}");
    assert_eq!(thrift_add(listen, 1, 2, 1), 3);
    // A 1 MiB call cut after 300 KiB: the router holds it until it is whole.
    let mut m = vec![0x80, 0x01, 0x00, 0x01];
    m.extend(3u32.to_be_bytes());
    m.extend(b"add");
    m.extend(9i32.to_be_bytes());
    let mut body = ((1u32 << 20) - 4).to_be_bytes().to_vec();
    body.extend(m);
    body.resize(300 << 10, 0);
    let mut big = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    big.write_all(&body).unwrap();
    let closed = wait_for(Duration::from_secs(5), || {
        envoy.stat(&name("cx_buffer_overflow")).filter(|n| *n == 1)
    });
    assert!(
        closed.is_some(),
        "overflow: {:?}, held {:?}",
        envoy.stat(&name("cx_buffer_overflow")),
        envoy.stat(&name("held_bytes"))
    );
    big.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 8];
    assert!(
        matches!(big.read(&mut b), Ok(0) | Err(_)),
        "the connection is closed"
    );
    assert_eq!(thrift_add(listen, 20, 22, 2), 42, "the others are served");
    let zero = wait_for(Duration::from_secs(5), || {
        (envoy.stat(&name("held_bytes")) == Some(0)).then_some(())
    });
    assert!(
        zero.is_some(),
        "held_bytes {:?}",
        envoy.stat(&name("held_bytes"))
    );
    assert!(envoy.is_running());
}
