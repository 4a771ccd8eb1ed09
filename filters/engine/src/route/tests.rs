//! Table tests of the route table, the token bucket, the splits and the wire helpers.

use super::*;

fn table(json: &str) -> RouteTable {
    let raw: RawRouting = serde_json::from_str(json).unwrap();
    RouteTable::compile(&raw).unwrap()
}

fn compile_err(json: &str) -> String {
    match serde_json::from_str::<RawRouting>(json) {
        Err(e) => e.to_string(),
        Ok(raw) => RouteTable::compile(&raw).unwrap_err().to_string(),
    }
}

const T: &str = r#"{
  "primary_cluster": "v1",
  "services": [
    {"service": "Calc", "routes": [
      {"name": "add_v2", "match": {"method": {"exact": "add"}}, "route": {"cluster": "v2"}},
      {"name": "canary", "match": {"attributes": {"x-canary": {"prefix": "yes"}}}, "route": {"cluster": "v2"}},
      {"name": "re", "match": {"method": {"regex": "get[A-Z].*"}}, "route": {"cluster": "v3"}},
      {"name": "split", "route": {"weighted": [{"cluster": "v1", "weight": 90}, {"cluster": "v2", "weight": 10}]}}
    ]},
    {"service": "*", "routes": [
      {"name": "limited", "match": {"method": {"exact": "ping"}}, "route": {"cluster": "v1"},
       "rate_limit": {"max_tokens": 3, "fill_interval_ms": 1000}},
      {"name": "retry", "match": {"method": {"prefix": "get"}}, "route": {"cluster": "v2"},
       "retries": 2, "idempotent_methods": ["getX"], "timeout_ms": 250,
       "mirror": {"cluster": "shadow", "percent": 100}}
    ]}
  ]
}"#;

fn go(t: &RouteTable, service: Option<&str>, method: &str, attrs: &[(&str, &str)]) -> Decision {
    let mut rng = SplitMix64::new(1);
    t.decide(
        &Request {
            service,
            method,
            attrs,
        },
        &mut rng,
        |_| true,
    )
}

#[test]
fn first_match_wins_per_service_then_star_then_default() {
    let t = table(T);
    assert_eq!(t.clusters, ["v1", "v2", "v3", "shadow"]);
    type Case<'a> = (
        Option<&'a str>,
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<u16>,
        Target,
    );
    let cases: &[Case] = &[
        (Some("Calc"), "add", &[], Some(0), Target::Detour(1)),
        // method rule before the attribute rule
        (
            Some("Calc"),
            "add",
            &[("x-canary", "yes-1")],
            Some(0),
            Target::Detour(1),
        ),
        (
            Some("Calc"),
            "mul",
            &[("x-canary", "yes-1")],
            Some(1),
            Target::Detour(1),
        ),
        (
            Some("Calc"),
            "mul",
            &[("x-canary", "no")],
            Some(3),
            Target::Primary,
        ),
        // regex is anchored: "getX" matches, "xgetX" does not
        (Some("Calc"), "getX", &[], Some(2), Target::Detour(2)),
        // a known service never falls through to "*"
        (Some("Calc"), "ping", &[], Some(3), Target::Primary),
        (Some("Other"), "ping", &[], Some(4), Target::Primary),
        (None, "getY", &[], Some(5), Target::Detour(1)),
        (None, "nothing", &[], None, Target::Primary),
    ];
    for (svc, m, attrs, route, target) in cases {
        let d = go(&t, *svc, m, attrs);
        if *route != Some(3) {
            assert_eq!(
                (d.route, d.target),
                (*route, *target),
                "{svc:?} {m} {attrs:?}"
            );
        } else {
            assert_eq!(d.route, Some(3));
        }
    }
    let d = go(&t, None, "getX", &[]);
    assert_eq!((d.retries, d.timeout_ms, d.mirror), (2, 250, Some(3)));
    assert_eq!(
        go(&t, None, "getY", &[]).retries,
        0,
        "only idempotent methods retry"
    );
}

