//! The module's own CPU per request, without Envoy: the engine paths the `.so` runs for the
//! e2e-rpc set-ups, on the same replayed frames (Thrift `add`, Dubbo `sayHello`), 16 requests
//! per read and 16 answers per write (the 1 x 16 shape), and the host calls (stat ABI calls)
//! each path makes per request.
//!
//! On a machine shared with other jobs, end-to-end CPU per request swings by more than what a
//! filter adds (docs/benchmarks.md); this times only this thread's run time
//! (`/proc/thread-self/schedstat`, so time other jobs take is not counted) and gives the median
//! of several repetitions.
//!
//! Paths:
//! - `observe`: `Session::on_downstream` / `on_upstream` (the `.so` and `.wasm` observer);
//! - `route pinned, decode twice`: the router's `route_request` plus the observer's own decode
//!   of every request (how the `.so` routed until the shared decode);
//! - `route pinned, shared decode`: `route_request_with` handing each decoded frame to
//!   `Session::observe_request`.
//!
//! Host calls: `per event` = one call per metric event (the adapters until batching);
//! `batched` = what [`meltemi_engine::Batch`] leaves after summing per hook.
//!
//! `cargo run --release -p meltemi-benches --bin engine-cpu [-- --reps N --iters N]`

use meltemi_engine::route::{
    route_request, route_request_with, RouteTable, RpcProtocol, SplitMix64,
};
use meltemi_engine::{Batch, Engine, FilterConfig, MetricId, MetricSink, Session};
use meltemi_testkit::workspace_root;

const DEPTH: usize = 16;

/// This thread's run time so far, ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Counts the host calls an adapter would make: one per event.
#[derive(Default)]
struct PerEvent(u64);

impl MetricSink for PerEvent {
    fn inc(&mut self, _: MetricId, _: u64) {
        self.0 += 1;
    }
    fn gauge_add(&mut self, _: MetricId, _: i64) {
        self.0 += 1;
    }
    fn record(&mut self, _: MetricId, _: u64) {
        self.0 += 1;
    }
}

/// Drains a batch as the adapters do, counting the calls.
fn drain(b: &mut Batch, calls: &mut u64) {
    b.drain(|_| *calls += 1);
}

struct Case {
    name: &'static str,
    proto: RpcProtocol,
    json: String,
    /// 16 requests then 16 answers, ids 1..=16 rewritten per round.
    reqs: Vec<u8>,
    resps: Vec<u8>,
}

