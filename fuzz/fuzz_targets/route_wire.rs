#![no_main]
//! Routing wire fuzz target: the response-stream tracker (`Boundary`) that decides where the
//! module may splice a detour's answer, the request router and the local error encoder, on
//! arbitrary bytes. Invariants: no panic; the frames counted and the lost/at-boundary state do
//! not depend on how the stream is cut into reads; a lost stream stays lost and counts nothing
//! more; a routed frame's length is within its input; an error answer to a routed request
//! decodes as one frame of the same protocol.
use libfuzzer_sys::fuzz_target;
use meltemi_codec::{dubbo, thrift, Decoded, Limits};
use meltemi_engine::route::{
    encode_failure, route_request, Boundary, Failure, RawRouting, RouteTable, RpcProtocol,
    SplitMix64,
};

fn table() -> RouteTable {
    let raw: RawRouting = serde_json::from_str(
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[
            {"name":"m","match":{"method":{"prefix":"a"}},"route":{"cluster":"v2"}},
            {"name":"h","match":{"attributes":{"x":{"exact":"1"}}},"route":{"weighted":[{"cluster":"v1","weight":1},{"cluster":"v3","weight":1}]}},
            {"name":"l","route":{"cluster":"v1"},"rate_limit":{"max_tokens":1,"fill_interval_ms":1000}}]}]}"#,
    )
    .expect("table json");
    RouteTable::compile(&raw).expect("table compiles")
}

/// Feeds `input` in reads cut at the offsets `cuts` says; returns (frames, lost, at boundary).
fn track(proto: RpcProtocol, limits: Limits, input: &[u8], cuts: &[u8]) -> (u64, bool, bool) {
    let mut b = Boundary::new(limits);
    let mut frames = 0;
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let step = cuts.get(i).map_or(rest.len(), |&c| usize::from(c) % 17 + 1);
        let (now, later) = rest.split_at(step.min(rest.len()));
        let was_lost = b.lost();
        let n = b.feed(proto, now);
        if was_lost {
            assert_eq!(n, 0, "a lost stream counts nothing");
            assert!(b.lost(), "a lost stream stays lost");
        }
        frames += n;
        rest = later;
        i += 1;
    }
    (frames, b.lost(), b.at_boundary())
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let proto = if ctl & 1 == 0 { RpcProtocol::Thrift } else { RpcProtocol::Dubbo };
    let limits = Limits {
        max_frame: if ctl & 2 != 0 { 512 } else { 1 << 20 },
        ..Limits::default()
    };
    // The first bytes choose how reads are cut; the rest is the stream.
    let ncuts = usize::from(ctl >> 4).min(rest.len());
    let (cuts, input) = rest.split_at(ncuts);
    let whole = track(proto, limits, input, &[]);
    for (how, other) in [
        ("cut reads", track(proto, limits, input, cuts)),
        ("byte by byte", track(proto, limits, input, &vec![0u8; input.len()])),
    ] {
        // Frames and splice points agree however the stream is read. A broken unframed reply
        // may be found only once the codec's lower bound of its length has arrived (before
        // that it is a reply not yet whole: not at a boundary either), so a split stream may
        // be "pending" where one read found it lost, never the other way round.
        assert_eq!(whole.0, other.0, "frames: one read vs {how}");
        assert_eq!(whole.2, other.2, "at boundary: one read vs {how}");
        assert!(whole.1 || !other.1, "lost only when split: {how}");
    }

    // The same bytes as client requests: route them one frame at a time.
    let t = table();
    let mut rng = SplitMix64::new(u64::from(ctl));
    let mut off = 0;
    for _ in 0..64 {
        let Ok(Decoded::Frame { frame, used }) =
            route_request(proto, &t, &input[off..], &limits, &mut rng, |_| ctl & 4 == 0)
        else {
            break;
        };
        assert!(used > 0 && used <= input.len() - off && frame.len == used);
        let mut out = Vec::new();
        if encode_failure(proto, &input[off..off + used], &limits, Failure::RateLimited, &mut out) {
            let big = Limits::default();
            match proto {
                RpcProtocol::Thrift => {
                    let d = thrift::decode(&out, &big);
                    let unframed = [thrift::Protocol::Binary, thrift::Protocol::Compact]
                        .iter()
                        .any(|&p| {
                            matches!(thrift::decode_unframed(&out, p, &big),
                                Ok(Decoded::Frame { used, .. }) if used == out.len())
                        });
                    assert!(
                        matches!(d, Ok(Decoded::Frame { used, .. }) if used == out.len()) || unframed,
                        "error reply does not decode: {out:?}"
                    );
                }
                RpcProtocol::Dubbo => {
                    assert!(matches!(dubbo::decode(&out, &big),
                        Ok(Decoded::Frame { used, .. }) if used == out.len()));
                }
            }
        }
        off += used;
        if off >= input.len() {
            break;
        }
    }
});