#[test]
fn weighted_split_is_exact_in_distribution_and_deterministic() {
    let t = table(T);
    let run = |seed| {
        let mut rng = SplitMix64::new(seed);
        (0..100_000)
            .filter(|_| {
                let req = Request {
                    service: Some("Calc"),
                    method: "mul",
                    attrs: &(),
                };
                t.decide(&req, &mut rng, |_| true).target == Target::Detour(1)
            })
            .count()
    };
    let n = run(42);
    assert_eq!(n, run(42), "same seed, same split");
    // 10% of 100k: sd = sqrt(100k * 0.1 * 0.9) ~ 95; 5 sd.
    assert!((10_000 - 475..=10_000 + 475).contains(&n), "{n}");
}

#[test]
fn token_bucket_admits_max_then_refills_per_interval() {
    let t = table(T);
    let mut lim = Limiters::new(&t, 0);
    let mut rng = SplitMix64::new(0);
    let mut at = |now: u64| {
        let req = Request {
            service: None,
            method: "ping",
            attrs: &(),
        };
        t.decide(&req, &mut rng, |i| lim.take(&t, i, now)).target
    };
    let limited = Target::LocalReply(LocalReply::RateLimited);
    assert_eq!(
        [at(0), at(1), at(2), at(3)],
        [Target::Primary, Target::Primary, Target::Primary, limited]
    );
    assert_eq!(at(999_999_999), limited);
    assert_eq!(at(1_000_000_000), Target::Primary);
    // Fills never exceed max_tokens.
    let ok = (0..10)
        .filter(|_| at(60_000_000_000) == Target::Primary)
        .count();
    assert_eq!(ok, 3);
}

