//! End-to-end harness for Thrift (framed, strict binary) and Dubbo 2 (Hessian2) through the real
//! Envoy 1.40 with one worker, in one run on this machine (issues 4 and 5). Set-ups:
//! - plain `tcp_proxy` (the ceiling);
//! - Envoy's native `thrift_proxy` / `dubbo_proxy`, routing every request to `v1` (pinned) and
//!   with a 90/10 weighted split over `v1`/`v2`;
//! - Meltemi's `.so` and `.wasm` observing before `tcp_proxy` (issue 4);
//! - Meltemi's `.so` routing before `tcp_proxy` (issue 5): version-pinned (every request takes
//!   the primary fast path) and the 90/10 split (10% by detour: HTTP callout to a cluster whose
//!   upstream is the module's HTTP-to-TCP bridge);
//! - diagnosis rows: the `.so` and the `.wasm` with `"protocol":"tcp"` (bytes counted, nothing
//!   decoded) before `tcp_proxy`, the cost of the filter hooks alone.
//!
//! Envoy is pinned to CPU 0; this process (load generator and backends, std threads) to CPU 1.
//! The load generator (`meltemi_benches::driver`, shared with the other harness) replays one captured request frame (`filters/codec/testdata/`), rewriting
//! the Thrift seqid / Dubbo request id per request, and matches answers by id. The backends are
//! benchmark responders, not servers: for each request frame they answer one fixed captured
//! response frame carrying the request's id, so the server side is never the bottleneck
//! (correctness against real peers is proven by the e2e tests, not here).
//!
//! Traffic shapes: 1 connection x 16 requests in flight (a window: each answer sends the next
//! request), and 16 connections x 1 in flight. Each set-up runs once per round (a fresh Envoy),
//! set-ups interleaved; the tables give medians over rounds. Envoy CPU per request comes from
//! `/proc/<pid>/task/*/schedstat` over the measured window (warm-up excluded).
//!
//! Usage (after `scripts/build-artifacts.sh`):
//! `cargo run --release -p meltemi-benches --bin e2e-rpc -- [--quick] [--rounds N] [--secs S]
//! [--only thrift|dubbo] [--setups 0,3,..] [--shapes 1x16,16x1] [--perf DIR] [--baseline DIR]`. Not a test: it asserts
//! nothing, it measures. Rows 9-11 are built by `meltemi bootstrap` from
//! MetaRouter manifests (pinned, 90/10, method rule). `--baseline DIR` adds `(before)` rows (indices 12-14) running the
//! `libmeltemi.so` / `meltemi_wasm.wasm` found in DIR, for before/after in the same run.

use meltemi_benches::driver::{self, Responder, Timing, Window};
use meltemi_benches::e2e::{free_listen_port, loadavg, median, online_cpus};
use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{workspace_root, Envoy, EnvoyOptions};
use std::process::Command;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Thrift,
    Dubbo,
}

