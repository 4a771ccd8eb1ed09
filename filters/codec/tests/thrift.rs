//! Thrift codec tests on traffic captured from Apache Thrift's Python library (see
//! `testdata/thrift/README.md` and `scripts/capture/thrift_capture.py`).

use meltemi_codec::thrift::{
    decode, decode_unframed, AppException, AppExceptionReply, AppExceptionType, Error, Frame,
    MessageType, Protocol, ReplyStatus, Transport,
};
use meltemi_codec::{Decoded, Limits, Need};

fn data(name: &str) -> Vec<u8> {
    let p = format!("{}/testdata/thrift/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Every capture: (case, transport, protocol, multiplexed, THeader with client headers, zlib).
const CASES: &[(&str, Transport, Protocol, bool, bool, bool)] = &[
    (
        "binary-framed",
        Transport::Framed,
        Protocol::Binary,
        false,
        false,
        false,
    ),
    (
        "binary-unframed",
        Transport::Unframed,
        Protocol::Binary,
        false,
        false,
        false,
    ),
    (
        "binary-lax-framed",
        Transport::Framed,
        Protocol::LaxBinary,
        false,
        false,
        false,
    ),
    (
        "binary-lax-unframed",
        Transport::Unframed,
        Protocol::LaxBinary,
        false,
        false,
        false,
    ),
    (
        "compact-framed",
        Transport::Framed,
        Protocol::Compact,
        false,
        false,
        false,
    ),
    (
        "compact-unframed",
        Transport::Unframed,
        Protocol::Compact,
        false,
        false,
        false,
    ),
    (
        "binary-framed-mux",
        Transport::Framed,
        Protocol::Binary,
        true,
        false,
        false,
    ),
    (
        "header-binary",
        Transport::Header,
        Protocol::Binary,
        false,
        true,
        false,
    ),
    (
        "header-compact",
        Transport::Header,
        Protocol::Compact,
        false,
        true,
        false,
    ),
    (
        "header-compact-zlib",
        Transport::Header,
        Protocol::Compact,
        false,
        true,
        true,
    ),
];

/// Decodes with the right entry point for the case (unframed lax binary is not auto-detected).
fn dec<'a>(case: &str, buf: &'a [u8], limits: &Limits) -> Result<Decoded<Frame<'a>>, Error> {
    if case == "binary-lax-unframed" {
        decode_unframed(buf, Protocol::LaxBinary, limits)
    } else {
        decode(buf, limits)
    }
}

/// Splits a captured stream into frames: (offset, length).
fn frames(case: &str, buf: &[u8]) -> Vec<(usize, usize)> {
    let limits = Limits::default();
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        match dec(case, &buf[off..], &limits) {
            Ok(Decoded::Frame { used, .. }) => {
                assert!(used > 0);
                out.push((off, used));
                off += used;
            }
            other => panic!("{case} at {off}: {other:?}"),
        }
    }
    out
}

/// What the client sent, in order: (method, type, seq id).
const CALLS: &[(&str, MessageType, i32)] = &[
    ("add", MessageType::Call, 1),
    ("get", MessageType::Call, 2),
    ("get", MessageType::Call, 3),
    ("ping", MessageType::Call, 4),
    ("log", MessageType::Oneway, 5),
    ("nosuch", MessageType::Call, 6),
    ("echo", MessageType::Call, 7),
    ("ping", MessageType::Call, -2),
];

