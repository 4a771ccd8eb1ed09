//! Proves the TARS decode path does not allocate: a counting global allocator around decoding
//! every captured packet, whole and in head mode, and iterating its maps.

mod common;
use common::allocs;

use meltemi_codec::tars;
use meltemi_codec::Limits;

#[test]
fn decode_does_not_allocate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tars/");
    let mut streams = Vec::new();
    for case in ["tars", "tup2", "tup3"] {
        for d in ["c2s", "s2c"] {
            streams.push((
                d == "c2s",
                std::fs::read(format!("{dir}{case}.{d}.bin")).unwrap(),
            ));
        }
    }
    let limits = Limits::default();
    let before = allocs();
    let mut n = 0usize;
    for (request, s) in &streams {
        let mut rest = &s[..];
        while !rest.is_empty() {
            let used = if *request {
                let _ = tars::decode_request_head(&rest[..rest.len().min(64)], &limits);
                let (r, used) = tars::decode_request(rest, &limits)
                    .unwrap()
                    .frame()
                    .unwrap();
                n += r.context.iter().count() + usize::from(r.context.get("user").is_some());
                used
            } else {
                let _ = tars::decode_response_head(&rest[..rest.len().min(64)], &limits);
                let (r, used) = tars::decode_response(rest, &limits)
                    .unwrap()
                    .frame()
                    .unwrap();
                n += r.status.iter().count();
                used
            };
            rest = &rest[used..];
        }
    }
    let after = allocs();
    assert!(n > 20, "{n}");
    assert_eq!(after - before, 0, "the decode path allocated");
}