/// The replayed frames of one protocol and where their ids are.
#[derive(Debug, Clone)]
struct Wire {
    proto: Proto,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Wire {
    fn load(proto: Proto) -> Wire {
        let dir = workspace_root().join("filters/codec/testdata");
        let read = |p: &str| std::fs::read(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        match proto {
            // The first frame of each direction: `add` call seqid 1, `add` reply seqid 1.
            Proto::Thrift => {
                let first = |b: Vec<u8>| {
                    let n = frame_len(Proto::Thrift, &b).expect("whole frame");
                    b[..n].to_vec()
                };
                Wire {
                    proto,
                    request: first(read("thrift/binary-framed.c2s.bin")),
                    response: first(read("thrift/binary-framed.s2c.bin")),
                }
            }
            // `sayHello` of org.meltemi.demo.GreetingService 1.0.0 (group g1), VALUE reply.
            Proto::Dubbo => Wire {
                proto,
                request: read("dubbo/01_client_request_sayHello.bin"),
                response: read("dubbo/02_provider_response_sayHello.bin"),
            },
        }
    }

    fn name(&self) -> &'static str {
        match self.proto {
            Proto::Thrift => "thrift",
            Proto::Dubbo => "dubbo",
        }
    }
}

/// Length of the whole frame at the start of `b`, if `b` holds it (hand-framed: Thrift framed
/// transport = 4-byte length prefix; Dubbo = 16-byte header whose last 4 bytes are the body length).
fn frame_len(proto: Proto, b: &[u8]) -> Option<usize> {
    let (head, at) = match proto {
        Proto::Thrift => (4, 0),
        Proto::Dubbo => (16, 12),
    };
    if b.len() < head {
        return None;
    }
    let n = head + u32::from_be_bytes(b[at..at + 4].try_into().ok()?) as usize;
    (b.len() >= n).then_some(n)
}

/// Where the id sits in a whole frame: Thrift strict binary `len | version | name_len | name |
/// seqid` (i32); Dubbo header bytes 4..12 (u64).
fn id_range(proto: Proto, f: &[u8]) -> Option<std::ops::Range<usize>> {
    match proto {
        Proto::Thrift => {
            if f.len() < 12 || f[4] & 0x80 == 0 {
                return None; // not strict binary
            }
            let nl = u32::from_be_bytes(f[8..12].try_into().ok()?) as usize;
            let at = 12 + nl;
            (f.len() >= at + 4).then_some(at..at + 4)
        }
        Proto::Dubbo => (f.len() >= 16).then_some(4..12),
    }
}

fn read_id(proto: Proto, f: &[u8]) -> Option<u64> {
    let r = id_range(proto, f)?;
    Some(match proto {
        Proto::Thrift => u32::from_be_bytes(f[r].try_into().ok()?) as u64,
        Proto::Dubbo => u64::from_be_bytes(f[r].try_into().ok()?),
    })
}

fn write_id(proto: Proto, f: &mut [u8], id: u64) {
    let r = id_range(proto, f).expect("template frame has an id");
    match proto {
        Proto::Thrift => f[r].copy_from_slice(&(id as u32).to_be_bytes()),
        Proto::Dubbo => f[r].copy_from_slice(&id.to_be_bytes()),
    }
}

/// A success answer: Thrift message type REPLY (2), Dubbo status 20 OK.
fn is_ok(proto: Proto, f: &[u8]) -> bool {
    match proto {
        Proto::Thrift => f.get(7) == Some(&2),
        Proto::Dubbo => f.get(3) == Some(&20),
    }
}

/// The frames and rules the shared driver and responder replay.
impl driver::Wire for Wire {
    fn frames(&self) -> (&[u8], &[u8]) {
        (&self.request, &self.response)
    }

    fn frame_len(&self, b: &[u8]) -> Option<usize> {
        frame_len(self.proto, b)
    }

    fn read_id(&self, f: &[u8], _request: bool) -> Option<u64> {
        read_id(self.proto, f)
    }

    fn write_id(&self, f: &mut [u8], id: u64, _request: bool) {
        write_id(self.proto, f, id)
    }

    fn is_ok(&self, f: &[u8]) -> bool {
        is_ok(self.proto, f)
    }

    /// Dubbo event frames (heartbeats) are not answers to our requests.
    fn is_event(&self, f: &[u8]) -> bool {
        self.proto == Proto::Dubbo && f.get(2).is_some_and(|b| b & 0x20 != 0)
    }

