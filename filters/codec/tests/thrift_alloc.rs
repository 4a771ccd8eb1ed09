//! Proves the Thrift decode path does not allocate: a counting global allocator around
//! every captured frame, without allocating once (the counting allocator is `tests/common`).

mod common;
use common::allocs;

use meltemi_codec::thrift::{decode, decode_unframed, Protocol};
use meltemi_codec::{Decoded, Limits};

#[test]
fn decoding_captured_traffic_does_not_allocate() {
    let dir = format!("{}/testdata/thrift", env!("CARGO_MANIFEST_DIR"));
    let mut streams = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bin") {
            let lax = p.to_string_lossy().contains("lax-unframed");
            streams.push((lax, std::fs::read(&p).unwrap()));
        }
    }
    assert_eq!(streams.len(), 20);
    let limits = Limits::default();
    let before = allocs();
    let mut frames = 0usize;
    for (lax, s) in &streams {
        let mut off = 0;
        while off < s.len() {
            let d = if *lax {
                decode_unframed(&s[off..], Protocol::LaxBinary, &limits)
            } else {
                decode(&s[off..], &limits)
            };
            // A prefix (NeedMore path) must not allocate either.
            let _ = decode(&s[off..off + 3.min(s.len() - off)], &limits);
            match d {
                Ok(Decoded::Frame { frame, used }) => {
                    if let Some(h) = frame.header {
                        frames += h.headers().count() + h.transforms().count();
                    }
                    off += used;
                    frames += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let after = allocs();
    assert!(frames > 150);
    assert_eq!(after - before, 0, "decode allocated");
}
