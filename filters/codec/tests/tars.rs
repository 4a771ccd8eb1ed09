//! TARS codec tests on packets captured from the real tars4nodejs framework
//! (testdata/tars/README.md says how and lists every field checked here).

use meltemi_codec::tars::{
    self, decode_request, decode_request_head, decode_response, decode_response_head,
    encode_error_response, error_response_len, Error, Request, Response,
};
use meltemi_codec::{Decoded, Limits, Need};

const SERVANT: &[u8] = b"Meltemi.CalcServer.CalcObj";
const CASES: [(&str, i16); 3] = [("tars", 1), ("tup2", 2), ("tup3", 3)];

fn testdata(name: &str) -> &'static [u8] {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tars/");
    let v = std::fs::read(format!("{dir}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    Vec::leak(v)
}

fn lim() -> Limits {
    Limits::default()
}

/// Splits a stream into its packets by the length prefix.
fn packets(stream: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        v.push(&rest[..n]);
        rest = &rest[n..];
    }
    v
}

fn requests(case: &str) -> Vec<Request<'static>> {
    let mut rest = testdata(&format!("{case}.c2s.bin"));
    let mut v = Vec::new();
    while !rest.is_empty() {
        let (r, used) = decode_request(rest, &lim()).unwrap().frame().unwrap();
        v.push(r);
        rest = &rest[used..];
    }
    v
}

fn responses(case: &str) -> Vec<Response<'static>> {
    let mut rest = testdata(&format!("{case}.s2c.bin"));
    let mut v = Vec::new();
    while !rest.is_empty() {
        let (r, used) = decode_response(rest, &lim()).unwrap().frame().unwrap();
        v.push(r);
        rest = &rest[used..];
    }
    v
}

#[test]
fn captured_requests() {
    let want = [
        ("add", 2, 0),
        ("add", 3, 0),
        ("echo", 4, 0),
        ("echo", 5, 0),
        ("fail", 6, 0),
        ("log", 7, 1),
        ("nosuch", 8, 0),
    ];
    for (case, version) in CASES {
        let reqs = requests(case);
        assert_eq!(reqs.len(), want.len(), "{case}");
        for (r, (func, id, ptype)) in reqs.iter().zip(want) {
            assert_eq!(r.version, version, "{case}");
            assert_eq!(r.is_tup(), version != 1);
            assert_eq!(r.servant, SERVANT);
            assert_eq!(r.servant_name(), Some("Meltemi.CalcServer.CalcObj"));
            assert_eq!(r.function_name(), Some(func), "{case}");
            assert_eq!(r.request_id, id, "{case} {func}");
            assert_eq!(r.packet_type, ptype, "{case} {func}");
            assert_eq!(r.is_oneway(), ptype == 1);
            assert_eq!(r.message_type, 0);
            assert_eq!(r.timeout_ms, 3000);
            assert!(r.status.is_empty());
            if case == "tars" {
                assert_eq!(r.context.len(), 2);
                assert_eq!(r.context.get_str("user"), Some("alice"));
                assert_eq!(r.context.get("canary"), Some(&b"1"[..]));
                assert_eq!(r.context.get("nope"), None);
                let all: Vec<_> = r.context.iter().collect();
                assert_eq!(all, [(&b"user"[..], &b"alice"[..]), (b"canary", b"1")]);
            } else {
                assert!(r.context.is_empty());
            }
        }
        // The 20,000-byte echo argument sits in sBuffer whole.
        assert!(reqs[3].buffer.len() > 20_000, "{case}");
        let tail = &reqs[3].buffer[reqs[3].buffer.len() - 10..];
        if case == "tars" {
            assert_eq!(tail, b"xxxxxxxxxx");
        }
    }
}

#[test]
fn captured_responses() {
    let want = [(2, 0), (3, 0), (4, 0), (5, 0), (6, -9), (8, -3)];
    for (case, version) in CASES {
        let resps = responses(case);
        assert_eq!(resps.len(), want.len(), "{case}");
        for (r, (id, ret)) in resps.iter().zip(want) {
            assert_eq!(r.version, version);
            assert_eq!(r.is_tup(), version != 1);
            assert_eq!(r.request_id, id, "{case}");
            assert_eq!(r.ret, Some(ret), "{case} {id}");
            assert_eq!(r.packet_type, 0);
            assert_eq!(r.result_desc, Some(&b""[..]), "{case} {id}");
            if version == 1 {
                assert!(r.servant.is_empty() && r.function.is_empty() && r.status.is_empty());
            } else {
                assert_eq!(r.servant, SERVANT);
                assert_eq!(r.status.len(), 2);
                assert!(r.status.get(tars::STATUS_RESULT_CODE).is_some());
            }
        }
        // echo's result: "v1:" + the argument (tag 2 of a TARS result struct).
        assert!(
            resps[2].buffer.windows(8).any(|w| w == b"v1:xxxxx"),
            "{case}"
        );
        assert!(resps[3].buffer.len() > 20_000);
        if version == 1 {
            // add(0, 2): return 0 (ZERO), c = 2 at tag 3.
            assert_eq!(resps[0].buffer, [0x0c, 0x30, 0x02]);
        }
    }
}