#[test]
fn captured_client_frames_decode_exactly() {
    let limits = Limits::default();
    for &(case, transport, protocol, mux, header, zlib) in CASES {
        let buf = data(&format!("{case}.c2s.bin"));
        let fs = frames(case, &buf);
        assert_eq!(fs.len(), CALLS.len(), "{case}");
        for (&(off, len), &(method, kind, seq)) in fs.iter().zip(CALLS) {
            let (f, used) = dec(case, &buf[off..], &limits).unwrap().frame().unwrap();
            assert_eq!(used, len);
            assert_eq!(f.transport, transport, "{case}");
            assert_eq!(f.protocol, protocol, "{case}");
            if header {
                let h = f.header.expect("THeader");
                assert_eq!(h.flags, 0);
                // Python's THeaderProtocol copies the message seq id into the THeader.
                assert_eq!(h.seq_id, seq);
                assert_eq!(
                    h.protocol_id,
                    if protocol == Protocol::Compact { 2 } else { 0 }
                );
                let kv: Vec<_> = h.headers().collect();
                assert_eq!(
                    kv,
                    vec![
                        (&b"user-agent"[..], &b"meltemi-capture"[..]),
                        (&b"x-request-id"[..], &b"req-0001"[..])
                    ]
                );
                assert_eq!(h.get(b"x-request-id"), Some(&b"req-0001"[..]));
                assert_eq!(h.get(b"nope"), None);
                if zlib {
                    assert_eq!(h.transform_count, 1);
                    assert_eq!(h.transforms().collect::<Vec<_>>(), vec![1]); // 1 = zlib
                    assert_eq!(f.message, None, "a zlib payload is forwarded undecoded");
                    // The payload is the frame's tail and a zlib stream (RFC 1950: CMF 0x78).
                    assert_eq!(f.payload, &buf[off + len - f.payload.len()..off + len]);
                    assert_eq!(f.payload[0], 0x78);
                    continue;
                }
                assert_eq!(h.transform_count, 0);
            } else {
                assert!(f.header.is_none());
            }
            let m = f.message.expect("message");
            assert_eq!(m.kind, kind, "{case} {method}");
            assert_eq!(m.seq_id, seq, "{case} {method}");
            assert_eq!(m.method, method);
            if mux {
                assert_eq!(m.service, Some("Calc"));
                assert_eq!(m.name, format!("Calc:{method}"));
            } else {
                assert_eq!(m.service, None);
                assert_eq!(m.name, method);
            }
            assert_eq!(m.reply, None);
            assert!(f.payload.len() <= used);
        }
    }
}

#[test]
fn captured_server_frames_decode_exactly() {
    let limits = Limits::default();
    let success = Some(ReplyStatus::Success);
    let expect: &[(&str, MessageType, i32, Option<ReplyStatus<'static>>)] = &[
        ("add", MessageType::Reply, 1, success),
        ("get", MessageType::Reply, 2, success),
        (
            "get",
            MessageType::Reply,
            3,
            Some(ReplyStatus::DeclaredException { field_id: 1 }),
        ),
        ("ping", MessageType::Reply, 4, success),
        (
            "nosuch",
            MessageType::Exception,
            6,
            Some(ReplyStatus::AppException(AppException {
                message: Some(b"Unknown function nosuch"),
                kind: AppExceptionType::UnknownMethod,
            })),
        ),
        ("echo", MessageType::Reply, 7, success),
        ("ping", MessageType::Reply, -2, success),
    ];
    for &(case, transport, protocol, _mux, header, _zlib) in CASES {
        let buf = data(&format!("{case}.s2c.bin"));
        let fs = frames(case, &buf);
        assert_eq!(fs.len(), expect.len(), "{case}");
        for (&(off, len), &(method, kind, seq, reply)) in fs.iter().zip(expect) {
            let (f, used) = dec(case, &buf[off..], &limits).unwrap().frame().unwrap();
            assert_eq!(used, len);
            assert_eq!(f.transport, transport, "{case}");
            assert_eq!(f.protocol, protocol, "{case}");
            if header {
                let h = f.header.expect("THeader");
                assert_eq!(h.seq_id, seq);
                assert_eq!(h.transform_count, 0, "the server answers without zlib");
                assert_eq!(h.headers().count(), 0);
            }
            let m = f.message.expect("message");
            assert_eq!(
                (m.kind, m.seq_id, m.reply),
                (kind, seq, reply),
                "{case} {method}"
            );
            // TMultiplexedProcessor answers with the bare method name.
            assert_eq!((m.name, m.service, m.method), (method, None, method));
        }
        // The large echo reply really is large.
        assert!(fs[5].1 > 4000, "{case}");
    }
}

#[test]
fn every_strict_prefix_needs_more_and_never_decodes() {
    let limits = Limits::default();
    for &(case, ..) in CASES {
        for dir in ["c2s", "s2c"] {
            let buf = data(&format!("{case}.{dir}.bin"));
            for (off, len) in frames(case, &buf) {
                let frame = &buf[off..off + len];
                for cut in 0..len {
                    match dec(case, &frame[..cut], &limits) {
                        Ok(Decoded::NeedMore(need)) => {
                            let n = need.bytes();
                            assert!(
                                n > cut && n <= len,
                                "{case} {dir} @{off} cut {cut}: {need:?}"
                            );
                            if let Need::Exact(n) = need {
                                assert_eq!(n, len, "{case}: exact need is the frame length");
                            }
                        }
                        other => panic!("{case} {dir} @{off} cut {cut}: {other:?}"),
                    }
                }
            }
        }
    }
}

/// A caller that only calls again once it holds what NeedMore asked for, fed in two chunks.
#[test]
fn split_at_every_point_gives_the_same_frames() {
    let limits = Limits::default();
    for &(case, ..) in CASES {
        for dir in ["c2s", "s2c"] {
            let stream = data(&format!("{case}.{dir}.bin"));
            let want = frames(case, &stream);
            let step = if stream.len() > 3000 { 7 } else { 1 };
            for split in (0..=stream.len()).step_by(step) {
                let mut held = 0usize; // bytes received so far
                let mut off = 0usize;
                let mut got = Vec::new();
                let mut wait = 1usize;
                let mut calls = 0;
                for chunk in [&stream[..split], &stream[split..]] {
                    held += chunk.len();
                    while held - off >= wait && off < held {
                        calls += 1;
                        match dec(case, &stream[off..held], &limits).unwrap() {
                            Decoded::Frame { used, .. } => {
                                got.push((off, used));
                                off += used;
                                wait = 1;
                            }
                            Decoded::NeedMore(n) => {
                                assert!(n.bytes() > held - off);
                                wait = n.bytes();
                            }
                        }
                    }
                }
                assert_eq!(got, want, "{case} {dir} split {split}");
                assert!(
                    calls <= 3 * want.len() + 2,
                    "{case} {dir}: {calls} decode calls"
                );
            }
        }
    }
}

#[test]
fn trailing_bytes_are_not_consumed() {
    let limits = Limits::default();
    for &(case, ..) in CASES {
        let buf = data(&format!("{case}.c2s.bin"));
        let fs = frames(case, &buf);
        let (o1, l1) = fs[0];
        let (o2, l2) = fs[1];
        let mut two = buf[o1..o1 + l1].to_vec();
        two.extend_from_slice(&buf[o2..o2 + l2]);
        let (_, used) = dec(case, &two, &limits).unwrap().frame().unwrap();
        assert_eq!(used, l1);
        let (f, used) = dec(case, &two[l1..], &limits).unwrap().frame().unwrap();
        let seq = f.message.map(|m| m.seq_id).or(f.header.map(|h| h.seq_id));
        assert_eq!((used, seq), (l2, Some(2)));
        // Garbage after a frame is left alone.
        let mut g = buf[o1..o1 + l1].to_vec();
        g.extend_from_slice(b"\xff\xff\xff\xffgarbage");
        let (f, used) = dec(case, &g, &limits).unwrap().frame().unwrap();
        assert_eq!(used, l1);
        assert!(f.payload.len() <= l1);
    }
}

fn reply(transport: Transport, protocol: Protocol) -> AppExceptionReply<'static> {
    AppExceptionReply {
        transport,
        protocol,
        name: "nosuch",
        seq_id: 6,
        kind: AppExceptionType::UnknownMethod,
        message: "Unknown function nosuch",
    }
}