#[test]
fn a_new_table_carries_the_buckets_of_routes_it_keeps_by_name() {
    let old = table(T);
    let mut lim = Limiters::new(&old, 0);
    // Spend two of "limited"'s three tokens.
    let i = old.routes.iter().find(|r| r.name == "limited").unwrap();
    let bi = i.limiter.unwrap();
    assert!(lim.take(&old, bi, 0) && lim.take(&old, bi, 1));
    let take_all = |t: &RouteTable, l: &mut Limiters, name: &str, now: u64| {
        let b = t
            .routes
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .limiter
            .unwrap();
        (0..10).filter(|_| l.take(t, b, now)).count()
    };
    // Same table again (a version bump with other routes changed): one token left, not three.
    let same = table(T);
    let mut carried = Limiters::carried(&same, &old, &lim, 2);
    assert_eq!(take_all(&same, &mut carried, "limited", 2), 1);
    // The fill clock carried too: the next fill is due at 1 s after the old start, not after
    // the swap.
    assert_eq!(take_all(&same, &mut carried, "limited", 999_999_999), 0);
    assert_eq!(take_all(&same, &mut carried, "limited", 1_000_000_000), 3);
    // A smaller max caps what is carried; a new route name starts full.
    let smaller = table(&T.replace(
        r#""max_tokens": 3, "fill_interval_ms": 1000"#,
        r#""max_tokens": 1, "fill_interval_ms": 5000"#,
    ));
    let fresh_lim = Limiters::new(&old, 0);
    let mut capped = Limiters::carried(&smaller, &old, &fresh_lim, 3);
    assert_eq!(take_all(&smaller, &mut capped, "limited", 3), 1);
    let renamed = table(&T.replace(r#""name": "limited""#, r#""name": "limited2""#));
    let mut renamed_lim = Limiters::carried(&renamed, &old, &lim, 3);
    assert_eq!(take_all(&renamed, &mut renamed_lim, "limited2", 3), 3);
}

#[test]
fn buckets_merged_into_one_shared_bucket_carry_the_emptiest() {
    let lim = |name: &str, shared: &str| {
        format!(
            r#"{{"name":"{name}","match":{{"method":{{"exact":"{name}"}}}},"route":{{"cluster":"v1"}},
               "rate_limit":{{"max_tokens":3,"fill_interval_ms":60000{shared}}}}}"#
        )
    };
    let json = |a: &str, b: &str| {
        format!(r#"{{"primary_cluster":"v1","services":[{{"service":"*","routes":[{a},{b}]}}]}}"#)
    };
    let old = table(&json(&lim("a", ""), &lim("b", r#","shared":"s""#)));
    let mut l = Limiters::new(&old, 0);
    let a = old.routes[0].limiter.unwrap();
    assert!((0..3).all(|_| l.take(&old, a, 1)), "a spent, b untouched");
    // Both routes now share one bucket: it starts as empty as "a" was, not as full as "b".
    let merged = table(&json(
        &lim("a", r#","shared":"s""#),
        &lim("b", r#","shared":"s""#),
    ));
    assert_eq!(merged.buckets.len(), 1);
    let mut c = Limiters::carried(&merged, &old, &l, 2);
    assert!(!c.take(&merged, 0, 2));
}

#[test]
fn the_retry_budget_is_envoys_max_of_share_and_minimum() {
    let t = table(T);
    // Envoy's defaults: 20 % of the detours in flight, at least 3.
    assert_eq!(t.retry_budget, RetryBudget::default());
    let b = t.retry_budget;
    assert!(b.allows(2, 0) && !b.allows(3, 0));
    assert!(!b.allows(3, 19), "20 % of 19 is 3.8: still 3");
    assert!(b.allows(3, 20) && !b.allows(4, 20));
    let strict = table(&T.replacen(
        r#""primary_cluster": "v1","#,
        r#""primary_cluster": "v1", "retry_budget": {"budget_percent": 0, "min_retry_concurrency": 2},"#,
        1,
    ));
    assert!(strict.retry_budget.allows(1, 1000) && !strict.retry_budget.allows(2, 1000));
    let bad = compile_err(&T.replacen(
        r#""primary_cluster": "v1","#,
        r#""primary_cluster": "v1", "retry_budget": {"budget_percent": 101},"#,
        1,
    ));
    assert!(bad.contains("routing.retry_budget.budget_percent"), "{bad}");
}

#[test]
fn bad_configs_are_refused_with_field_paths() {
    for (json, needle) in [
        (
            r#"{"primary_cluster":"v1","typo":1}"#,
            "unknown field `typo`",
        ),
        (r#"{"primary_cluster":""}"#, "routing.primary_cluster"),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[{"route":{}}]}]}"#,
            "routing.services[0].routes[0].route: exactly one of cluster, weighted",
        ),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[{"match":{"method":{"regex":"("}},"route":{"cluster":"a"}}]}]}"#,
            "routing.services[0].routes[0].match.method: bad regex",
        ),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[{"match":{"method":{"exact":"a","prefix":"b"}},"route":{"cluster":"a"}}]}]}"#,
            "exactly one of exact, prefix, regex",
        ),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[{"route":{"weighted":[{"cluster":"a","weight":0}]}}]}]}"#,
            "weights sum to 0",
        ),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[{"route":{"cluster":"a"},"rate_limit":{"max_tokens":0,"fill_interval_ms":1}}]}]}"#,
            "rate_limit",
        ),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[{"name":"a.b","route":{"cluster":"a"}}]}]}"#,
            "routes[0].name",
        ),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[]},{"service":"S","routes":[]}]}"#,
            "duplicate service",
        ),
        (
            r#"{"primary_cluster":"v1","services":[{"service":"S","routes":[{"route":{"cluster":"a"},"mirror":{"cluster":"m","percent":101}}]}]}"#,
            "mirror.percent",
        ),
    ] {
        let e = compile_err(json);
        assert!(e.contains(needle), "{json}: {e}");
    }
}