    /// Thrift seqids are 32-bit on the wire.
    fn max_id(&self) -> u64 {
        match self.proto {
            Proto::Thrift => u32::MAX as u64,
            Proto::Dubbo => u64::MAX,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    window: Window,
    /// Share of requests the `v2` backend served during the whole run.
    v2_share: f64,
}

impl std::ops::Deref for Sample {
    type Target = Window;

    fn deref(&self) -> &Window {
        &self.window
    }
}

/// `--perf DIR`: record Envoy with `perf record -g` over each measured window into
/// `DIR/<label>.data` (diagnosis only: perf's own overhead skews the CPU figures).
static PERF_DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

#[allow(clippy::too_many_arguments)]
fn drive(
    w: &Wire,
    port: u16,
    conns: usize,
    depth: usize,
    t: Timing,
    envoy_pid: u32,
    backends: (&Responder, &Responder),
    label: &str,
) -> Result<Sample, String> {
    let served0 = (backends.0.served(), backends.1.served());
    let (window, perf) = driver::measure(w, port, (conns, depth), t, envoy_pid, || {
        let dir = PERF_DIR.get().cloned().flatten()?;
        Command::new("perf")
            .args([
                "record",
                "-q",
                "-g",
                "-F",
                "2999",
                "-p",
                &envoy_pid.to_string(),
                "-o",
            ])
            .arg(dir.join(format!("{label}.data")))
            .args(["--", "sleep", &format!("{:.1}", t.measure.as_secs_f64())])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()
    });
    if let Some(mut p) = perf {
        let _ = p.wait();
    }
    let window = window?;
    let v1 = backends.0.served() - served0.0;
    let v2 = backends.1.served() - served0.1;
    Ok(Sample {
        window,
        v2_share: v2 as f64 / (v1 + v2).max(1) as f64,
    })
}

// ---------------------------------------------------------------------------------------------
// Set-ups

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    TcpProxy,
    NativePinned,
    NativeSplit,
    ObserveSo,
    ObserveWasm,
    RouteSoPinned,
    RouteSoSplit,
    /// Diagnosis: the module with `"protocol":"tcp"` (counts bytes, decodes nothing): the cost
    /// of the module's hooks alone.
    BytesSo,
    /// Diagnosis: the same in the `.wasm` filter (the cost of the v8 hooks alone).
    BytesWasm,
    /// What a user gets: `meltemi bootstrap --adapter module` of a ServiceEntry (v1/v2
    /// endpoints), a DestinationRule (subsets) and a MetaRouter sending every request to v1.
    RenderedPinned,
    /// The same with a 90/10 split v1/v2.
    RenderedSplit,
    /// The same with a method rule (a method the client never calls to v2) before a route to
    /// v1 without conditions.
    RenderedMethod,
    /// `--baseline DIR`: [`Setup::ObserveSo`] with the `libmeltemi.so` in DIR (an older build),
    /// for a before/after comparison in one run.
    ObserveSoBefore,
    /// `--baseline DIR`: [`Setup::ObserveWasm`] with DIR's `meltemi_wasm.wasm`.
    ObserveWasmBefore,
    /// `--baseline DIR`: [`Setup::RouteSoPinned`] with DIR's `libmeltemi.so`.
    RouteSoPinnedBefore,
}

/// The set-ups that only run with `--baseline DIR` (indices 9.. for `--setups`).
const BEFORE: [Setup; 3] = [
    Setup::ObserveSoBefore,
    Setup::ObserveWasmBefore,
    Setup::RouteSoPinnedBefore,
];

/// `--baseline DIR`: where the older artifacts are.
static BASELINE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

const SETUPS: [Setup; 12] = [
    Setup::TcpProxy,
    Setup::NativePinned,
    Setup::NativeSplit,
    Setup::ObserveSo,
    Setup::ObserveWasm,
    Setup::RouteSoPinned,
    Setup::RouteSoSplit,
    Setup::BytesSo,
    Setup::BytesWasm,
    Setup::RenderedPinned,
    Setup::RenderedSplit,
    Setup::RenderedMethod,
];

impl Setup {
    fn name(self, p: Proto) -> String {
        let native = match p {
            Proto::Thrift => "thrift_proxy",
            Proto::Dubbo => "dubbo_proxy",
        };
        match self {
            Setup::TcpProxy => "tcp_proxy".into(),
            Setup::NativePinned => format!("native {native}, pinned"),
            Setup::NativeSplit => format!("native {native}, 90/10"),
            Setup::ObserveSo => "meltemi .so observe + tcp_proxy".into(),
            Setup::ObserveWasm => "meltemi .wasm observe + tcp_proxy".into(),
            Setup::RouteSoPinned => "meltemi .so route, pinned".into(),
            Setup::RouteSoSplit => "meltemi .so route, 90/10".into(),
            Setup::BytesSo => "(diag) .so bytes only + tcp_proxy".into(),
            Setup::BytesWasm => "(diag) .wasm bytes only + tcp_proxy".into(),
            Setup::RenderedPinned => "meltemi bootstrap (MetaRouter), pinned".into(),
            Setup::RenderedSplit => "meltemi bootstrap (MetaRouter), 90/10".into(),
            Setup::RenderedMethod => "meltemi bootstrap (MetaRouter), method rule".into(),
            Setup::ObserveSoBefore => "(before) .so observe + tcp_proxy".into(),
            Setup::ObserveWasmBefore => "(before) .wasm observe + tcp_proxy".into(),
            Setup::RouteSoPinnedBefore => "(before) .so route, pinned".into(),
        }
    }