/// Our encoder writes the very bytes the Apache Thrift server wrote for the same exception.
#[test]
fn encoder_matches_the_real_server_byte_for_byte() {
    for &(case, transport, protocol, mux, _h, _z) in CASES {
        if mux {
            continue;
        }
        let buf = data(&format!("{case}.s2c.bin"));
        let (off, len) = frames(case, &buf)[4];
        let r = reply(transport, protocol);
        let mut out = vec![0xaa]; // appends after what is there
        let n = r.encode(&mut out);
        assert_eq!(n, r.encoded_len());
        assert_eq!(n, len, "{case}");
        assert_eq!(&out[1..], &buf[off..off + len], "{case}");
    }
}

#[test]
fn encoder_round_trips() {
    let limits = Limits::default();
    let kinds = [
        AppExceptionType::Unknown,
        AppExceptionType::InternalError,
        AppExceptionType::UnsupportedClientType,
        AppExceptionType::Other(-70000),
        AppExceptionType::Other(i32::MAX),
    ];
    let names = ["", "m", "Calc:add", &"x".repeat(300)];
    let messages = ["", "rate limited", &"é".repeat(200)];
    for transport in [Transport::Framed, Transport::Unframed, Transport::Header] {
        for protocol in [Protocol::Binary, Protocol::LaxBinary, Protocol::Compact] {
            for kind in kinds {
                for seq_id in [0, 1, -1, i32::MIN, i32::MAX, 300] {
                    for name in names {
                        for message in messages {
                            let r = AppExceptionReply {
                                transport,
                                protocol,
                                name,
                                seq_id,
                                kind,
                                message,
                            };
                            let mut out = Vec::new();
                            let n = r.encode(&mut out);
                            assert_eq!(n, out.len());
                            assert_eq!(n, r.encoded_len());
                            let d = if transport == Transport::Unframed
                                && protocol == Protocol::LaxBinary
                            {
                                decode_unframed(&out, protocol, &limits)
                            } else {
                                decode(&out, &limits)
                            };
                            let (f, used) = d.unwrap().frame().unwrap();
                            assert_eq!(used, n);
                            assert_eq!((f.transport, f.protocol), (transport, protocol));
                            let m = f.message.unwrap();
                            assert_eq!(
                                (m.name, m.seq_id, m.kind),
                                (name, seq_id, MessageType::Exception)
                            );
                            assert_eq!(
                                m.reply,
                                Some(ReplyStatus::AppException(AppException {
                                    message: Some(message.as_bytes()),
                                    kind
                                }))
                            );
                            if transport == Transport::Header {
                                assert_eq!(f.header.unwrap().seq_id, seq_id);
                            }
                        }
                    }
                }
            }
        }
    }
    // An unknown THeader protocol is answered in strict binary.
    let r = reply(Transport::Header, Protocol::Unknown(1));
    let mut out = Vec::new();
    r.encode(&mut out);
    let (f, _) = decode(&out, &limits).unwrap().frame().unwrap();
    assert_eq!(f.protocol, Protocol::Binary);
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A strict binary call `m`, seq 1, with the given args struct bytes.
fn bin_call(args: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 1, 0, 1, 0, 0, 0, 1, b'm', 0, 0, 0, 1];
    v.extend_from_slice(args);
    v
}