fn frames(name: &'static str, proto: RpcProtocol) -> Case {
    let dir = workspace_root().join("filters/codec/testdata");
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let (req, resp, p, method) = match proto {
        RpcProtocol::Thrift => {
            let first = |b: Vec<u8>| {
                let n = 4 + u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                b[..n].to_vec()
            };
            (
                first(read("thrift/binary-framed.c2s.bin")),
                first(read("thrift/binary-framed.s2c.bin")),
                "thrift",
                "add",
            )
        }
        RpcProtocol::Dubbo => (
            read("dubbo/01_client_request_sayHello.bin"),
            read("dubbo/02_provider_response_sayHello.bin"),
            "dubbo",
            "sayHello",
        ),
    };
    let with_id = |f: &[u8], id: u32| {
        let mut f = f.to_vec();
        match proto {
            RpcProtocol::Thrift => {
                let nl = u32::from_be_bytes([f[8], f[9], f[10], f[11]]) as usize;
                f[12 + nl..16 + nl].copy_from_slice(&id.to_be_bytes());
            }
            RpcProtocol::Dubbo => f[4..12].copy_from_slice(&u64::from(id).to_be_bytes()),
        }
        f
    };
    Case {
        name,
        proto,
        json: format!(r#"{{"protocol":"{p}","stat_prefix":"bench","methods":["{method}"]}}"#),
        reqs: (1..=DEPTH as u32).flat_map(|i| with_id(&req, i)).collect(),
        resps: (1..=DEPTH as u32).flat_map(|i| with_id(&resp, i)).collect(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Observe,
    RouteTwice,
    RouteShared,
}

/// Runs `iters` rounds of 16 requests + 16 answers; returns (ns per request, calls per request
/// per event, calls per request batched).
fn run(c: &Case, path: Path, iters: u64) -> (f64, f64, f64) {
    let engine = Engine::new(FilterConfig::from_json(&c.json).expect("config"));
    let raw = serde_json_routing();
    let table = RouteTable::compile(&raw).expect("routing");
    let limits = meltemi_codec::Limits::default();
    let mut rng = SplitMix64::new(7);
    let mut batch = Batch::default();
    let mut per_event = PerEvent::default();
    let mut batched = 0u64;
    let mut s = Session::new(&engine, &mut batch);
    drain(&mut batch, &mut 0);
    let t0 = thread_cpu_ns();
    for _ in 0..iters {
        let now = 1_000;
        match path {
            Path::Observe => {
                s.on_downstream(&engine, &c.reqs, now, &mut batch);
            }
            Path::RouteTwice | Path::RouteShared => {
                let mut off = 0;
                if path == Path::RouteTwice {
                    s.on_downstream(&engine, &c.reqs, now, &mut batch);
                } else {
                    s.count_downstream(&engine, &c.reqs, &mut batch);
                }
                while off < c.reqs.len() {
                    let buf = &c.reqs[off..];
                    let r = if path == Path::RouteTwice {
                        route_request(c.proto, &table, buf, &limits, &mut rng, |_| true)
                    } else {
                        route_request_with(
                            c.proto,
                            &table,
                            buf,
                            |f| s.observe_request(&engine, f, now, &mut batch),
                            &limits,
                            &mut rng,
                            |_| true,
                        )
                    };
                    match r {
                        Ok(meltemi_codec::Decoded::Frame { used, .. }) => off += used,
                        _ => panic!("frame"),
                    }
                }
            }
        }
        drain(&mut batch, &mut batched);
        s.on_upstream(&engine, &c.resps, now + 5_000, &mut batch);
        drain(&mut batch, &mut batched);
    }
    let ns = thread_cpu_ns() - t0;
    // The same traffic once more through a per-event sink, to count the observer's events (the
    // same for every path; the `.so` router adds two counters per request, also batched now).
    let mut s2 = Session::new(&engine, &mut per_event);
    per_event.0 = 0;
    s2.on_downstream(&engine, &c.reqs, 0, &mut per_event);
    s2.on_upstream(&engine, &c.resps, 1, &mut per_event);
    let n = (iters * DEPTH as u64) as f64;
    (
        ns as f64 / n,
        per_event.0 as f64 / DEPTH as f64,
        batched as f64 / n,
    )
}

/// The pinned route table of the e2e harness: every request to the primary cluster.
fn serde_json_routing() -> meltemi_engine::route::RawRouting {
    let cfg = FilterConfig::from_json(
        r#"{"protocol":"dubbo","stat_prefix":"b","routing":{"primary_cluster":"v1"}}"#,
    )
    .expect("config");
    cfg.routing.expect("routing")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str, d: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let reps = opt("--reps", 7);
    let iters = opt("--iters", 20_000);
    println!("| protocol | path | module CPU ns/request (median of {reps}, min-max) | observer stat calls/request, one per event | batched per hook |");
    println!("|---|---|---|---|---|");
    for c in [
        frames("thrift", RpcProtocol::Thrift),
        frames("dubbo", RpcProtocol::Dubbo),
    ] {
        for (path, label) in [
            (Path::Observe, "observe"),
            (Path::RouteTwice, "route pinned, decode twice"),
            (Path::RouteShared, "route pinned, shared decode"),
        ] {
            run(&c, path, iters / 10); // warm-up
            let mut v: Vec<(f64, f64, f64)> = (0..reps).map(|_| run(&c, path, iters)).collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let m = v[v.len() / 2];
            println!(
                "| {} | {label} | {:.0} ({:.0}-{:.0}) | {:.1} | {:.2} |",
                c.name,
                m.0,
                v[0].0,
                v[v.len() - 1].0,
                m.1,
                m.2
            );
        }
    }
}
