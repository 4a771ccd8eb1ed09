//! Proves the Dubbo decode path does not allocate: a counting global allocator around decoding
//! every captured frame, without allocating once (the counting allocator is `tests/common`).

mod common;
use common::allocs;

use meltemi_codec::dubbo::{self, Message, RequestPayload, ResponsePayload};
use meltemi_codec::Limits;

#[test]
fn decode_does_not_allocate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/dubbo/");
    let mut frames = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bin") {
            frames.push(std::fs::read(p).unwrap());
        }
    }
    assert!(frames.len() >= 20);
    let limits = Limits::default();
    let before = allocs();
    let mut entries = 0usize;
    for f in &frames {
        for cut in [0, 10, 16, f.len() - 1] {
            let _ = dubbo::decode(&f[..cut], &limits);
        }
        let _ = dubbo::decode_header(f, &limits).unwrap();
        let (m, _) = dubbo::decode(f, &limits).unwrap().frame().unwrap();
        let att = match m {
            Message::Request(r) => match r.payload {
                RequestPayload::Invocation(inv) => inv.attachments,
                _ => None,
            },
            Message::Response(r) => match r.payload {
                ResponsePayload::Result(res) => {
                    let _ = (res.exception_class(), res.exception_message());
                    res.attachments
                }
                _ => None,
            },
        };
        if let Some(a) = att {
            entries += a.iter().count();
            let _ = a.get("group");
        }
    }
    let after = allocs();
    assert!(entries > 30, "{entries}");
    assert_eq!(
        after - before,
        0,
        "decode allocated {} times",
        after - before
    );
}