#[test]
fn malformed_inputs_give_the_right_error() {
    let l = Limits::default();
    // Binary version 2.
    assert_eq!(
        decode(&[0x80, 2, 0, 1, 0, 0, 0, 0], &l),
        Err(Error::BadVersion { offset: 0 })
    );
    // Framed, version word inside the frame is bad.
    assert_eq!(
        decode(&framed(&[0x80, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]), &l),
        Err(Error::BadVersion { offset: 4 })
    );
    // Compact version 2 inside a frame falls to lax binary and is refused there.
    assert!(matches!(
        decode(&framed(&[0x82, 0x22, 1, 0, 0]), &l),
        Err(Error::BadVersion { offset: 4 })
    ));
    // Negative name length.
    assert_eq!(
        decode(&[0x80, 1, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0], &l),
        Err(Error::NegativeSize { offset: 4 })
    );
    // Name not UTF-8.
    assert_eq!(
        decode(&[0x80, 1, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 1, 0], &l),
        Err(Error::NameNotUtf8 { offset: 4 })
    );
    // Unknown field type 9 in the args struct.
    assert_eq!(
        decode(&bin_call(&[9, 0, 1, 0]), &l),
        Err(Error::BadType { offset: 13, ty: 9 })
    );
    // Negative list size.
    assert_eq!(
        decode(&bin_call(&[15, 0, 1, 8, 0xff, 0xff, 0xff, 0xff, 0]), &l),
        Err(Error::NegativeSize { offset: 17 })
    );
    // Framed message that ends before its header does.
    assert_eq!(
        decode(&framed(&[0x80, 1, 0, 1, 0, 0, 0, 9]), &l),
        Err(Error::Truncated { offset: 12 })
    );
    // Empty frame.
    assert_eq!(
        decode(&[0, 0, 0, 0], &l),
        Err(Error::Truncated { offset: 4 })
    );
    // Compact varint seq id too long.
    assert_eq!(
        decode(&[0x82, 0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0], &l),
        Err(Error::BadVarint { offset: 2 })
    );
    // Compact: a list whose count cannot fit in a frame (count is checked before reading).
    let c = vec![
        0x82, 0x21, 1, 1, b'm', 0x19, 0xf5, 0xff, 0xff, 0xff, 0x7f, 0,
    ];
    assert!(matches!(decode(&c, &l), Err(Error::FrameTooLarge { .. })));
    // THeader whose header region is longer than the frame.
    let h = framed(&[0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 9, 0, 0]);
    assert_eq!(decode(&h, &l), Err(Error::BadHeader { offset: 12 }));
    // THeader key/value count larger than the region.
    let h = framed(&[0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 100]);
    assert!(matches!(decode(&h, &l), Err(Error::BadHeader { .. })));
    // THeader with an unknown protocol id: framed, forwarded, not decoded.
    let h = framed(&[0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0xde, 0xad]);
    let (f, used) = decode(&h, &l).unwrap().frame().unwrap();
    assert_eq!(
        (f.protocol, f.message, used, f.payload),
        (Protocol::Unknown(1), None, h.len(), &[0xde, 0xad][..])
    );
    // Unknown message type is data.
    let (f, _) = decode(&[0x80, 1, 0, 7, 0, 0, 0, 1, b'm', 0, 0, 0, 1, 0], &l)
        .unwrap()
        .frame()
        .unwrap();
    assert_eq!(f.message.unwrap().kind, MessageType::Unknown(7));
    assert_eq!(MessageType::Unknown(7).as_str(), "unknown");
    // Display names the rule and offset.
    assert_eq!(
        Error::BadType { offset: 13, ty: 9 }.to_string(),
        "thrift: unknown type 9 at byte 13"
    );
}

