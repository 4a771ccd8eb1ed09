//! The engine driven by hand (no host): Redis pairing, latency, outcomes, decode errors.

use meltemi_engine::{Engine, FilterConfig, MetricId, MetricSink, Session, Verdict};
use std::collections::HashMap;

#[derive(Default)]
struct Sink {
    values: HashMap<u32, i64>,
    records: HashMap<u32, Vec<u64>>,
    lines: Vec<String>,
}

impl MetricSink for Sink {
    fn inc(&mut self, id: MetricId, d: u64) {
        *self.values.entry(id.0).or_default() += d as i64;
    }
    fn gauge_add(&mut self, id: MetricId, d: i64) {
        *self.values.entry(id.0).or_default() += d;
    }
    fn record(&mut self, id: MetricId, v: u64) {
        self.records.entry(id.0).or_default().push(v);
    }
    fn access_log(&mut self, line: &str) {
        self.lines.push(line.to_owned());
    }
}

struct Rig {
    engine: Engine,
    sink: Sink,
}

impl Rig {
    fn new(json: &str) -> Rig {
        Rig {
            engine: Engine::new(FilterConfig::from_json(json).unwrap()),
            sink: Sink::default(),
        }
    }
    fn id(&self, name: &str) -> u32 {
        let defs = self.engine.metrics.defs();
        defs.iter()
            .position(|d| d.name == name)
            .unwrap_or_else(|| panic!("no metric {name}")) as u32
    }
    fn get(&self, name: &str) -> i64 {
        self.sink.values.get(&self.id(name)).copied().unwrap_or(0)
    }
    fn records(&self, name: &str) -> Vec<u64> {
        self.sink
            .records
            .get(&self.id(name))
            .cloned()
            .unwrap_or_default()
    }
}

const CFG: &str = r#"{"protocol":"redis","stat_prefix":"t"}"#;

#[test]
fn pipelined_commands_pair_in_order_with_latency_and_outcome() {
    let mut r = Rig::new(CFG);
    let mut s = Session::new(&r.engine, &mut r.sink);
    let reqs = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n";
    assert_eq!(
        s.on_downstream(&r.engine, reqs, 1_000_000, &mut r.sink),
        Verdict::Continue
    );
    assert_eq!(s.in_flight(), 3);
    assert_eq!(r.get("redis.t.request_active"), 3);
    let replies = b"+OK\r\n$1\r\nv\r\n-ERR value is not an integer or out of range\r\n";
    // Split the replies at every byte boundary across two chunks: same result.
    let (a, b) = replies.split_at(7);
    s.on_upstream(&r.engine, a, 3_000_000, &mut r.sink);
    s.on_upstream(&r.engine, b, 5_000_000, &mut r.sink);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(r.get("redis.t.request"), 3);
    assert_eq!(r.get("redis.t.command.set.total"), 1);
    assert_eq!(r.get("redis.t.command.set.success"), 1);
    assert_eq!(r.get("redis.t.command.get.success"), 1);
    assert_eq!(r.get("redis.t.command.incr.error"), 1);
    assert_eq!(r.get("redis.t.response_success"), 2);
    assert_eq!(r.get("redis.t.response_error"), 1);
    assert_eq!(r.get("redis.t.request_active"), 0);
    assert_eq!(r.records("redis.t.command.set.latency_us"), vec![2_000]);
    assert_eq!(r.records("redis.t.command.incr.latency_us"), vec![4_000]);
    assert_eq!(s.buffered(), 0);
}

#[test]
fn every_split_point_gives_the_same_counts() {
    let reqs: &[u8] = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
    for cut in 0..=reqs.len() {
        let mut r = Rig::new(CFG);
        let mut s = Session::new(&r.engine, &mut r.sink);
        s.on_downstream(&r.engine, &reqs[..cut], 0, &mut r.sink);
        s.on_downstream(&r.engine, &reqs[cut..], 0, &mut r.sink);
        assert_eq!(r.get("redis.t.request"), 3, "cut {cut}");
        assert_eq!(r.get("redis.t.command.ping.total"), 2, "cut {cut}");
        assert_eq!(r.get("redis.t.request_event"), 2, "cut {cut}");
        assert_eq!(s.buffered(), 0);
    }
}