/// Every prefix of every captured stream asks for more (the exact total once the length is
/// known) and never decodes a different frame; a split at every point decodes the same.
#[test]
fn every_prefix_needs_more_and_splits_agree() {
    for (case, _) in CASES {
        for (dir, request) in [("c2s", true), ("s2c", false)] {
            let stream = testdata(&format!("{case}.{dir}.bin"));
            for p in packets(stream) {
                let step = 1 + p.len() / 2000;
                for cut in (0..p.len()).step_by(step).chain([p.len() - 1]) {
                    let need = if request {
                        match decode_request(&p[..cut], &lim()).unwrap() {
                            Decoded::NeedMore(n) => n,
                            other => panic!("{case} {cut}: {other:?}"),
                        }
                    } else {
                        match decode_response(&p[..cut], &lim()).unwrap() {
                            Decoded::NeedMore(n) => n,
                            other => panic!("{case} {cut}: {other:?}"),
                        }
                    };
                    if cut < 4 {
                        assert_eq!(need, Need::AtLeast(4));
                    } else {
                        assert_eq!(need, Need::Exact(p.len()));
                    }
                    assert!(need.bytes() > cut);
                }
            }
            // Split the whole stream at every point: the packets before the split plus the
            // ones after, decoded from the held bytes, are the stream's packets.
            let whole = packets(stream).len();
            for split in (0..stream.len()).step_by(97) {
                let mut held = stream[..split].to_vec();
                let mut n = 0;
                let mut drain = |held: &mut Vec<u8>| loop {
                    let used = if request {
                        decode_request(held, &lim()).unwrap().frame().map(|f| f.1)
                    } else {
                        decode_response(held, &lim()).unwrap().frame().map(|f| f.1)
                    };
                    match used {
                        Some(u) => {
                            held.drain(..u);
                            n += 1;
                        }
                        None => break,
                    }
                };
                drain(&mut held);
                held.extend_from_slice(&stream[split..]);
                drain(&mut held);
                assert!(held.is_empty());
                assert_eq!(n, whole, "{case} {dir} split {split}");
            }
        }
    }
}

#[test]
fn trailing_bytes_are_not_consumed() {
    let p = packets(testdata("tars.c2s.bin"))[0];
    let mut two = p.to_vec();
    two.extend_from_slice(&[0, 0, 0, 9, 1]);
    let (r, used) = decode_request(&two, &lim()).unwrap().frame().unwrap();
    assert_eq!(used, p.len());
    assert_eq!(r.function, b"add");
    assert_eq!(
        decode_request(&two[used..], &lim()).unwrap(),
        Decoded::NeedMore(Need::Exact(9))
    );
}

/// Head mode: from the first bytes of a packet too big to hold, the routing and metric
/// fields, and the whole length as `used`.
#[test]
fn head_mode_reads_the_fields_before_the_buffer() {
    for (case, version) in CASES {
        let big_req = packets(testdata(&format!("{case}.c2s.bin")))[3];
        let big_resp = packets(testdata(&format!("{case}.s2c.bin")))[3];
        // Too short for the names: ask for more, never for 0 or for less than held.
        for cut in 0..40 {
            match decode_request_head(&big_req[..cut], &lim()).unwrap() {
                Decoded::NeedMore(n) => assert!(n.bytes() > cut),
                Decoded::Frame { .. } => panic!("{case} {cut}"),
            }
        }
        for cut in [80, 200, 4096, big_req.len() - 1] {
            let (r, used) = decode_request_head(&big_req[..cut], &lim())
                .unwrap()
                .frame()
                .unwrap();
            assert_eq!(used, big_req.len());
            assert_eq!(
                (r.function, r.request_id, r.version),
                (&b"echo"[..], 5, version)
            );
            assert!(r.buffer.is_empty() && r.context.is_empty());
        }
        let cut = if version == 1 { 20 } else { 80 };
        let (r, used) = decode_response_head(&big_resp[..cut], &lim())
            .unwrap()
            .frame()
            .unwrap();
        assert_eq!((r.request_id, used), (5, big_resp.len()));
        assert_eq!(r.ret, if version == 1 { Some(0) } else { None });
        // Held whole, head mode is the whole decode.
        let whole = decode_response_head(big_resp, &lim()).unwrap();
        assert_eq!(whole, decode_response(big_resp, &lim()).unwrap());
    }
}

