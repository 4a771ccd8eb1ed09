//! End-to-end harness for Kafka and ZooKeeper through the real Envoy 1.40 with one worker, in one
//! run on this machine (issue 4, Performance). Same shape as `e2e-rpc` (Thrift, Dubbo). Set-ups:
//! - plain `tcp_proxy` (the ceiling);
//! - Envoy's native decode-only filter before `tcp_proxy`: `zookeeper_proxy` for ZooKeeper.
//!   Kafka has no native row: this Envoy build has no `kafka_broker` proto (contrib), so there is
//!   nothing to compare with;
//! - Meltemi's `.so` and `.wasm` observing before `tcp_proxy`;
//! - diagnosis rows: the `.so` and the `.wasm` with `"protocol":"tcp"` (bytes counted, nothing
//!   decoded), the cost of the filter hooks alone.
//!
//! Envoy is pinned to CPU 0; this process (load generator and responder, std threads) to CPU 1.
//! The load generator replays one captured request frame (`filters/codec/testdata/`), rewriting
//! the Kafka correlation id / ZooKeeper xid per request, and matches answers by id. The responder
//! answers each request with one captured response frame carrying the request's id:
//! - Kafka: Metadata v12 request / response of `kafka-python.frames` connection 0 (request
//!   header v2, response header v1: the api key/version of the pair stay consistent);
//! - ZooKeeper: each connection starts with the captured ConnectRequest / ConnectResponse of
//!   `conn1`, then `getData /meltemi/node` (xid 6 in the capture) and its reply, xid rewritten.
//!
//! After each run the harness reads Envoy's stats and reports, per set-up, the requests our
//! filter (or the native one) decoded and its decode errors, so a row whose filter gave up on the
//! stream (passthrough after a decode error) shows it.
//!
//! Usage (after `scripts/build-artifacts.sh`):
//! `cargo run --release -p meltemi-benches --bin e2e-stream -- [--quick] [--rounds N] [--secs S]
//! [--only kafka|zookeeper] [--setups 0,2,..] [--shapes 1x16,16x1]`. Not a test: it measures.

use meltemi_benches::e2e::{
    cpu0_jiffies, envoy_cpu_ns, free_listen_port, loadavg, median, online_cpus,
};
use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{workspace_root, Envoy, EnvoyOptions};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Kafka,
    ZooKeeper,
}

/// The replayed frames of one protocol.
#[derive(Debug, Clone)]
struct Wire {
    proto: Proto,
    /// ZooKeeper: the ConnectRequest / ConnectResponse that open every connection.
    hello: Option<(Vec<u8>, Vec<u8>)>,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The whole frames (4-byte size prefix) of a byte stream.
fn frames(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(n) = frame_len(b) {
        out.push(b[..n].to_vec());
        b = &b[n..];
    }
    out
}

impl Wire {
    fn load(proto: Proto) -> Wire {
        let dir = workspace_root().join("filters/codec/testdata");
        let read = |p: &str| std::fs::read(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        match proto {
            Proto::Kafka => {
                let text = String::from_utf8(read("kafka/kafka-python.frames")).expect("utf-8");
                // `<conn> <dir> <hex> # <fields>`
                let lines: Vec<(&str, &str, &str, &str)> = text
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| {
                        let (head, fields) = l.split_once(" # ")?;
                        let mut it = head.split_whitespace();
                        Some((it.next()?, it.next()?, it.next()?, fields))
                    })
                    .collect();
                let (conn, _, req, fields) = *lines
                    .iter()
                    .find(|(_, d, _, f)| *d == ">" && f.starts_with("key=3 v=12 "))
                    .expect("a Metadata v12 request");
                let corr = fields
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("corr="))
                    .expect("corr");
                let (_, _, resp, _) = *lines
                    .iter()
                    .find(|(c, d, _, f)| {
                        *c == conn && *d == "<" && f.starts_with(&format!("corr={corr} "))
                    })
                    .expect("its response");
                Wire {
                    proto,
                    hello: None,
                    request: unhex(req),
                    response: unhex(resp),
                }
            }
            Proto::ZooKeeper => {
                let c2s = frames(&read("zookeeper/conn1.c2s.bin"));
                let s2c = frames(&read("zookeeper/conn1.s2c.bin"));
                let xid6 = |fs: &[Vec<u8>]| {
                    fs.iter()
                        .skip(1)
                        .find(|f| f[4..8] == 6i32.to_be_bytes())
                        .expect("xid 6")
                        .clone()
                };
                let request = xid6(&c2s);
                assert_eq!(request[8..12], 4i32.to_be_bytes(), "xid 6 is getData");
                Wire {
                    proto,
                    hello: Some((c2s[0].clone(), s2c[0].clone())),
                    request,
                    response: xid6(&s2c),
                }
            }
        }
    }

