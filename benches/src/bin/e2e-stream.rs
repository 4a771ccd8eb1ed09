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
//! The load generator (`meltemi_benches::driver`, shared with the other harness) replays one captured request frame (`filters/codec/testdata/`), rewriting
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

use meltemi_benches::driver::{self, Responder, Timing, Window};
use meltemi_benches::e2e::{free_listen_port, loadavg, median, online_cpus};
use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{workspace_root, Envoy, EnvoyOptions};
use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::Duration;

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

/// The frames and rules the shared driver and responder replay.
impl driver::Wire for Wire {
    fn frames(&self) -> (&[u8], &[u8]) {
        (&self.request, &self.response)
    }

    fn frame_len(&self, b: &[u8]) -> Option<usize> {
        frame_len(b)
    }

    fn read_id(&self, f: &[u8], request: bool) -> Option<u64> {
        read_id(self, f, request).map(u64::from)
    }

    fn write_id(&self, f: &mut [u8], id: u64, request: bool) {
        write_id(self, f, id as u32, request)
    }

    fn is_ok(&self, f: &[u8]) -> bool {
        is_ok(self, f)
    }

    fn hello(&self) -> Option<(&[u8], &[u8])> {
        self.hello.as_ref().map(|(c, s)| (&c[..], &s[..]))
    }

    /// Ids start at 1 and stay positive (ZooKeeper's negative xids are pings, auth and watch
    /// events).
    fn max_id(&self) -> u64 {
        i32::MAX as u64
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    window: Window,
    /// Requests the observing filter counted (native: its request counter) during the run.
    decoded: u64,
    /// Request + response decode errors the observing filter counted during the run.
    decode_errors: u64,
    /// Responses the observing filter could not match to a request during the run.
    unmatched: u64,
}

impl std::ops::Deref for Sample {
    type Target = Window;

    fn deref(&self) -> &Window {
        &self.window
    }
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
    let served0 = backend.served();
    let counts0 = filter_counts(setup, w, &envoy.stats());
    let (window, ()) = driver::measure(w, port, (conns, depth), t, envoy.pid(), || ());
    let window = window?;
    // The last answers are in flight through the filter: let its counters catch up, then read
    // them. The client connections are closed when the driver returns.
    let served = backend.served() - served0;
    let mut counts1 = filter_counts(setup, w, &envoy.stats());
    for _ in 0..20 {
        if setup.observes() && counts1.0 - counts0.0 < served {
            thread::sleep(Duration::from_millis(100));
            counts1 = filter_counts(setup, w, &envoy.stats());
        } else {
            break;
        }
    }
    Ok(Sample {
        window,
        decoded: counts1.0 - counts0.0,
        decode_errors: counts1.1 - counts0.1,
        unmatched: counts1.2 - counts0.2,
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

    fn uses_wasm(self) -> bool {
        matches!(self, Setup::ObserveWasm | Setup::BytesWasm)
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
    meltemi_benches::e2e::require(
        "e2e-stream",
        setups.iter().any(|s| s.uses_module()),
        setups.iter().any(|s| s.uses_wasm()),
        &[],
    );
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