/// The framework's own error answers (request 6: fail -> -9; request 8: nosuch -> -3) are what
/// the encoder writes, byte for byte, in TARS and TUP.
#[test]
fn error_responses_match_the_framework() {
    for (case, _) in CASES {
        let reqs = requests(case);
        let resps = packets(testdata(&format!("{case}.s2c.bin")));
        for (req, want, code) in [(&reqs[4], resps[4], -9), (&reqs[6], resps[5], -3)] {
            let mut out = Vec::new();
            encode_error_response(&mut out, req, code, "");
            assert_eq!(out.len(), error_response_len(req, code, ""));
            assert_eq!(out, want, "{case} {code}");
        }
        // With a message: it round-trips.
        let mut out = vec![7u8];
        let msg = "rate limited by meltemi ".repeat(20);
        encode_error_response(&mut out, &reqs[0], tars::ret::SERVER_OVERLOAD, &msg);
        assert_eq!(out.len(), 1 + error_response_len(&reqs[0], -9, &msg));
        let (r, used) = decode_response(&out[1..], &lim()).unwrap().frame().unwrap();
        assert_eq!(used, out.len() - 1);
        assert_eq!((r.request_id, r.ret), (2, Some(-9)));
        assert_eq!(r.result_desc, Some(msg.as_bytes()));
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn err_req(body: &[u8]) -> Error {
    decode_request(&frame(body), &lim()).unwrap_err()
}

#[test]
fn malformed_packets_name_the_rule_and_offset() {
    // iVersion 1, id 1 (tag 4), servant "s" (tag 5), function "f" (tag 6).
    let ok = [0x10, 0x01, 0x40, 0x01, 0x56, 0x01, b's', 0x66, 0x01, b'f'];
    let okf = frame(&ok);
    let (r, _) = decode_request(&okf, &lim()).unwrap().frame().unwrap();
    assert_eq!(
        (r.servant, r.function, r.timeout_ms),
        (&b"s"[..], &b"f"[..], 0)
    );
    assert_eq!(
        decode_request(&[0, 0, 0, 3], &lim()).unwrap_err(),
        Error::FrameTooShort { len: 3 }
    );
    assert_eq!(
        decode_request(&[0x7f, 0, 0, 0], &lim()).unwrap_err(),
        Error::FrameTooLarge {
            len: 0x7f00_0000,
            max: lim().max_frame
        }
    );
    assert_eq!(err_req(&ok[..8]), Error::Truncated { offset: 11 });
    assert_eq!(
        err_req(&ok[..7]),
        Error::MissingField { tag: 6, offset: 11 }
    );
    assert_eq!(err_req(&ok[..6]), Error::Truncated { offset: 8 });
    assert_eq!(err_req(&[0x1e]), Error::BadType { offset: 4, ty: 14 });
    assert_eq!(
        err_req(&[0x16, 0x00]),
        Error::WrongType { offset: 4, ty: 6 }
    );
    // iVersion 70000 does not fit a short.
    assert_eq!(
        err_req(&[0x12, 0x00, 0x01, 0x11, 0x70]),
        Error::OutOfRange { offset: 4 }
    );
    // A string4 of 2^31-1 bytes in a 9-byte body.
    assert_eq!(
        err_req(&[0x57, 0x7f, 0xff, 0xff, 0xff]),
        Error::BadLength { offset: 4 }
    );
    // A negative map count.
    assert_eq!(err_req(&[0x98, 0x00, 0xff]), Error::BadLength { offset: 5 });
    // A context map holding an int where a string belongs.
    assert_eq!(
        err_req(&[0x98, 0x00, 0x01, 0x00, 0x01, 0x10, 0x01]),
        Error::WrongType { offset: 7, ty: 0 }
    );
    // Unknown tags are skipped, nested structs included, up to the depth limit.
    let mut deep = ok.to_vec();
    deep.extend_from_slice(&[0xfa, 20, 0x0b]);
    assert!(decode_request(&frame(&deep), &lim()).is_ok());
    let mut too_deep = ok.to_vec();
    too_deep.extend(std::iter::repeat_n(0x0a, 40));
    let e = err_req(&too_deep);
    assert!(matches!(e, Error::TooDeep { .. }), "{e:?}");
    assert!(e.offset() >= 14 && !e.to_string().is_empty());
    // A name longer than MAX_NAME.
    let mut long = vec![0x10, 0x01, 0x40, 0x01, 0x57];
    long.extend_from_slice(&2000u32.to_be_bytes());
    long.extend(std::iter::repeat_n(b'a', 2000));
    assert_eq!(err_req(&long), Error::NameTooLong { offset: 8 });
    // A response without a request id.
    assert_eq!(
        decode_response(&frame(&[0x10, 0x01]), &lim()).unwrap_err(),
        Error::MissingField { tag: 3, offset: 6 }
    );
}

#[test]
fn limits_are_checked_before_waiting() {
    let small = Limits {
        max_frame: 100,
        max_depth: 2,
    };
    let big = packets(testdata("tars.c2s.bin"))[3];
    // The length alone is refused: no waiting for 20 KB that will never be accepted.
    assert_eq!(
        decode_request(&big[..4], &small).unwrap_err(),
        Error::FrameTooLarge {
            len: big.len(),
            max: 100
        }
    );
    let ok = packets(testdata("tars.c2s.bin"))[0];
    assert!(decode_request(ok, &small).is_ok());
}