    fn name(&self) -> &'static str {
        match self.proto {
            Proto::Kafka => "kafka",
            Proto::ZooKeeper => "zookeeper",
        }
    }

    /// Where the id sits: Kafka request `size | key | version | correlation id`, response
    /// `size | correlation id`; ZooKeeper `len | xid` both ways.
    fn id_at(&self, request: bool) -> usize {
        match (self.proto, request) {
            (Proto::Kafka, true) => 8,
            _ => 4,
        }
    }
}

/// Length of the whole frame at the start of `b`, if `b` holds it (both protocols: a 4-byte
/// big-endian size prefix).
fn frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 4 {
        return None;
    }
    let n = 4 + u32::from_be_bytes(b[..4].try_into().ok()?) as usize;
    (b.len() >= n).then_some(n)
}

fn read_id(w: &Wire, f: &[u8], request: bool) -> Option<u32> {
    let at = w.id_at(request);
    Some(u32::from_be_bytes(f.get(at..at + 4)?.try_into().ok()?))
}

fn write_id(w: &Wire, f: &mut [u8], id: u32, request: bool) {
    let at = w.id_at(request);
    f[at..at + 4].copy_from_slice(&id.to_be_bytes());
}

/// A success answer: ZooKeeper reply header error 0 (Kafka: the captured Metadata response has
/// no top-level error code; every answer counts as a success).
fn is_ok(w: &Wire, f: &[u8]) -> bool {
    match w.proto {
        Proto::Kafka => true,
        Proto::ZooKeeper => f.get(16..20) == Some(&[0, 0, 0, 0][..]),
    }
}

// ---------------------------------------------------------------------------------------------
// Benchmark responder

/// A benchmark responder on 127.0.0.1: one thread per connection; answers the ZooKeeper
/// ConnectRequest with the captured ConnectResponse, and every other request frame with the
/// captured response frame carrying the request's id (a read's answers in one write).
#[derive(Debug)]
struct Responder {
    port: u16,
    served: Arc<AtomicU64>,
}

impl Responder {
    fn start(wire: &Wire) -> Responder {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        let served = Arc::new(AtomicU64::new(0));
        let (w, s) = (wire.clone(), served.clone());
        thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let (w, s) = (w.clone(), s.clone());
                thread::spawn(move || respond(conn, &w, &s));
            }
        });
        Responder { port, served }
    }
}

