//! The engine on captured real Dubbo and Thrift conversations (testdata of the codec crate):
//! pairing by id, methods from configuration, exceptions and errors told apart.

use meltemi_engine::{Engine, FilterConfig, MetricId, MetricSink, Session};
use std::collections::HashMap;
use std::path::Path;

#[derive(Default)]
struct Sink(HashMap<u32, i64>);

impl MetricSink for Sink {
    fn inc(&mut self, id: MetricId, d: u64) {
        *self.0.entry(id.0).or_default() += d as i64;
    }
    fn gauge_add(&mut self, id: MetricId, d: i64) {
        *self.0.entry(id.0).or_default() += d;
    }
    fn record(&mut self, _: MetricId, _: u64) {}
}

fn get(e: &Engine, s: &Sink, name: &str) -> i64 {
    let i = e
        .metrics
        .defs()
        .iter()
        .position(|d| d.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    s.0.get(&(i as u32)).copied().unwrap_or(0)
}

fn testdata(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../codec/testdata")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn dubbo_conversation_pairs_by_id_with_outcomes_per_method() {
    let e = Engine::new(
        FilterConfig::from_json(
            r#"{"protocol":"dubbo","stat_prefix":"d","methods":["org.meltemi.demo.GreetingService:sayHello","fail"]}"#,
        )
        .unwrap(),
    );
    let mut sink = Sink::default();
    let mut s = Session::new(&e, &mut sink);
    // 01..16: eight calls (two-way), each request then its response, byte at a time for the
    // first pair to exercise the framer.
    for (i, pair) in (1..=16).collect::<Vec<_>>().chunks(2).enumerate() {
        let names: Vec<String> = std::fs::read_dir(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../codec/testdata/dubbo"),
        )
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
        let find = |n: i32| {
            let prefix = format!("{n:02}_");
            names
                .iter()
                .find(|f| f.starts_with(&prefix))
                .unwrap()
                .clone()
        };
        let req = testdata(&format!("dubbo/{}", find(pair[0])));
        let resp = testdata(&format!("dubbo/{}", find(pair[1])));
        if i == 0 {
            for b in &req {
                s.on_downstream(&e, std::slice::from_ref(b), 0, &mut sink);
            }
        } else {
            s.on_downstream(&e, &req, 0, &mut sink);
        }
        s.on_upstream(&e, &resp, 1_000, &mut sink);
    }
    assert_eq!(get(&e, &sink, "dubbo.d.request"), 8);
    assert_eq!(get(&e, &sink, "dubbo.d.response"), 8);
    assert_eq!(get(&e, &sink, "dubbo.d.response_unmatched"), 0);
    assert_eq!(get(&e, &sink, "dubbo.d.request_decoding_error"), 0);
    // 08 and 16: RuntimeException from `fail`; 10: SERVICE_ERROR for a missing service.
    assert_eq!(get(&e, &sink, "dubbo.d.response_exception"), 2);
    assert_eq!(get(&e, &sink, "dubbo.d.response_error"), 1);
    assert_eq!(get(&e, &sink, "dubbo.d.response_success"), 5);
    assert_eq!(get(&e, &sink, "dubbo.d.method.fail.total"), 2);
    assert_eq!(get(&e, &sink, "dubbo.d.method.fail.exception"), 2);
    assert_eq!(get(&e, &sink, "dubbo.d.method.fail.error"), 0);
    assert_eq!(get(&e, &sink, "dubbo.d.method.other.error"), 1);
    assert_eq!(
        get(
            &e,
            &sink,
            "dubbo.d.method.org_meltemi_demo_GreetingService:sayHello.total"
        ),
        2,
        "sayHello on GreetingService (the Missing service's sayHello is `other`)"
    );
    assert_eq!(get(&e, &sink, "dubbo.d.request_active"), 0);
}

#[test]
fn thrift_transports_and_protocols_pair_calls_and_replies() {
    for name in [
        "binary-framed",
        "binary-framed-mux",
        "binary-unframed",
        "binary-lax-framed",
        "compact-framed",
        "compact-unframed",
        "header-binary",
        "header-compact",
    ] {
        let e = Engine::new(
            FilterConfig::from_json(
                r#"{"protocol":"thrift","stat_prefix":"t","methods":["get","nosuch"]}"#,
            )
            .unwrap(),
        );
        let mut sink = Sink::default();
        let mut s = Session::new(&e, &mut sink);
        let c2s = testdata(&format!("thrift/{name}.c2s.bin"));
        let s2c = testdata(&format!("thrift/{name}.s2c.bin"));
        // Split both streams in the middle to cross frame boundaries.
        let (a, b) = c2s.split_at(c2s.len() / 2);
        s.on_downstream(&e, a, 0, &mut sink);
        s.on_downstream(&e, b, 0, &mut sink);
        let (a, b) = s2c.split_at(s2c.len() / 2);
        s.on_upstream(&e, a, 0, &mut sink);
        s.on_upstream(&e, b, 0, &mut sink);
        let req = get(&e, &sink, "thrift.t.request");
        assert!(req > 0, "{name}: requests seen");
        assert_eq!(
            get(&e, &sink, "thrift.t.request_decoding_error"),
            0,
            "{name}"
        );
        assert_eq!(
            get(&e, &sink, "thrift.t.response_decoding_error"),
            0,
            "{name}"
        );
        assert_eq!(get(&e, &sink, "thrift.t.response_unmatched"), 0, "{name}");
        assert_eq!(
            get(&e, &sink, "thrift.t.response"),
            get(&e, &sink, "thrift.t.request_call"),
            "{name}: every call answered"
        );
        assert_eq!(get(&e, &sink, "thrift.t.request_active"), 0, "{name}");
        // Outcomes as thrift_proxy counts them: `get` 3's reply carries the declared exception
        // NotFound (response_error), `nosuch` is answered by a TApplicationException
        // (message type Exception: response_exception), the other 5 replies are successes.
        assert_eq!(get(&e, &sink, "thrift.t.response_success"), 5, "{name}");
        assert_eq!(get(&e, &sink, "thrift.t.response_error"), 1, "{name}");
        assert_eq!(get(&e, &sink, "thrift.t.response_exception"), 1, "{name}");
        assert_eq!(get(&e, &sink, "thrift.t.method.get.success"), 1, "{name}");
        assert_eq!(get(&e, &sink, "thrift.t.method.get.error"), 1, "{name}");
        assert_eq!(get(&e, &sink, "thrift.t.method.get.exception"), 0, "{name}");
        assert_eq!(
            get(&e, &sink, "thrift.t.method.nosuch.exception"),
            1,
            "{name}"
        );
        assert_eq!(get(&e, &sink, "thrift.t.method.nosuch.error"), 0, "{name}");
    }
}
