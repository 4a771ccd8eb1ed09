//! Proves the Redis decode path does not allocate: a counting global allocator around
//! every captured frame, without allocating once (the counting allocator is `tests/common`).

mod common;
use common::allocs;
use meltemi_codec::redis::{decode_request, decode_response, Command};
use meltemi_codec::{Decoded, Limits};

#[test]
fn decode_does_not_allocate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/redis");
    let mut files: Vec<(bool, Vec<u8>)> = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().path();
        let n = name.to_string_lossy().into_owned();
        if n.ends_with(".bin") {
            files.push((n.ends_with(".c2s.bin"), std::fs::read(&name).unwrap()));
        }
    }
    let extra: Vec<u8> =
        b"*?\r\n|1\r\n+a\r\n+b\r\n$?\r\n;2\r\nhi\r\n;0\r\n%1\r\n:1\r\n#t\r\n.\r\n".to_vec();
    let limits = Limits::default();
    let before = allocs();
    let mut frames = 0usize;
    let mut keys = 0usize;
    for (is_req, buf) in &files {
        let mut p = 0;
        while p < buf.len() {
            let used = if *is_req {
                match decode_request(&buf[p..], &limits).unwrap() {
                    Decoded::Frame { frame, used } => {
                        keys +=
                            usize::from(frame.key.is_some() && frame.command != Command::Unknown);
                        keys += frame.args().count();
                        used
                    }
                    Decoded::NeedMore(_) => unreachable!(),
                }
            } else {
                match decode_response(&buf[p..], &limits).unwrap() {
                    Decoded::Frame { used, .. } => used,
                    Decoded::NeedMore(_) => unreachable!(),
                }
            };
            // A prefix (NeedMore) and a broken tail (error) must not allocate either.
            let _ = decode_response(&buf[p..p + used / 2], &limits);
            let _ = decode_request(&buf[p..p + used / 2], &limits);
            frames += 1;
            p += used;
        }
    }
    assert!(matches!(
        decode_response(&extra, &limits),
        Ok(Decoded::Frame { .. })
    ));
    assert!(decode_response(b"*1\r\nX", &limits).is_err());
    assert!(decode_request(b"get \"x", &limits).is_ok());
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "decode allocated ({frames} frames, {keys} keys)"
    );
    assert!(frames > 2000);
}