#[test]
fn filter_config_carries_routing_and_refuses_it_for_other_protocols() {
    let c = crate::FilterConfig::from_json(
        r#"{"protocol":"thrift","routing":{"primary_cluster":"v1","default":{"cluster":"v2"}}}"#,
    )
    .unwrap();
    let t = RouteTable::compile(c.routing.as_ref().unwrap()).unwrap();
    assert_eq!(t.primary(), "v1");
    assert_eq!(go(&t, None, "x", &[]).target, Target::Detour(1));
    let e = crate::FilterConfig::from_json(
        r#"{"protocol":"redis","routing":{"primary_cluster":"v1"}}"#,
    )
    .unwrap_err();
    assert_eq!(e.field, "routing");
    let e = crate::FilterConfig::from_json(
        r#"{"protocol":"dubbo","routing":{"primary_cluster":"v1","services":[{"service":"S","routes":[{"route":{"cluster":" "}}]}]}}"#,
    )
    .unwrap_err();
    assert_eq!(e.field, "routing.services[0].routes[0].route.cluster");
}

/// A framed strict-binary Thrift call with an empty args struct.
fn thrift_call(name: &str, seq: i32, kind: u8) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&(0x8001_0000u32 | u32::from(kind)).to_be_bytes());
    m.extend_from_slice(&(name.len() as u32).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.push(0); // STOP
    let mut f = (m.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&m);
    f
}

#[test]
fn thrift_frames_are_routed_and_answered_with_app_exceptions() {
    let t = table(T);
    let limits = meltemi_codec::Limits::default();
    let call = thrift_call("Calc:add", 7, 1);
    let mut rng = SplitMix64::new(3);
    let r = route_request(RpcProtocol::Thrift, &t, &call, &limits, &mut rng, |_| true).unwrap();
    let meltemi_codec::Decoded::Frame { frame, used } = r else {
        panic!("{r:?}")
    };
    assert_eq!(used, call.len());
    assert_eq!(frame.decision.target, Target::Detour(1));
    assert!(frame.two_way);
    // A prefix needs more.
    let r = route_request(
        RpcProtocol::Thrift,
        &t,
        &call[..9],
        &limits,
        &mut rng,
        |_| true,
    )
    .unwrap();
    assert!(matches!(r, meltemi_codec::Decoded::NeedMore(_)));
    // The error reply carries the seqid and name.
    let mut out = Vec::new();
    assert!(encode_failure(
        RpcProtocol::Thrift,
        &call,
        &limits,
        Failure::RateLimited,
        &mut out
    ));
    let meltemi_codec::Decoded::Frame { frame: f, used } =
        meltemi_codec::thrift::decode_response(&out, &limits).unwrap()
    else {
        panic!()
    };
    assert_eq!(used, out.len());
    let m = f.message.unwrap();
    assert_eq!((m.name, m.seq_id), ("Calc:add", 7));
    assert!(matches!(
        m.reply,
        Some(meltemi_codec::thrift::ReplyStatus::AppException(_))
    ));
    // Oneway calls expect nothing.
    let one = thrift_call("log", 8, 4);
    let r = route_request(RpcProtocol::Thrift, &t, &one, &limits, &mut rng, |_| true).unwrap();
    assert!(matches!(
        r,
        meltemi_codec::Decoded::Frame {
            frame: Routed { two_way: false, .. },
            ..
        }
    ));
}

#[test]
fn boundary_tracks_frames_across_every_split() {
    let mut stream = thrift_call("a", 1, 2);
    stream.extend_from_slice(&thrift_call("bb", 2, 2));
    let first = thrift_call("a", 1, 2).len();
    for i in 0..=stream.len() {
        let mut b = Boundary::default();
        b.feed(RpcProtocol::Thrift, &stream[..i]);
        assert_eq!(
            b.at_boundary(),
            i == 0 || i == first || i == stream.len(),
            "at {i}"
        );
        b.feed(RpcProtocol::Thrift, &stream[i..]);
        assert!(b.at_boundary());
        let mut c = ResponseCounter::default();
        let n =
            c.feed(RpcProtocol::Thrift, &stream[..i]) + c.feed(RpcProtocol::Thrift, &stream[i..]);
        assert_eq!(n, 2, "split at {i}");
    }
    // Dubbo: 16-byte header, body length at 12..16.
    let mut out = Vec::new();
    meltemi_codec::dubbo::encode_error_response(
        &mut out,
        9,
        meltemi_codec::dubbo::Status::ServerTimeout,
        "x",
    );
    let mut b = Boundary::default();
    b.feed(RpcProtocol::Dubbo, &out[..15]);
    assert!(!b.at_boundary());
    b.feed(RpcProtocol::Dubbo, &out[15..]);
    assert!(b.at_boundary());
    let mut c = ResponseCounter::default();
    let twice = [out.clone(), out].concat();
    assert_eq!(c.feed(RpcProtocol::Dubbo, &twice), 2);
}