    /// The native set-up this one is compared with (`x native`).
    fn native(self) -> Option<Setup> {
        match self {
            Setup::ObserveSo
            | Setup::ObserveWasm
            | Setup::RouteSoPinned
            | Setup::ObserveSoBefore
            | Setup::ObserveWasmBefore
            | Setup::RouteSoPinnedBefore
            | Setup::RenderedPinned
            | Setup::RenderedMethod => Some(Setup::NativePinned),
            Setup::RouteSoSplit | Setup::RenderedSplit => Some(Setup::NativeSplit),
            _ => None,
        }
    }

    fn uses_module(self) -> bool {
        matches!(
            self,
            Setup::ObserveSo
                | Setup::RouteSoPinned
                | Setup::RouteSoSplit
                | Setup::BytesSo
                | Setup::RenderedPinned
                | Setup::RenderedSplit
                | Setup::RenderedMethod
        )
    }

    fn uses_wasm(self) -> bool {
        matches!(
            self,
            Setup::ObserveWasm | Setup::BytesWasm | Setup::ObserveWasmBefore
        )
    }

    /// The current-build set-up a `(before)` one mirrors, and the baseline directory.
    fn before(self) -> Option<(Setup, &'static std::path::Path)> {
        let now = match self {
            Setup::ObserveSoBefore => Setup::ObserveSo,
            Setup::ObserveWasmBefore => Setup::ObserveWasm,
            Setup::RouteSoPinnedBefore => Setup::RouteSoPinned,
            _ => return None,
        };
        BASELINE.get()?.as_deref().map(|d| (now, d))
    }
}

fn native_filter(p: Proto, split: bool) -> Filter {
    let route = if split {
        "{ weighted_clusters: { clusters: [ { name: v1, weight: 90 }, { name: v2, weight: 10 } ] } }"
    } else {
        "{ cluster: v1 }"
    };
    Filter::Yaml(match p {
        // Thrift routes need `method_name` or `service_name`; "" matches every method.
        Proto::Thrift => format!(
            r#"      - name: envoy.filters.network.thrift_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy
          stat_prefix: bench
          transport: FRAMED
          protocol: BINARY
          route_config:
            name: bench
            routes:
            - match: {{ method_name: "" }}
              route: {route}"#
        ),
        // Dubbo in 1.40: `multiple_route_config`, `interface` equal to the requested service,
        // a method matcher on every route.
        Proto::Dubbo => format!(
            r#"      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: bench
          protocol_type: Dubbo
          serialization_type: Hessian2
          multiple_route_config:
            name: bench
            route_config:
            - name: greeting
              interface: org.meltemi.demo.GreetingService
              routes:
              - match: {{ method: {{ name: {{ safe_regex: {{ regex: ".*" }} }} }} }}
                route: {route}"#
        ),
    })
}

/// A cluster to `port` whose upstream is Meltemi's HTTP-to-TCP bridge (the detour target).
fn bridge_cluster(name: &str, proto: &str, port: u16) -> String {
    format!(
        r#"
  - name: {name}
    connect_timeout: 1s
    type: STATIC
    upstream_config:
      name: envoy.upstreams.http.dynamic_modules
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.dynamic_modules.v3.Config
        dynamic_module_config: {{ name: meltemi }}
        bridge_name: {proto}
        bridge_config:
          "@type": type.googleapis.com/google.protobuf.StringValue
          value: '{{"protocol":"{proto}"}}'
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"#
    )
}

/// The manifests of a rendered set-up: service `bench.demo.svc.cluster.local` (v1 and v2
/// endpoints on the responders, listener on `listen`), its subsets, and the MetaRouter's routes.
fn manifests(setup: Setup, w: &Wire, listen: u16, v1: u16, v2: u16) -> String {
    let p = w.name();
    let dest = |subset: &str| {
        format!("{{destination: {{host: bench.demo.svc.cluster.local, subset: {subset}}}}}")
    };
    let routes = match setup {
        Setup::RenderedPinned => format!("    - name: pinned\n      route: [{}]\n", dest("v1")),
        Setup::RenderedSplit => format!(
            "    - name: split\n      route:\n        - {}\n        - {}\n",
            dest("v1").replace("}}", "}, weight: 90}"),
            dest("v2").replace("}}", "}, weight: 10}")
        ),
        _ => format!(
            "    - name: getv2\n      match: {{attributes: {{method: {{exact: getV2}}}}}}\n      route: [{}]\n    - name: rest\n      route: [{}]\n",
            dest("v2"),
            dest("v1")
        ),
    };
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: bench, namespace: demo, annotations: {{meltemi.io/listen-port: "{listen}"}}}}
spec:
  hosts: [bench.demo.svc.cluster.local]
  ports: [{{number: 9090, name: tcp-{p}, protocol: TCP}}]
  resolution: STATIC
  endpoints:
    - {{address: 127.0.0.1, ports: {{tcp-{p}: {v1}}}, labels: {{version: v1}}}}
    - {{address: 127.0.0.1, ports: {{tcp-{p}: {v2}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: bench, namespace: demo}}
spec:
  host: bench.demo.svc.cluster.local
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {{name: bench, namespace: demo}}
spec:
  hosts: [bench.demo.svc.cluster.local]
  routes:
{routes}"#
    )
}

/// `meltemi bootstrap --adapter module` of [`manifests`] (its admin section is the rig's).
fn rendered(setup: Setup, w: &Wire, listen: u16, v1: u16, v2: u16) -> String {
    static MELTEMI: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let bin = MELTEMI.get_or_init(|| {
        meltemi_testkit::routing::meltemi_binary().expect("build the meltemi binary")
    });
    let dir = meltemi_testkit::TempDir::new("bench-render").expect("temp dir");
    std::fs::write(
        dir.path().join("bench.yaml"),
        manifests(setup, w, listen, v1, v2),
    )
    .expect("write manifests");
    let out = Command::new(bin)
        .arg("bootstrap")
        .arg("-f")
        .arg(dir.path())
        .args(["--adapter", "module", "--no-inbound"])
        .output()
        .expect("run meltemi");
    assert!(
        out.status.success(),
        "meltemi bootstrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    meltemi_testkit::routing::without_top_level(&String::from_utf8_lossy(&out.stdout), "admin")
}

fn yaml(setup: Setup, w: &Wire, listen: u16, v1: u16, v2: u16) -> String {
    if matches!(
        setup,
        Setup::RenderedPinned | Setup::RenderedSplit | Setup::RenderedMethod
    ) {
        return rendered(setup, w, listen, v1, v2);
    }
    let p = w.name();
    let method = match w.proto {
        Proto::Thrift => "add",
        Proto::Dubbo => "sayHello",
    };
    let observe = format!(r#"{{"protocol":"{p}","stat_prefix":"bench","methods":["{method}"]}}"#);
    let bytes_only = r#"{"protocol":"tcp","stat_prefix":"bench"}"#.to_string();
    let tcp = Filter::TcpProxy("v1".into());
    let route = |routing: &str| {
        Filter::Module(format!(
            r#"{{"protocol":"{p}","stat_prefix":"bench","methods":["{method}"],"routing":{routing}}}"#
        ))
    };
    let chain = match setup {
        Setup::TcpProxy => vec![tcp],
        Setup::NativePinned => vec![native_filter(w.proto, false)],
        Setup::NativeSplit => vec![native_filter(w.proto, true)],
        Setup::ObserveSo | Setup::ObserveSoBefore => vec![Filter::Module(observe), tcp],
        Setup::ObserveWasm | Setup::ObserveWasmBefore => vec![Filter::Wasm(observe), tcp],
        Setup::BytesSo => vec![Filter::Module(bytes_only), tcp],
        Setup::BytesWasm => vec![Filter::Wasm(bytes_only), tcp],
        Setup::RouteSoPinned | Setup::RouteSoPinnedBefore => {
            vec![route(r#"{"primary_cluster":"v1"}"#), tcp]
        }
        Setup::RenderedPinned | Setup::RenderedSplit | Setup::RenderedMethod => {
            unreachable!("rendered by meltemi bootstrap")
        }
        Setup::RouteSoSplit => vec![
            route(
                r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"split","route":{"weighted":[{"cluster":"v1","weight":90},{"cluster":"v2b","weight":10}]}}]}]}"#,
            ),
            tcp,
        ],
    };
    let mut y = bootstrap(listen, &chain, &[("v1", v1), ("v2", v2)]);
    if setup == Setup::RouteSoSplit {
        y.push_str(&bridge_cluster("v2b", p, v2));
        y.push('\n');
    }
    if let Some((_, dir)) = setup.before() {
        // The older `.wasm` (the `.so` is chosen by Envoy's module search path).
        let wasm = meltemi_testkit::artifacts::wasm_path()
            .display()
            .to_string();
        y = y.replace(&wasm, &dir.join("meltemi_wasm.wasm").display().to_string());
    }
    y
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
        Some("thrift") => vec![Proto::Thrift],
        Some("dubbo") => vec![Proto::Dubbo],
        _ => vec![Proto::Thrift, Proto::Dubbo],
    };
    let _ = BASELINE.set(opt("--baseline").map(std::path::PathBuf::from));
    let shapes = meltemi_benches::e2e::shapes(opt("--shapes"));
    let all: Vec<Setup> = match BASELINE.get() {
        Some(Some(_)) => SETUPS.iter().chain(BEFORE.iter()).copied().collect(),
        _ => SETUPS.to_vec(),
    };
    let setups: Vec<Setup> = match opt("--setups") {
        Some(list) => all
            .iter()
            .enumerate()
            .filter(|(i, _)| list.split(',').any(|x| x == i.to_string()))
            .map(|(_, s)| *s)
            .collect(),
        None => all,
    };
    // What the selected set-ups load, checked before the first round: the current `.so` and
    // `.wasm` (a `(before)` wasm row rewrites the current path, so it needs both), and the
    // baseline's files.
    let baseline = |file: &str, rows: &[Setup]| {
        let dir = BASELINE.get()?.as_ref()?;
        setups
            .iter()
            .any(|s| rows.contains(s))
            .then(|| dir.join(file))
    };
    let extra: Vec<std::path::PathBuf> = [
        baseline(
            "libmeltemi.so",
            &[Setup::ObserveSoBefore, Setup::RouteSoPinnedBefore],
        ),
        baseline("meltemi_wasm.wasm", &[Setup::ObserveWasmBefore]),
    ]
    .into_iter()
    .flatten()
    .collect();
    meltemi_benches::e2e::require(
        "e2e-rpc",
        setups.iter().any(|s| s.uses_module()),
        setups.iter().any(|s| s.uses_wasm()),
        &extra,
    );
    // This process (load generator and backends) on CPU 1; Envoy on CPU 0 (`taskset` execs it).
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .output();
    let _ = PERF_DIR.set(opt("--perf").map(std::path::PathBuf::from));
    let load_before = loadavg();
    eprintln!("load average before: {load_before}");

    for proto in protos {
        let w = Wire::load(proto);
        let v1 = Responder::start(&w);
        let v2 = Responder::start(&w);
        // samples[shape][setup] = per-round results.
        let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); setups.len()]; shapes.len()];
        let mut failures: Vec<String> = Vec::new();
        for round in 0..rounds {
            for (si, &setup) in setups.iter().enumerate() {
                let listen = free_listen_port();
                let mut o = EnvoyOptions::new(yaml(setup, &w, listen, v1.port, v2.port));
                o.cpu_list = Some("0".into());
                match setup.before() {
                    Some((now, dir)) if now.uses_module() => o.env.push((
                        "ENVOY_DYNAMIC_MODULES_SEARCH_PATH".into(),
                        dir.display().to_string(),
                    )),
                    _ if setup.uses_module() => o = o.with_dynamic_module(),
                    _ => {}
                }
                let envoy = match Envoy::start_with(o) {
                    Ok(e) => e,
                    Err(e) => {
                        failures.push(format!("{}: envoy: {e}", setup.name(proto)));
                        continue;
                    }
                };
                for (k, &(conns, depth)) in shapes.iter().enumerate() {
                    let label = format!("{}-{setup:?}-{conns}x{depth}-r{round}", w.name());
                    match drive(
                        &w,
                        listen,
                        conns,
                        depth,
                        timing,
                        envoy.pid(),
                        (&v1, &v2),
                        &label,
                    ) {
                        Ok(s) => {
                            eprintln!(
                                "{} round {round} {conns}x{depth} {}: {:.0} req/s, {:.1} us CPU/req, errors {}, v2 {:.3}, cpu0 other {:.2}",
                                w.name(),
                                setup.name(proto),
                                s.rps,
                                s.cpu_us_per_req,
                                s.errors,
                                s.v2_share,
                                s.cpu0_other
                            );
                            samples[k][si].push(s);
                            // Diagnosis: MELTEMI_BENCH_STATS=<substring> prints Envoy's
                            // matching stats after each run (connection reuse, overflows).
                            if let Ok(want) = std::env::var("MELTEMI_BENCH_STATS") {
                                for (name, v) in envoy.stats() {
                                    if name.contains(&want) {
                                        eprintln!("  {name} = {v}");
                                    }
                                }
                            }
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
            println!("\nfailed runs ({}):", w.name());
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
    println!(
        "\n{}: {conns} connection(s) x {depth} in flight, {:.1} s per run after {:.1} s warm-up, median of {rounds}; Envoy --concurrency 1 on CPU 0, load generator + responders on CPU 1",
        w.name(),
        t.measure.as_secs_f64(),
        t.warm.as_secs_f64()
    );
    println!("| set-up | req/s | x tcp_proxy | p50 us | p99 us | Envoy CPU us/req | CPU x tcp_proxy | x native req/s | x native CPU | v2 share | errors | CPU0 other |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, s) in setups.iter().enumerate() {
        if samples[i].is_empty() {
            println!("| {} | failed | | | | | | | | | | |", s.name(w.proto));
            continue;
        }
        let rps = med(i, |x| x.rps);
        let cpu = med(i, |x| x.cpu_us_per_req);
        let (xn_rps, xn_cpu) = match s.native().and_then(idx) {
            Some(n) if !samples[n].is_empty() => (
                format!("{:.2}", rps / med(n, |x| x.rps)),
                format!("{:.2}", cpu / med(n, |x| x.cpu_us_per_req)),
            ),
            _ => (String::new(), String::new()),
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.1} | {:.2} | {} | {} | {:.3} | {} | {:.0}% |",
            s.name(w.proto),
            rps,
            rps / base_rps,
            med(i, |x| x.p50_us),
            med(i, |x| x.p99_us),
            cpu,
            cpu / base_cpu,
            xn_rps,
            xn_cpu,
            med(i, |x| x.v2_share),
            samples[i].iter().map(|x| x.errors).max().unwrap_or(0),
            med(i, |x| x.cpu0_other) * 100.0
        );
    }
}