#[test]
fn limits_are_enforced() {
    // max_frame: a framed length is refused as soon as it is known.
    let small = Limits {
        max_frame: 64,
        max_depth: 32,
    };
    assert_eq!(
        decode(&[0, 0, 0, 61], &small),
        Err(Error::FrameTooLarge { len: 65, max: 64 })
    );
    assert_eq!(
        decode(&[0, 0, 0, 60], &small),
        Ok(Decoded::NeedMore(Need::Exact(64)))
    );
    // Unframed: a string longer than the limit is refused before its bytes arrive.
    let mut big = bin_call(&[11, 0, 1, 0, 0, 1, 0]);
    assert!(matches!(
        decode(&big, &small),
        Err(Error::FrameTooLarge { .. })
    ));
    big.truncate(13);
    big.extend_from_slice(&[11, 0, 1, 0, 0, 0, 10]);
    assert_eq!(
        decode(&big, &small),
        Ok(Decoded::NeedMore(Need::AtLeast(20 + 10 + 1)))
    );
    // Depth: structs nested N deep.
    let nested = |n: usize| {
        let mut a = Vec::new();
        for _ in 0..n {
            a.extend_from_slice(&[12, 0, 1]);
        }
        a.resize(a.len() + n + 1, 0);
        bin_call(&a)
    };
    let d4 = Limits {
        max_frame: 1 << 20,
        max_depth: 4,
    };
    assert!(decode(&nested(3), &d4).unwrap().frame().is_some()); // args + 3 = depth 4
    assert_eq!(decode(&nested(4), &d4), Err(Error::TooDeep { offset: 25 }));
    // Deep nesting inside lists too (a list of lists of ...).
    let mut a = vec![15, 0, 1];
    for _ in 0..100 {
        a.extend_from_slice(&[15, 0, 0, 0, 1]);
    }
    assert!(matches!(
        decode(&bin_call(&a), &Limits::default()),
        Err(Error::TooDeep { .. })
    ));
    // Framed messages are not walked, so deep bodies do not matter there.
    assert!(decode(&framed(&nested(40)), &d4).unwrap().frame().is_some());
}

#[test]
fn labels_are_static() {
    assert_eq!(Transport::Header.as_str(), "header");
    assert_eq!(Protocol::LaxBinary.as_str(), "binary_lax");
    assert_eq!(MessageType::Oneway.as_str(), "oneway");
    assert_eq!(AppExceptionType::from_i32(7).as_str(), "protocol_error");
    assert_eq!(AppExceptionType::from_i32(99), AppExceptionType::Other(99));
    for v in 0..=10 {
        assert_eq!(AppExceptionType::from_i32(v).as_i32(), v);
    }
    for v in 0..=255u8 {
        assert_eq!(MessageType::from_u8(v).as_u8(), v);
    }
}

/// The fast path (framed calls) and the general path (unframed) report the same offsets.
#[test]
fn name_errors_have_the_same_offset_framed_and_unframed() {
    let l = Limits::default();
    let compact = [0x82, 0x21, 0x05, 0x01, 0xff, 0x00];
    assert_eq!(decode(&compact, &l), Err(Error::NameNotUtf8 { offset: 3 }));
    assert_eq!(
        decode(&framed(&compact), &l),
        Err(Error::NameNotUtf8 { offset: 7 })
    );
    let binary = [0x80, 1, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 1, 0];
    assert_eq!(decode(&binary, &l), Err(Error::NameNotUtf8 { offset: 4 }));
    assert_eq!(
        decode(&framed(&binary), &l),
        Err(Error::NameNotUtf8 { offset: 8 })
    );
}