fn capture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../codec/testdata/thrift/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Ends of the unframed messages of a captured stream, as the codec reads them.
fn unframed_ends(stream: &[u8], p: meltemi_codec::thrift::Protocol) -> Vec<usize> {
    let limits = meltemi_codec::Limits::default();
    let mut ends = Vec::new();
    let mut off = 0;
    while off < stream.len() {
        let r = meltemi_codec::thrift::decode_unframed(&stream[off..], p, &limits).unwrap();
        let meltemi_codec::Decoded::Frame { used, .. } = r else {
            panic!("{r:?} at {off}")
        };
        off += used;
        ends.push(off);
    }
    ends
}

const UNFRAMED: [(&str, meltemi_codec::thrift::Protocol); 2] = [
    ("binary-unframed", meltemi_codec::thrift::Protocol::Binary),
    ("compact-unframed", meltemi_codec::thrift::Protocol::Compact),
];

/// Unframed replies (Apache Thrift's `TBufferedTransport`, strict binary and compact): the
/// seven captured replies (success, declared exception, void, `TApplicationException`, an
/// 8 KB struct) are found byte by byte, all in one chunk, and split into two chunks at every
/// byte (inside the 8 KB reply at every 31st byte and its first and last 64: each split decodes
/// it whole again, and byte by byte already cuts it everywhere).
#[test]
fn unframed_replies_are_framed_at_every_split() {
    for (case, p) in UNFRAMED {
        let stream = capture(&format!("{case}.s2c.bin"));
        let ends = unframed_ends(&stream, p);
        assert_eq!(ends.len(), 7, "{case}");
        let (echo_start, echo_end) = (ends[4], ends[5]);
        let sampled = |i: usize| i < echo_start + 64 || i + 64 > echo_end || i.is_multiple_of(31);
        for i in (0..=stream.len()).filter(|&i| sampled(i)) {
            let mut b = Boundary::default();
            let first = b.feed(RpcProtocol::Thrift, &stream[..i]);
            assert_eq!(
                b.at_boundary(),
                i == 0 || ends.contains(&i),
                "{case} at {i}"
            );
            assert_eq!(first, ends.iter().filter(|&&e| e <= i).count() as u64);
            let second = b.feed(RpcProtocol::Thrift, &stream[i..]);
            assert!(b.at_boundary() && !b.lost(), "{case} split at {i}");
            assert_eq!(first + second, 7, "{case} split at {i}");
        }
        let mut b = Boundary::default();
        let mut c = ResponseCounter::default();
        for (i, byte) in stream.iter().enumerate() {
            b.feed(RpcProtocol::Thrift, std::slice::from_ref(byte));
            c.feed(RpcProtocol::Thrift, std::slice::from_ref(byte));
            assert_eq!(b.at_boundary(), ends.contains(&(i + 1)), "{case} byte {i}");
        }
        assert_eq!(c.frames, 7, "{case}");
        assert!(!c.broken());
        let mut c = ResponseCounter::default();
        assert_eq!(c.feed(RpcProtocol::Thrift, &stream), 7, "{case}");
    }
}

