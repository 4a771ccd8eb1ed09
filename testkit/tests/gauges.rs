//! Issue 20, item 3: every gauge a filter defines comes back to zero after each kind of close,
//! in both artifacts, through the real Envoy 1.40, checked against Envoy's own connection stats.
//!
//! Four kinds of close, `N` connections each, one after another:
//! 1. the client closes after its answer;
//! 2. the server closes with a request in flight (it is counted as unanswered);
//! 3. the client sends bytes that are not RESP: the filter closes the connection;
//! 4. the server answers bytes that are not RESP: the filter closes the connection and the request
//!    in flight is counted as unanswered.
//!
//! The upstream is a scripted RESP peer (a real TCP server on 127.0.0.1 in this process) that
//! does what the key of each `GET` asks: `ok` is answered, `hangup` closes, `garbage` answers
//! broken RESP and then waits for Envoy to close. A drift of one per close shows as `N` after a
//! phase, so a leak is unmistakable.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{free_port, wait_for, Envoy, EnvoyOptions};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections per kind of close.
const N: u64 = 100;
const CLUSTER: &str = "up";
const BROKEN: &[u8] = b"*2\r\nxx\r\n";

fn get(key: &str) -> Vec<u8> {
    format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).into_bytes()
}

/// The scripted upstream; stops (and joins) on drop.
struct Scripted {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Scripted {
    fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let accept = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        std::thread::spawn(move || serve(s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        });
        Scripted {
            port,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One upstream connection: acts on each complete `GET` (the client writes it in one piece).
fn serve(mut s: TcpStream) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut held = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        held.extend_from_slice(&buf[..n]);
        if held.ends_with(b"\r\nok\r\n") {
            held.clear();
            if s.write_all(b"$2\r\nok\r\n").is_err() {
                return;
            }
        } else if held.ends_with(b"\r\nhangup\r\n") {
            return;
        } else if held.ends_with(b"\r\ngarbage\r\n") {
            held.clear();
            // Then keep reading: only Envoy closes this connection.
            if s.write_all(BROKEN).is_err() {
                return;
            }
        }
    }
}

/// Writes `data` on a fresh connection to Envoy; reads `want` bytes and closes (`Some`), or
/// reads until Envoy closes (`None`). Returns what was read.
fn client(port: u16, data: &[u8], want: Option<usize>) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Envoy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(data).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if want.is_some_and(|w| out.len() >= w) {
            return out;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no close from Envoy within 10 s (read {out:?}): {e}"),
        }
    }
    assert!(want.is_none(), "Envoy closed early, read {out:?}");
    out
}

/// Values of `/stats?type=Gauges` whose names start with `prefix`.
fn gauges(envoy: &Envoy, prefix: &str) -> BTreeMap<String, u64> {
    envoy
        .admin("/stats?type=Gauges")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            if !k.starts_with(prefix) {
                return None;
            }
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn run(filter: Filter, host: &str) {
    let peer = Scripted::start();
    let listen = free_port();
    let yaml = bootstrap(
        listen,
        &[filter, Filter::TcpProxy(CLUSTER.into())],
        &[(CLUSTER, peer.port)],
    );
    let mut opts = EnvoyOptions::new(yaml).with_dynamic_module();
    opts.log_level = "warning".into();
    let envoy = Envoy::start_with(opts).expect("envoy");
    let ours = format!("{host}.redis.g.");
    let stat = |s: &str| envoy.stat(&format!("{ours}{s}")).unwrap_or(0);
    let listener = format!("listener.127.0.0.1_{listen}.");

    let kinds: [(&str, Vec<u8>, Option<usize>); 4] = [
        ("client closes", get("ok"), Some(8)),
        ("server closes", get("hangup"), None),
        ("client sends garbage", BROKEN.to_vec(), None),
        ("server sends garbage", get("garbage"), None),
    ];
    let mut report = Vec::new();
    for (phase, (what, data, want)) in kinds.iter().enumerate() {
        for _ in 0..N {
            let got = client(listen, data, *want);
            if want.is_some() {
                assert_eq!(got, b"$2\r\nok\r\n", "{what}");
            }
        }
        let done = N * (phase as u64 + 1);
        // Envoy's own view first: every connection of the phase is gone on both sides.
        let envoy_idle = wait_for(Duration::from_secs(10), || {
            (envoy.stat(&format!("{listener}downstream_cx_active")) == Some(0)
                && envoy.stat(&format!("cluster.{CLUSTER}.upstream_cx_active")) == Some(0)
                && envoy.stat(&format!("{listener}downstream_cx_total")) == Some(done))
            .then_some(())
        });
        assert!(envoy_idle.is_some(), "{what}: Envoy still has connections");
        // The `.wasm` flushes its counters in batches: wait for the phase's totals.
        envoy.wait_stat_at_least(&format!("{ours}cx_total"), done, Duration::from_secs(10));
        let settled = wait_for(Duration::from_secs(10), || {
            let g = gauges(&envoy, &ours);
            g.values().all(|v| *v == 0).then_some(g)
        });
        let g = gauges(&envoy, &ours);
        report.push(format!("{host} after {done} closes ({what}): {g:?}"));
        eprintln!("{}", report.last().unwrap());
        assert!(
            g.contains_key(&format!("{ours}cx_active"))
                && g.contains_key(&format!("{ours}request_active")),
            "the filter's gauges are listed: {g:?}"
        );
        assert!(
            settled.is_some(),
            "{what}: every gauge back to 0 once Envoy has no connection ({done} closes): {g:?}"
        );
        assert_eq!(stat("cx_total"), done, "{what}");
        assert_eq!(
            stat("cx_total"),
            envoy
                .stat(&format!("tcp.{CLUSTER}.downstream_cx_total"))
                .unwrap(),
            "{what}: one filter connection per tcp_proxy connection"
        );
    }
    // What each kind counted (N each).
    assert_eq!(stat("request"), 3 * N);
    assert_eq!(stat("response_success"), N);
    assert_eq!(stat("request_decoding_error"), N);
    assert_eq!(stat("response_decoding_error"), N);
    assert_eq!(
        stat("request_no_reply"),
        2 * N,
        "hung up on and answered with garbage: unanswered"
    );
    assert_eq!(stat("command.get.total"), 3 * N);
    assert_eq!(stat("command.get.success"), N);
}

#[test]
fn so_gauges_return_to_zero_after_every_kind_of_close() {
    run(
        Filter::Module(r#"{"protocol":"redis","stat_prefix":"g"}"#.into()),
        "dynamicmodulescustom",
    );
}

#[test]
fn wasm_gauges_return_to_zero_after_every_kind_of_close() {
    run(
        Filter::Wasm(r#"{"protocol":"redis","stat_prefix":"g"}"#.into()),
        "wasmcustom",
    );
}
