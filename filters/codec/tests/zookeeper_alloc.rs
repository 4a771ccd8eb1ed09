//! Proves the ZooKeeper decode path does not allocate: a counting global allocator around
//! every captured frame, without allocating once (the counting allocator is `tests/common`).

mod common;
use common::allocs;
use meltemi_codec::zookeeper::{Connection, ReplyKind, Request, Response};
use meltemi_codec::{Decoded, Limits};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/testdata/zookeeper/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn decode_does_not_allocate() {
    let l = Limits::default();
    let streams: Vec<(Vec<u8>, bool)> = (1..=3)
        .flat_map(|n| {
            [
                (data(&format!("conn{n}.c2s.bin")), true),
                (data(&format!("conn{n}.s2c.bin")), false),
            ]
        })
        .collect();
    let before = allocs();
    let mut frames = 0usize;
    let mut sink = 0usize;
    for (s, req) in &streams {
        let mut c = Connection::new();
        let mut rest = &s[..];
        while !rest.is_empty() {
            let used = if *req {
                match c.decode_request(rest, &l).unwrap() {
                    Decoded::Frame { frame, used } => {
                        if let Request::Op(o) = frame {
                            sink += o.path().map_or(0, str::len);
                            if let Some(m) = o.multi() {
                                sink += m.map(|x| x.path.map_or(0, str::len)).sum::<usize>();
                            }
                        }
                        used
                    }
                    Decoded::NeedMore(_) => unreachable!(),
                }
            } else {
                match c.decode_response(rest, &l).unwrap() {
                    Decoded::Frame { frame, used } => {
                        if let Response::Reply(r) = frame {
                            if let ReplyKind::Watch(e) = r.kind {
                                sink += e.path.len();
                            }
                        }
                        used
                    }
                    Decoded::NeedMore(_) => unreachable!(),
                }
            };
            frames += 1;
            rest = &rest[used..];
        }
    }
    let after = allocs();
    assert_eq!(after - before, 0, "decode allocated");
    assert!(frames > 100 && sink > 0);
    // The counter does count.
    let v: Vec<u8> = Vec::with_capacity(frames);
    assert!(allocs() > after && v.capacity() >= frames);
}
