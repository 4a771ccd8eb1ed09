#![no_main]
//! ZooKeeper codec fuzz target.
//!
//! The first byte picks the direction and the starting phase; the rest is a byte stream decoded
//! frame by frame through a `Connection`, the way the engine drives it. Invariants: no panic;
//! `used` is in 1..=input; "need more" asks for more than the input holds and never 0; every
//! strict prefix of a decoded frame (outside the unframed four-letter-word phase) is "need more",
//! never a frame or an error; a frame decodes the same with or without the bytes after it.
use libfuzzer_sys::fuzz_target;
use meltemi_codec::zookeeper::{
    decode_request, decode_response, Connection, Phase, Request, Response,
};
use meltemi_codec::{Decoded, Limits};

fn check_need(n: usize, have: usize) {
    assert!(n != 0, "need 0");
    assert!(n > have, "need {n} but {have} held");
}

fn touch_req(r: &Request<'_>) -> usize {
    match r {
        Request::Op(o) => {
            let mut n = o.op.as_str().len() + o.path().map_or(0, str::len);
            if let Some(m) = o.multi() {
                for s in m {
                    n += s.op.as_str().len() + s.path.map_or(0, str::len);
                }
            }
            n
        }
        Request::Connect(c) => c.passwd.len(),
        Request::FourLetter(w) => w.as_str().len(),
        Request::Raw(b) => b.len(),
    }
}

fn touch_resp(r: &Response<'_>) -> usize {
    match r {
        Response::Reply(y) => y.err.as_str().len() + y.kind.as_str().len() + y.body.len(),
        Response::Connect(c) => c.passwd.len(),
        Response::Raw(b) => b.len(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let requests = sel & 1 == 0;
    let mut conn = if sel & 2 == 0 {
        Connection::new()
    } else {
        Connection::in_session()
    };
    let limits = Limits {
        max_frame: if sel & 4 == 0 { 1 << 20 } else { 64 },
        max_depth: 8,
    };
    let mut rest = stream;
    let mut sink = 0usize;
    // Bounded: every iteration consumes at least one byte.
    while !rest.is_empty() {
        let phase = if requests {
            conn.request_phase()
        } else {
            conn.response_phase()
        };
        let used = if requests {
            match conn.decode_request(rest, &limits) {
                Err(e) => {
                    sink += e.to_string().len();
                    break;
                }
                Ok(Decoded::NeedMore(n)) => {
                    check_need(n.bytes(), rest.len());
                    break;
                }
                Ok(Decoded::Frame { frame, used }) => {
                    assert!(used >= 1 && used <= rest.len());
                    sink += touch_req(&frame);
                    let alone = decode_request(&rest[..used], phase, &limits).unwrap();
                    assert_eq!(alone, Decoded::Frame { frame, used });
                    if phase != Phase::Raw {
                        for k in 0..used {
                            match decode_request(&rest[..k], phase, &limits) {
                                Ok(Decoded::NeedMore(n)) => check_need(n.bytes(), k),
                                other => panic!("prefix {k} of {used}: {other:?}"),
                            }
                        }
                    }
                    used
                }
            }
        } else {
            match conn.decode_response(rest, &limits) {
                Err(e) => {
                    sink += e.to_string().len();
                    break;
                }
                Ok(Decoded::NeedMore(n)) => {
                    check_need(n.bytes(), rest.len());
                    break;
                }
                Ok(Decoded::Frame { frame, used }) => {
                    assert!(used >= 1 && used <= rest.len());
                    sink += touch_resp(&frame);
                    let alone = decode_response(&rest[..used], phase, &limits).unwrap();
                    assert_eq!(alone, Decoded::Frame { frame, used });
                    if phase != Phase::Raw {
                        for k in 0..used {
                            match decode_response(&rest[..k], phase, &limits) {
                                Ok(Decoded::NeedMore(n)) => check_need(n.bytes(), k),
                                other => panic!("prefix {k} of {used}: {other:?}"),
                            }
                        }
                    }
                    used
                }
            }
        };
        rest = &rest[used..];
    }
    std::hint::black_box(sink);
});