/// Unframed requests are routed one message at a time (the oneway `log` expects no answer), and
/// a local error answers each call in its own transport and protocol: an unframed
/// `TApplicationException` that a reply stream's tracker frames like any reply.
#[test]
fn unframed_requests_route_and_get_unframed_error_replies() {
    use meltemi_codec::thrift::{decode_unframed, ReplyStatus, Transport};
    let t = table(T);
    let limits = meltemi_codec::Limits::default();
    for (case, p) in UNFRAMED {
        let stream = capture(&format!("{case}.c2s.bin"));
        let mut rng = SplitMix64::new(5);
        let (mut off, mut two_way, mut errors) = (0, 0, Vec::new());
        while off < stream.len() {
            let rest = &stream[off..];
            let r = route_request(RpcProtocol::Thrift, &t, rest, &limits, &mut rng, |_| true);
            let Ok(meltemi_codec::Decoded::Frame { frame, used }) = r else {
                panic!("{case} at {off}: {r:?}")
            };
            // Every prefix of the message needs more.
            for cut in [0, 1, used / 2, used - 1] {
                let r = route_request(
                    RpcProtocol::Thrift,
                    &t,
                    &rest[..cut],
                    &limits,
                    &mut rng,
                    |_| true,
                );
                assert!(
                    matches!(r, Ok(meltemi_codec::Decoded::NeedMore(_))),
                    "{case} {off}+{cut}"
                );
            }
            two_way += u64::from(frame.two_way);
            if frame.two_way {
                assert!(encode_failure(
                    RpcProtocol::Thrift,
                    &rest[..used],
                    &limits,
                    Failure::Timeout,
                    &mut errors
                ));
            }
            off += used;
        }
        assert_eq!(two_way, 7, "{case}: 8 messages, one oneway");
        let mut b = Boundary::default();
        assert_eq!(b.feed(RpcProtocol::Thrift, &errors), 7, "{case}");
        assert!(b.at_boundary());
        let meltemi_codec::Decoded::Frame { frame, used } =
            decode_unframed(&errors, p, &limits).unwrap()
        else {
            panic!()
        };
        assert_eq!((frame.transport, frame.protocol), (Transport::Unframed, p));
        let m = frame.message.unwrap();
        assert_eq!((m.name, m.seq_id), ("add", 1));
        let Some(ReplyStatus::AppException(x)) = m.reply else {
            panic!("{m:?}")
        };
        assert_eq!(x.message, Some(&b"meltemi: upstream timeout"[..]));
        assert_eq!(x.kind.as_i32(), 6);
        assert!(used < errors.len());
    }
}

/// Broken unframed replies lose the stream (never a panic, never at a boundary again): bad
/// structure, a reply past the frame limit while it is still arriving, and an unframed reply on
/// a stream that started framed.
#[test]
fn broken_unframed_replies_lose_the_stream() {
    let stream = capture("binary-unframed.s2c.bin");
    let ends = unframed_ends(&stream, meltemi_codec::thrift::Protocol::Binary);
    // The first reply's first field type made unknown (byte after name and seqid).
    let mut bad = stream.clone();
    let name_len = u32::from_be_bytes([bad[4], bad[5], bad[6], bad[7]]) as usize;
    bad[8 + name_len + 4] = 0x7f;
    let mut c = ResponseCounter::default();
    assert_eq!(c.feed(RpcProtocol::Thrift, &bad), 0);
    assert!(c.broken());
    // The echo reply (8 KB) is past a 4 KB limit before it is whole.
    let limits = meltemi_codec::Limits {
        max_frame: 4096,
        ..meltemi_codec::Limits::default()
    };
    let mut b = Boundary::new(limits);
    let echo_end = ends[5];
    assert_eq!(b.feed(RpcProtocol::Thrift, &stream[..echo_end - 1000]), 5);
    assert!(b.lost() && !b.at_boundary());
    assert_eq!(b.feed(RpcProtocol::Thrift, &stream[echo_end - 1000..]), 0);
    // Framed first, then an unframed reply.
    let mut b = Boundary::default();
    let framed = thrift_call("a", 1, 2);
    assert_eq!(b.feed(RpcProtocol::Thrift, &framed), 1);
    b.feed(RpcProtocol::Thrift, &stream[..ends[0]]);
    assert!(b.lost());
    // Unframed first, then a frame length.
    let mut b = Boundary::default();
    assert_eq!(b.feed(RpcProtocol::Thrift, &stream[..ends[0]]), 1);
    b.feed(RpcProtocol::Thrift, &framed);
    assert!(b.lost());
}