#[test]
fn unknown_commands_are_data_and_close_counts_no_reply() {
    let mut r = Rig::new(CFG);
    let mut s = Session::new(&r.engine, &mut r.sink);
    s.on_downstream(
        &r.engine,
        b"*1\r\n$7\r\nFOOBAR1\r\n*1\r\n$4\r\nPING\r\n",
        0,
        &mut r.sink,
    );
    assert_eq!(r.get("redis.t.command.unknown.total"), 1);
    s.on_close(&r.engine, &mut r.sink);
    s.on_close(&r.engine, &mut r.sink);
    assert_eq!(r.get("redis.t.request_no_reply"), 2);
    assert_eq!(r.get("redis.t.request_active"), 0);
    assert_eq!(r.get("redis.t.cx_active"), 0);
}

#[test]
fn malformed_stream_closes_by_default_and_is_counted_once() {
    let mut r = Rig::new(CFG);
    let mut s = Session::new(&r.engine, &mut r.sink);
    let v = s.on_downstream(&r.engine, b"*2\r\n$x\r\n", 0, &mut r.sink);
    assert_eq!(v, Verdict::Close(meltemi_engine::CloseReason::DecodeError));
    assert_eq!(r.get("redis.t.request_decoding_error"), 1);
    assert!(s.error().is_some(), "the error is kept for one log line");
    // Later bytes are not decoded again.
    s.on_downstream(&r.engine, b"garbage", 0, &mut r.sink);
    assert_eq!(r.get("redis.t.request_decoding_error"), 1);
}

#[test]
fn passthrough_mode_keeps_the_connection() {
    let mut r =
        Rig::new(r#"{"protocol":"redis","stat_prefix":"t","on_decode_error":"passthrough"}"#);
    let mut s = Session::new(&r.engine, &mut r.sink);
    assert_eq!(
        s.on_downstream(&r.engine, b"*2\r\n$x\r\n", 0, &mut r.sink),
        Verdict::Continue
    );
    assert_eq!(
        s.on_downstream(&r.engine, b"PING\r\n", 0, &mut r.sink),
        Verdict::Continue
    );
    assert_eq!(r.get("redis.t.request_decoding_error"), 1);
    assert_eq!(r.get("redis.t.downstream_rx_bytes"), 14);
}

#[test]
fn oversized_frame_is_a_decode_error_not_a_buffer() {
    let mut r = Rig::new(r#"{"protocol":"redis","stat_prefix":"t","max_frame_bytes":1024}"#);
    let mut s = Session::new(&r.engine, &mut r.sink);
    let v = s.on_downstream(
        &r.engine,
        b"*2\r\n$3\r\nGET\r\n$100000\r\nabc",
        0,
        &mut r.sink,
    );
    assert!(matches!(v, Verdict::Close(_)), "{v:?}");
    assert!(s.buffered() < 1024);
}

#[test]
fn access_log_lines_name_command_outcome_and_latency_only_when_asked() {
    let mut r = Rig::new(r#"{"protocol":"redis","statPrefix":"t","accessLog":true}"#);
    let mut s = Session::new(&r.engine, &mut r.sink);
    s.on_downstream(
        &r.engine,
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n",
        0,
        &mut r.sink,
    );
    s.on_upstream(&r.engine, b"$-1\r\n-ERR x\r\n", 7_000, &mut r.sink);
    assert_eq!(
        r.sink.lines,
        vec![
            "meltemi protocol=redis stat_prefix=t command=get id=0 kind=call outcome=success latency_us=7",
            "meltemi protocol=redis stat_prefix=t command=ping id=0 kind=event outcome=error latency_us=7",
        ]
    );
    let mut quiet = Rig::new(CFG);
    let mut s = Session::new(&quiet.engine, &mut quiet.sink);
    s.on_downstream(&quiet.engine, b"PING\r\n", 0, &mut quiet.sink);
    s.on_upstream(&quiet.engine, b"+PONG\r\n", 0, &mut quiet.sink);
    assert!(quiet.sink.lines.is_empty());
}