fn respond(mut c: TcpStream, w: &Wire, served: &AtomicU64) {
    let _ = c.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0usize;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut greeted = w.hello.is_none();
    loop {
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match c.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let mut at = 0;
        while let Some(n) = frame_len(&buf[at..have]) {
            let f = &buf[at..at + n];
            at += n;
            if !greeted {
                greeted = true;
                out.extend_from_slice(&w.hello.as_ref().unwrap().1);
                continue;
            }
            let Some(id) = read_id(w, f, true) else {
                continue;
            };
            let start = out.len();
            out.extend_from_slice(&w.response);
            write_id(w, &mut out[start..], id, false);
            served.fetch_add(1, Ordering::Relaxed);
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if !out.is_empty() {
            if c.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load generator

#[derive(Debug, Default)]
struct ConnResult {
    done: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    failure: Option<String>,
}

/// One client connection (ZooKeeper: after its ConnectRequest/Response) keeping `depth`
/// requests in flight until `t1`; records answers that arrive in `[t0, t1)`.
fn drive_conn(port: u16, w: &Wire, depth: usize, t0: Instant, t1: Instant) -> ConnResult {
    let mut r = ConnResult::default();
    let mut c = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(c) => c,
        Err(e) => {
            r.failure = Some(format!("connect: {e}"));
            return r;
        }
    };
    let _ = c.set_nodelay(true);
    let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
    // In flight: slot = id % SLOTS holds (id, sent at). Ids are consecutive and at most
    // `depth` are outstanding, so slots never collide. Ids start at 1 and stay positive
    // (ZooKeeper's negative xids are pings, auth and watch events).
    const SLOTS: usize = 1024;
    let mut pending: Vec<(u32, Option<Instant>)> = vec![(u32::MAX, None); SLOTS];
    let mut next_id: u32 = 1;
    let mut out = Vec::with_capacity(depth * w.request.len() + 64);
    let mut send = |out: &mut Vec<u8>, pending: &mut Vec<(u32, Option<Instant>)>, now| {
        let id = next_id;
        next_id = if next_id >= i32::MAX as u32 {
            1
        } else {
            next_id + 1
        };
        let start = out.len();
        out.extend_from_slice(&w.request);
        write_id(w, &mut out[start..], id, true);
        pending[id as usize % SLOTS] = (id, Some(now));
    };
    let mut awaiting_hello = false;
    if let Some((hello, _)) = &w.hello {
        out.extend_from_slice(hello);
        awaiting_hello = true;
    }
    let now = Instant::now();
    for _ in 0..depth {
        send(&mut out, &mut pending, now);
    }
    if let Err(e) = c.write_all(&out) {
        r.failure = Some(format!("write: {e}"));
        return r;
    }
    out.clear();
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0usize;
    loop {
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match c.read(&mut buf[have..]) {
            Ok(0) => {
                r.failure = Some("closed by Envoy".into());
                return r;
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                r.failure = Some(format!("read: {e}"));
                return r;
            }
        }
        let now = Instant::now();
        let mut at = 0;
        let mut answered = 0;
        while let Some(n) = frame_len(&buf[at..have]) {
            let f = &buf[at..at + n];
            at += n;
            if awaiting_hello {
                awaiting_hello = false; // the ConnectResponse
                continue;
            }
            let sent = read_id(w, f, false).and_then(|id| {
                let slot = &mut pending[id as usize % SLOTS];
                (slot.0 == id).then(|| {
                    slot.0 = u32::MAX;
                    slot.1.take()
                })?
            });
            let Some(sent) = sent else {
                r.failure = Some("answer with an unknown id".into());
                return r;
            };
            answered += 1;
            if now >= t0 && now < t1 {
                r.done += 1;
                if !is_ok(w, f) {
                    r.errors += 1;
                }
                r.latencies_us
                    .push(now.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
            }
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if now >= t1 {
            return r;
        }
        for _ in 0..answered {
            send(&mut out, &mut pending, now);
        }
        if !out.is_empty() {
            if let Err(e) = c.write_all(&out) {
                r.failure = Some(format!("write: {e}"));
                return r;
            }
            out.clear();
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    errors: u64,
    /// Requests the observing filter counted (native: its request counter) during the run.
    decoded: u64,
    /// Request + response decode errors the observing filter counted during the run.
    decode_errors: u64,
    /// Responses the observing filter could not match to a request during the run.
    unmatched: u64,
    /// Fraction of CPU 0 busy with something other than Envoy during the window.
    cpu0_other: f64,
}

#[derive(Clone, Copy, Debug)]
struct Timing {
    warm: Duration,
    measure: Duration,
}

/// Counters that tell whether the filter under test decoded the run: (decoded requests,
/// decode errors, unmatched responses), from Envoy's `/stats`.
fn filter_counts(setup: Setup, w: &Wire, stats: &BTreeMap<String, u64>) -> (u64, u64, u64) {
    let get = |k: String| stats.get(&k).copied().unwrap_or(0);
    let p = w.name();
    let ours = |host: &str| {
        let k = |s: &str| format!("{host}.{p}.bench.{s}");
        (
            get(k("request")),
            get(k("request_decoding_error")) + get(k("response_decoding_error")),
            get(k("response_unmatched")),
        )
    };
    match setup {
        Setup::ObserveSo => ours("dynamicmodulescustom"),
        Setup::ObserveWasm => ours("wasmcustom"),
        // zookeeper_proxy: `<stat_prefix>.zookeeper.*`; its requests = the getData counter (the
        // ConnectRequest is counted under `connect_rq`).
        Setup::Native => (
            get("bench.zookeeper.getdata_rq".into()),
            get("bench.zookeeper.decoder_error".into()),
            0,
        ),
        _ => (0, 0, 0),
    }
}

#[allow(clippy::too_many_arguments)]
fn drive(
    w: &Wire,
    port: u16,
    conns: usize,
    depth: usize,
    t: Timing,
    envoy: &Envoy,
    setup: Setup,
    backend: &Responder,
) -> Result<Sample, String> {
    let served0 = backend.served.load(Ordering::Relaxed);
    let counts0 = filter_counts(setup, w, &envoy.stats());
    let start = Instant::now();
    let t0 = start + t.warm;
    let t1 = t0 + t.measure;
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let w = w.clone();
            thread::spawn(move || drive_conn(port, &w, depth, t0, t1))
        })
        .collect();
    thread::sleep(t0.saturating_duration_since(Instant::now()));
    let (cpu_a, c0a) = (envoy_cpu_ns(envoy.pid()), cpu0_jiffies());
    thread::sleep(t1.saturating_duration_since(Instant::now()));
    let (cpu_b, c0b) = (envoy_cpu_ns(envoy.pid()), cpu0_jiffies());
    let results: Vec<ConnResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    if let Some(f) = results.iter().find_map(|r| r.failure.clone()) {
        return Err(f);
    }
    let done: u64 = results.iter().map(|r| r.done).sum();
    if done == 0 {
        return Err("no answers".into());
    }
    // The last answers are in flight through the filter: let its counters catch up, then read
    // them. The client connections are closed when `drive_conn` returns.
    let served = backend.served.load(Ordering::Relaxed) - served0;
    let mut counts1 = filter_counts(setup, w, &envoy.stats());
    for _ in 0..20 {
        if setup.observes() && counts1.0 - counts0.0 < served {
            thread::sleep(Duration::from_millis(100));
            counts1 = filter_counts(setup, w, &envoy.stats());
        } else {
            break;
        }
    }
    let mut lat: Vec<u32> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64;
    let envoy_jiffies = (cpu_b - cpu_a) as f64 / 1e7; // ns -> USER_HZ (100) ticks
    let cpu0_total = (c0b.1 - c0a.1).max(1) as f64;
    Ok(Sample {
        rps: done as f64 / t.measure.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_req: (cpu_b - cpu_a) as f64 / 1e3 / done as f64,
        errors: results.iter().map(|r| r.errors).sum(),
        decoded: counts1.0 - counts0.0,
        decode_errors: counts1.1 - counts0.1,
        unmatched: counts1.2 - counts0.2,
        cpu0_other: ((c0b.0 - c0a.0) as f64 - envoy_jiffies).max(0.0) / cpu0_total,
    })
}

// ---------------------------------------------------------------------------------------------
// Set-ups

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    TcpProxy,
    /// Envoy's native decode-only filter before `tcp_proxy` (ZooKeeper only).
    Native,
    ObserveSo,
    ObserveWasm,
    /// Diagnosis: the module with `"protocol":"tcp"` (counts bytes, decodes nothing).
    BytesSo,
    /// Diagnosis: the same in the `.wasm` filter.
    BytesWasm,
}

const SETUPS: [Setup; 6] = [
    Setup::TcpProxy,
    Setup::Native,
    Setup::ObserveSo,
    Setup::ObserveWasm,
    Setup::BytesSo,
    Setup::BytesWasm,
];

impl Setup {
    fn name(self, p: Proto) -> String {
        match (self, p) {
            (Setup::TcpProxy, _) => "tcp_proxy".into(),
            (Setup::Native, Proto::ZooKeeper) => "native zookeeper_proxy + tcp_proxy".into(),
            (Setup::Native, Proto::Kafka) => "native kafka_broker (not in this Envoy build)".into(),
            (Setup::ObserveSo, _) => "meltemi .so observe + tcp_proxy".into(),
            (Setup::ObserveWasm, _) => "meltemi .wasm observe + tcp_proxy".into(),
            (Setup::BytesSo, _) => "(diag) .so bytes only + tcp_proxy".into(),
            (Setup::BytesWasm, _) => "(diag) .wasm bytes only + tcp_proxy".into(),
        }
    }

    fn available(self, p: Proto) -> bool {
        !(self == Setup::Native && p == Proto::Kafka)
    }

    fn observes(self) -> bool {
        matches!(self, Setup::ObserveSo | Setup::ObserveWasm)
    }

    fn uses_module(self) -> bool {
        matches!(self, Setup::ObserveSo | Setup::BytesSo)
    }
}

const ZOOKEEPER_PROXY: &str = r#"      - name: envoy.filters.network.zookeeper_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.zookeeper_proxy.v3.ZooKeeperProxy
          stat_prefix: bench"#;

fn yaml(setup: Setup, w: &Wire, listen: u16, upstream: u16) -> String {
    let observe = format!(r#"{{"protocol":"{}","stat_prefix":"bench"}}"#, w.name());
    let bytes_only = r#"{"protocol":"tcp","stat_prefix":"bench"}"#.to_string();
    let tcp = Filter::TcpProxy("up".into());
    let chain = match setup {
        Setup::TcpProxy => vec![tcp],
        Setup::Native => vec![Filter::Yaml(ZOOKEEPER_PROXY.into()), tcp],
        Setup::ObserveSo => vec![Filter::Module(observe), tcp],
        Setup::ObserveWasm => vec![Filter::Wasm(observe), tcp],
        Setup::BytesSo => vec![Filter::Module(bytes_only), tcp],
        Setup::BytesWasm => vec![Filter::Wasm(bytes_only), tcp],
    };
    bootstrap(listen, &chain, &[("up", upstream)])
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rounds: usize = opt("--rounds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let secs: f64 = opt("--secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2.0 } else { 5.0 });
    let timing = Timing {
        warm: Duration::from_millis(if quick { 500 } else { 1000 }),
        measure: Duration::from_secs_f64(secs),
    };
    let protos: Vec<Proto> = match opt("--only").as_deref() {
        Some("kafka") => vec![Proto::Kafka],
        Some("zookeeper") => vec![Proto::ZooKeeper],
        _ => vec![Proto::Kafka, Proto::ZooKeeper],
    };
    let setups: Vec<Setup> = match opt("--setups") {
        Some(list) => SETUPS
            .iter()
            .enumerate()
            .filter(|(i, _)| list.split(',').any(|x| x == i.to_string()))
            .map(|(_, s)| *s)
            .collect(),
        None => SETUPS.to_vec(),
    };
    let shapes = meltemi_benches::e2e::shapes(opt("--shapes"));
    // This process (load generator and responder) on CPU 1; Envoy on CPU 0 (`taskset` execs it).
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .output();
    let load_before = loadavg();
    eprintln!("load average before: {load_before}");

    for proto in protos {
        let w = Wire::load(proto);
        eprintln!(
            "{}: request frame {} bytes, response frame {} bytes",
            w.name(),
            w.request.len(),
            w.response.len()
        );
        let up = Responder::start(&w);
        // samples[shape][setup] = per-round results.
        let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); setups.len()]; shapes.len()];
        let mut failures: Vec<String> = Vec::new();
        for round in 0..rounds {
            for (si, &setup) in setups.iter().enumerate() {
                if !setup.available(proto) {
                    continue;
                }
                let listen = free_listen_port();
                let mut o = EnvoyOptions::new(yaml(setup, &w, listen, up.port));
                o.cpu_list = Some("0".into());
                if setup.uses_module() {
                    o = o.with_dynamic_module();
                }
                let envoy = match Envoy::start_with(o) {
                    Ok(e) => e,
                    Err(e) => {
                        failures.push(format!("{}: envoy: {e}", setup.name(proto)));
                        continue;
                    }
                };
                for (k, &(conns, depth)) in shapes.iter().enumerate() {
                    match drive(&w, listen, conns, depth, timing, &envoy, setup, &up) {
                        Ok(s) => {
                            eprintln!(
                                "{} round {round} {conns}x{depth} {}: {:.0} req/s, {:.1} us CPU/req, errors {}, decoded {}, decode errors {}, unmatched {}, cpu0 other {:.2}",
                                w.name(),
                                setup.name(proto),
                                s.rps,
                                s.cpu_us_per_req,
                                s.errors,
                                s.decoded,
                                s.decode_errors,
                                s.unmatched,
                                s.cpu0_other
                            );
                            if setup.observes() && (s.decode_errors > 0 || s.decoded == 0) {
                                failures.push(format!(
                                    "{} {conns}x{depth} round {round}: the filter decoded {} requests with {} decode errors: not a valid measurement",
                                    setup.name(proto),
                                    s.decoded,
                                    s.decode_errors
                                ));
                            }
                            samples[k][si].push(s)
                        }
                        Err(e) => {
                            let msg = format!("{} {conns}x{depth}: {e}", setup.name(proto));
                            eprintln!("{}: {msg}", w.name());
                            failures.push(msg);
                        }
                    }
                }
            }
        }
        for (k, &(conns, depth)) in shapes.iter().enumerate() {
            print_table(&w, &setups, &samples[k], conns, depth, rounds, timing);
        }
        if !failures.is_empty() {
            println!("\nfailed or invalid runs ({}):", w.name());
            for f in &failures {
                println!("- {f}");
            }
        }
    }
    println!(
        "\nload average (1/5/15 min): before {load_before}, after {}; CPUs online: {}",
        loadavg(),
        online_cpus()
    );
}

fn print_table(
    w: &Wire,
    setups: &[Setup],
    samples: &[Vec<Sample>],
    conns: usize,
    depth: usize,
    rounds: usize,
    t: Timing,
) {
    let med = |i: usize, f: fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
    let idx = |s: Setup| setups.iter().position(|x| *x == s);
    let base = idx(Setup::TcpProxy);
    let base_rps = base.map_or(f64::NAN, |b| med(b, |s| s.rps));
    let base_cpu = base.map_or(f64::NAN, |b| med(b, |s| s.cpu_us_per_req));
    let native = idx(Setup::Native).filter(|&n| !samples[n].is_empty());
    println!(
        "\n{}: {conns} connection(s) x {depth} in flight, {:.1} s per run after {:.1} s warm-up, median of {rounds}; Envoy --concurrency 1 on CPU 0, load generator + responder on CPU 1",
        w.name(),
        t.measure.as_secs_f64(),
        t.warm.as_secs_f64()
    );
    println!("| set-up | req/s | x tcp_proxy | p50 us | p99 us | Envoy CPU us/req | CPU x tcp_proxy | x native req/s | x native CPU | filter decoded / decode errors / unmatched | answer errors | CPU0 other |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, s) in setups.iter().enumerate() {
        if !s.available(w.proto) {
            println!("| {} | n/a | | | | | | | | | | |", s.name(w.proto));
            continue;
        }
        if samples[i].is_empty() {
            println!("| {} | failed | | | | | | | | | | |", s.name(w.proto));
            continue;
        }
        let rps = med(i, |x| x.rps);
        let cpu = med(i, |x| x.cpu_us_per_req);
        let (xn_rps, xn_cpu) = match native {
            Some(n) if matches!(s, Setup::ObserveSo | Setup::ObserveWasm) => (
                format!("{:.2}", rps / med(n, |x| x.rps)),
                format!("{:.2}", cpu / med(n, |x| x.cpu_us_per_req)),
            ),
            _ => (String::new(), String::new()),
        };
        let decoded = if s.observes() || *s == Setup::Native {
            format!(
                "{} / {} / {}",
                med(i, |x| x.decoded as f64),
                samples[i]
                    .iter()
                    .map(|x| x.decode_errors)
                    .max()
                    .unwrap_or(0),
                samples[i].iter().map(|x| x.unmatched).max().unwrap_or(0)
            )
        } else {
            String::new()
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.1} | {:.2} | {} | {} | {} | {} | {:.0}% |",
            s.name(w.proto),
            rps,
            rps / base_rps,
            med(i, |x| x.p50_us),
            med(i, |x| x.p99_us),
            cpu,
            cpu / base_cpu,
            xn_rps,
            xn_cpu,
            decoded,
            samples[i].iter().map(|x| x.errors).max().unwrap_or(0),
            med(i, |x| x.cpu0_other) * 100.0
        );
    }
}
