//! ZooKeeper codec tests on traffic captured from the real Apache ZooKeeper 3.8.0 server
//! (Debian `zookeeper`) and kazoo 2.11.0, through the recording relay of
//! `scripts/capture/zookeeper_capture.py`. `testdata/zookeeper/frames.txt` lists every frame;
//! the tables below say what every field must decode to.

use meltemi_codec::zookeeper::*;
use meltemi_codec::{Decoded, Limits, Need};

fn data(name: &str) -> Vec<u8> {
    let p = format!("{}/testdata/zookeeper/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

const L: Limits = Limits {
    max_frame: 64 * 1024 * 1024,
    max_depth: 32,
};

// conn1's session, as the server handed it out (ConnectResponse of conn1) and as kazoo resumed it
// on conn2 after the relay cut conn1.
const SESSION: i64 = 0x0100_0008_e157_0000;
const PASSWD: [u8; 16] = [
    0xbb, 0xac, 0x5d, 0x3b, 0x2c, 0xbf, 0x0b, 0xa3, 0x91, 0xb9, 0x52, 0x06, 0x55, 0x91, 0x3f, 0x69,
];

/// Decodes a whole captured direction with a fresh [`Connection`]; returns (offset, used) of each
/// frame and checks that the stream is consumed exactly.
fn frames_of(stream: &[u8], requests: bool) -> Vec<(usize, usize)> {
    let mut conn = Connection::new();
    let mut off = 0;
    let mut out = Vec::new();
    while off < stream.len() {
        let used = if requests {
            match conn.decode_request(&stream[off..], &L).unwrap() {
                Decoded::Frame { used, .. } => used,
                Decoded::NeedMore(n) => panic!("need {n:?} at {off}"),
            }
        } else {
            match conn.decode_response(&stream[off..], &L).unwrap() {
                Decoded::Frame { used, .. } => used,
                Decoded::NeedMore(n) => panic!("need {n:?} at {off}"),
            }
        };
        out.push((off, used));
        off += used;
    }
    assert_eq!(off, stream.len());
    out
}

fn requests(stream: &[u8]) -> Vec<Request<'_>> {
    let mut conn = Connection::new();
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (f, used) = conn.decode_request(rest, &L).unwrap().frame().unwrap();
        out.push(f);
        rest = &rest[used..];
    }
    out
}

fn responses(stream: &[u8]) -> Vec<Response<'_>> {
    let mut conn = Connection::new();
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (f, used) = conn.decode_response(rest, &L).unwrap().frame().unwrap();
        out.push(f);
        rest = &rest[used..];
    }
    out
}

fn op(r: &Request<'_>) -> (i32, OpCode, Option<String>) {
    match r {
        Request::Op(o) => (o.xid, o.op, o.path().map(str::to_owned)),
        other => panic!("not an op: {other:?}"),
    }
}

fn reply<'a>(r: &Response<'a>) -> Reply<'a> {
    match r {
        Response::Reply(r) => *r,
        other => panic!("not a reply: {other:?}"),
    }
}

#[test]
fn conn1_kazoo_requests() {
    let s = data("conn1.c2s.bin");
    let r = requests(&s);
    // ConnectRequest: protocolVersion 0, lastZxidSeen 0, timeOut 4000 ms, sessionId 0 (new),
    // passwd 16 zero bytes, readOnly false (kazoo 2.11 always sends the byte).
    assert_eq!(
        r[0],
        Request::Connect(ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 4000,
            session_id: 0,
            passwd: &[0; 16],
            read_only: Some(false),
        })
    );
    // AuthPacket (xid -4): type 0, scheme digest, auth "alice:secret".
    match r[1] {
        Request::Op(o) => {
            assert_eq!((o.xid, o.op), (AUTH_XID, OpCode::Auth));
            assert_eq!(
                o.target,
                Target::Auth {
                    auth_type: 0,
                    scheme: "digest"
                }
            );
            assert!(o.body.ends_with(b"alice:secret"));
        }
        _ => panic!(),
    }
    use OpCode::*;
    let p = |s: &str| Some(s.to_owned());
    let want: Vec<(i32, OpCode, Option<String>)> = vec![
        (1, Exists, p("/meltemi")), // ensure_path
        (2, Exists, p("/")),
        (3, Create, p("/meltemi")),
        (4, Create, p("/meltemi/eph-")), // ephemeral + sequential (flags 3)
        (5, Create, p("/meltemi/node")),
        (6, GetData, p("/meltemi/node")), // with a watch
        (7, SetData, p("/meltemi/node")), // fires NodeDataChanged
        (8, Exists, p("/meltemi/later")), // watch on a missing node
        (9, Create, p("/meltemi/later")), // fires NodeCreated
        (10, GetChildren, p("/meltemi")),
        (11, GetChildren2, p("/meltemi")),
        (12, Create, p("/meltemi/child")), // fires NodeChildrenChanged
        (13, GetData, p("/meltemi/missing")),
        (14, SetData, p("/meltemi/node")), // bad version
        (15, Multi, None),
        (16, Multi, None),
        (17, Create, p("/meltemi/secure")),
        (18, GetAcl, p("/meltemi/secure")),
        (19, SetAcl, p("/meltemi/secure")),
        (20, Sync, p("/meltemi")),
        (21, Create, p("/meltemi/big")), // 512 KiB of data
        (22, GetData, p("/meltemi/big")),
        (23, Reconfig, None),
        (24, WhoAmI, None),
        (25, GetEphemerals, p("/meltemi")),
        (26, GetAllChildrenNumber, p("/meltemi")),
        (27, AddWatch, p("/meltemi")), // persistent recursive
        (28, SetData, p("/meltemi/child")),
        (29, CheckWatches, p("/meltemi/node")),
        (30, RemoveWatches, p("/meltemi")),
        (31, CreateContainer, p("/meltemi/box")),
        (32, CreateTtl, p("/meltemi/ttl")),
        (33, MultiRead, None),
        (34, Create2, p("/meltemi/c2")),
        (PING_XID, Ping, None),
        (PING_XID, Ping, None),
    ];
    let got: Vec<_> = r[2..].iter().map(op).collect();
    assert_eq!(got, want);
    // The big create is one frame of 524351 bytes.
    let f = frames_of(&s, true);
    assert_eq!(f[22], (1217, 524_351));
}

#[test]
fn conn1_multi_sub_ops() {
    let s = data("conn1.c2s.bin");
    let r = requests(&s);
    let subs = |i: usize| -> Vec<(OpCode, Option<&str>)> {
        match r[i] {
            Request::Op(o) => o.multi().unwrap().map(|m| (m.op, m.path)).collect(),
            _ => panic!(),
        }
    };
    // xid 15: kazoo transaction that commits.
    assert_eq!(
        subs(16),
        vec![
            (OpCode::Create, Some("/meltemi/tx")),
            (OpCode::Check, Some("/meltemi/node")),
            (OpCode::SetData, Some("/meltemi/node")),
            (OpCode::Delete, Some("/meltemi/later")),
        ]
    );
    // xid 16: a transaction whose second op fails (NONODE), the first rolled back.
    assert_eq!(
        subs(17),
        vec![
            (OpCode::Create, Some("/meltemi/tx2")),
            (OpCode::Delete, Some("/meltemi/nope")),
        ]
    );
    // xid 33: multiRead.
    assert_eq!(
        subs(34),
        vec![
            (OpCode::GetData, Some("/meltemi/node")),
            (OpCode::GetChildren, Some("/meltemi")),
            (OpCode::GetData, Some("/meltemi/gone")),
        ]
    );
}

#[test]
fn conn1_replies() {
    let s = data("conn1.s2c.bin");
    let r = responses(&s);
    // ConnectResponse: protocolVersion 0, negotiated timeOut 4000, the new session and its
    // password, readOnly false.
    assert_eq!(
        r[0],
        Response::Connect(ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: SESSION,
            passwd: &PASSWD,
            read_only: Some(false),
        })
    );
    let hdr = |x: &Response<'_>| {
        let y = reply(x);
        (y.xid, y.zxid, y.err, y.kind.as_str())
    };
    use ErrorCode::*;
    let want: Vec<(i32, i64, ErrorCode, &str)> = vec![
        (AUTH_XID, 0, Ok, "auth"),
        (1, 1, NoNode, "reply"), // exists /meltemi: not there yet
        (2, 1, Ok, "reply"),
        (3, 2, Ok, "reply"),
        (4, 3, Ok, "reply"),
        (5, 4, Ok, "reply"),
        (6, 4, Ok, "reply"),
        (NOTIFICATION_XID, -1, Ok, "watch"),
        (7, 5, Ok, "reply"),
        (8, 5, NoNode, "reply"),
        (NOTIFICATION_XID, -1, Ok, "watch"),
        (9, 6, Ok, "reply"),
        (10, 6, Ok, "reply"),
        (11, 6, Ok, "reply"),
        (NOTIFICATION_XID, -1, Ok, "watch"),
        (12, 7, Ok, "reply"),
        (13, 7, NoNode, "reply"),
        (14, 8, BadVersion, "reply"),
        (15, 9, Ok, "reply"),
        (16, 0xa, Ok, "reply"), // a failed multi still has err 0; results carry errors
        (17, 0xb, Ok, "reply"),
        (18, 0xb, Ok, "reply"),
        (19, 0xc, Ok, "reply"),
        (20, 0xc, Ok, "reply"),
        (21, 0xd, Ok, "reply"),
        (22, 0xd, Ok, "reply"), // 512 KiB of data
        (23, 0xe, ReconfigDisabled, "reply"),
        (24, 0xe, Ok, "reply"),
        (25, 0xe, Ok, "reply"),
        (26, 0xe, Ok, "reply"),
        (27, 0xe, Ok, "reply"),
        (NOTIFICATION_XID, -1, Ok, "watch"), // persistent recursive watch
        (28, 0xf, Ok, "reply"),
        (29, 0xf, NoWatcher, "reply"),
        (30, 0xf, Ok, "reply"),
        (31, 0x10, Ok, "reply"),
        (32, 0x11, Unimplemented, "reply"), // TTL nodes are disabled by default
        (33, 0x11, Ok, "reply"),
        (34, 0x12, Ok, "reply"),
        (PING_XID, 0x12, Ok, "ping"),
        (PING_XID, 0x12, Ok, "ping"),
    ];
    let got: Vec<_> = r[1..].iter().map(hdr).collect();
    assert_eq!(got, want);
    let events: Vec<WatchEvent<'_>> = r
        .iter()
        .filter_map(|x| match reply_or_none(x) {
            Some(Reply {
                kind: ReplyKind::Watch(e),
                ..
            }) => Some(e),
            _ => None,
        })
        .collect();
    let ev = |t, p| WatchEvent {
        event_type: t,
        state: KeeperState::SyncConnected,
        path: p,
    };
    assert_eq!(
        events,
        vec![
            ev(EventType::NodeDataChanged, "/meltemi/node"),
            ev(EventType::NodeCreated, "/meltemi/later"),
            ev(EventType::NodeChildrenChanged, "/meltemi"),
            ev(EventType::NodeDataChanged, "/meltemi/child"),
        ]
    );
}

fn reply_or_none<'a>(r: &Response<'a>) -> Option<Reply<'a>> {
    match r {
        Response::Reply(r) => Some(*r),
        _ => None,
    }
}

#[test]
fn conn2_reconnect_resumes_the_session() {
    let s = data("conn2.c2s.bin");
    let r = requests(&s);
    // After the relay cut conn1, kazoo resumed the same session: lastZxidSeen 0x12.
    assert_eq!(
        r[0],
        Request::Connect(ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x12,
            timeout_ms: 4000,
            session_id: SESSION,
            passwd: &PASSWD,
            read_only: Some(false),
        })
    );
    let ops: Vec<_> = r[1..].iter().map(op).collect();
    assert_eq!(ops[0].1, OpCode::Auth);
    assert_eq!(ops[1].1, OpCode::Ping);
    assert_eq!(ops[2].1, OpCode::Ping);
    assert_eq!(
        ops[3],
        (1, OpCode::GetData, Some("/meltemi/node".to_owned()))
    );
    assert_eq!(
        ops[5],
        (3, OpCode::GetChildren, Some("/meltemi/node".to_owned()))
    );
    assert_eq!(
        ops[6],
        (4, OpCode::Delete, Some("/meltemi/node".to_owned()))
    );
    assert_eq!(ops.last().unwrap(), &(20, OpCode::CloseSession, None));
    let resp_bytes = data("conn2.s2c.bin");
    let resp = responses(&resp_bytes);
    assert_eq!(
        resp[0],
        Response::Connect(ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: SESSION,
            passwd: &PASSWD,
            read_only: Some(false),
        })
    );
    let last = reply(resp.last().unwrap());
    assert_eq!((last.xid, last.zxid, last.err), (20, 0x1c, ErrorCode::Ok));
}

#[test]
fn conn3_old_client_set_watches_and_unknown_opcode() {
    let r_bytes = data("conn3.c2s.bin");
    let r = requests(&r_bytes);
    // A 3.4-style ConnectRequest without the readOnly byte (written by the capture script).
    assert_eq!(
        r[0],
        Request::Connect(ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30000,
            session_id: 0,
            passwd: &[0; 16],
            read_only: None,
        })
    );
    assert_eq!(op(&r[1]), (SET_WATCHES_XID, OpCode::SetWatches, None));
    assert_eq!(op(&r[2]), (SET_WATCHES_XID, OpCode::SetWatches2, None));
    // Unknown opcodes are data; the real server logged "unknown type 999" and sent nothing.
    match r[3] {
        Request::Op(o) => {
            assert_eq!(
                (o.xid, o.op, o.target),
                (7, OpCode::Unknown(999), Target::None)
            );
            assert_eq!(o.op.as_str(), "unknown");
        }
        _ => panic!(),
    }
    let s_bytes = data("conn3.s2c.bin");
    let s = responses(&s_bytes);
    // The server answers an old client without the readOnly byte.
    match s[0] {
        Response::Connect(c) => {
            assert_eq!((c.timeout_ms, c.session_id), (30000, 0x0100_0008_e157_0001));
            assert_eq!(c.read_only, None);
            assert_eq!(c.passwd.len(), 16);
        }
        _ => panic!(),
    }
    // SetWatches on /a (which does not exist) with relativeZxid 0: NodeDeleted at once.
    let e = reply(&s[1]);
    assert_eq!(
        e.kind,
        ReplyKind::Watch(WatchEvent {
            event_type: EventType::NodeDeleted,
            state: KeeperState::SyncConnected,
            path: "/a"
        })
    );
    for x in &s[2..] {
        let y = reply(x);
        assert_eq!(
            (y.xid, y.zxid, y.err, y.kind),
            (-8, 0x1d, ErrorCode::Ok, ReplyKind::SetWatches)
        );
    }
}

#[test]
fn four_letter_words() {
    let mut c = Connection::new();
    let q = data("conn4.c2s.bin");
    assert_eq!(
        c.decode_request(&q, &L).unwrap(),
        Decoded::Frame {
            frame: Request::FourLetter(FourLetterWord::Ruok),
            used: 4
        }
    );
    assert_eq!(c.response_phase(), Phase::Raw);
    let a = data("conn4.s2c.bin");
    assert_eq!(
        c.decode_response(&a, &L).unwrap(),
        Decoded::Frame {
            frame: Response::Raw(b"imok"),
            used: 4
        }
    );
    let mut c = Connection::new();
    let q = data("conn5.c2s.bin");
    let (f, _) = c.decode_request(&q, &L).unwrap().frame().unwrap();
    assert_eq!(f, Request::FourLetter(FourLetterWord::Srvr));
    let a = data("conn5.s2c.bin");
    let (f, used) = c.decode_response(&a, &L).unwrap().frame().unwrap();
    assert!(matches!(f, Response::Raw(t) if t.starts_with(b"Zookeeper version: 3.8.0")));
    assert_eq!(used, a.len());
    // stmk carries an 8-byte trace mask.
    let mut stmk = b"stmk".to_vec();
    assert_eq!(
        decode_request(&stmk, Phase::Handshake, &L).unwrap(),
        Decoded::NeedMore(Need::Exact(12))
    );
    stmk.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 9]);
    assert_eq!(
        decode_request(&stmk, Phase::Handshake, &L).unwrap(),
        Decoded::Frame {
            frame: Request::FourLetter(FourLetterWord::Stmk),
            used: 12
        }
    );
    // Only the first frame can be a four-letter word.
    assert!(decode_request(b"ruok", Phase::Session, &L).is_err());
    assert_eq!(
        decode_request(&[], Phase::Raw, &L).unwrap(),
        Decoded::NeedMore(Need::AtLeast(1))
    );
}

/// Every captured frame, with the phase it is decoded in.
fn all_frames() -> Vec<(Vec<u8>, bool, Phase)> {
    let mut out = Vec::new();
    for n in 1..=3 {
        for (dir, req) in [("c2s", true), ("s2c", false)] {
            let s = data(&format!("conn{n}.{dir}.bin"));
            for (i, (off, used)) in frames_of(&s, req).into_iter().enumerate() {
                let phase = if i == 0 {
                    Phase::Handshake
                } else {
                    Phase::Session
                };
                out.push((s[off..off + used].to_vec(), req, phase));
            }
        }
    }
    out
}

/// A frame as text, with bodies summarised by their length and a checksum (a 512 KiB body
/// printed in full would dominate the test's run time).
fn show_req(r: &Request<'_>) -> String {
    match r {
        Request::Op(o) => {
            let subs: Vec<MultiOp<'_>> = o.multi().map(|m| m.collect()).unwrap_or_default();
            let target = match o.target {
                Target::Multi(_) => "multi".to_owned(),
                t => format!("{t:?}"),
            };
            format!("{} {:?} {target} {subs:?} {}", o.xid, o.op, sum(o.body))
        }
        other => format!("{other:?}"),
    }
}

fn show_resp(r: &Response<'_>) -> String {
    match r {
        Response::Reply(y) => format!(
            "{} {} {:?} {:?} {}",
            y.xid,
            y.zxid,
            y.err,
            y.kind,
            sum(y.body)
        ),
        other => format!("{other:?}"),
    }
}

fn sum(b: &[u8]) -> String {
    // Length, start and end: enough to tell bodies apart, cheap on the 512 KiB one.
    let head = &b[..b.len().min(24)];
    let tail = &b[b.len().saturating_sub(8)..];
    format!("{}:{head:x?}..{tail:x?}", b.len())
}

fn decode(buf: &[u8], req: bool, phase: Phase, l: &Limits) -> Result<Decoded<String>, Error> {
    // A frame rendered as text, to compare frames of either direction.
    Ok(if req {
        match decode_request(buf, phase, l)? {
            Decoded::Frame { frame, used } => Decoded::Frame {
                frame: show_req(&frame),
                used,
            },
            Decoded::NeedMore(n) => Decoded::NeedMore(n),
        }
    } else {
        match decode_response(buf, phase, l)? {
            Decoded::Frame { frame, used } => Decoded::Frame {
                frame: show_resp(&frame),
                used,
            },
            Decoded::NeedMore(n) => Decoded::NeedMore(n),
        }
    })
}

#[test]
fn every_prefix_needs_more() {
    for (f, req, phase) in all_frames() {
        for k in 0..f.len() {
            match decode(&f[..k], req, phase, &L).unwrap() {
                Decoded::NeedMore(Need::Exact(n)) => {
                    assert!(k >= 4, "exact need before the length is known");
                    assert_eq!(n, f.len());
                }
                Decoded::NeedMore(Need::AtLeast(n)) => {
                    assert!(k < 4);
                    assert_eq!(n, 4);
                }
                other => panic!("prefix {k} of {} decoded: {other:?}", f.len()),
            }
        }
        assert!(
            matches!(decode(&f, req, phase, &L).unwrap(), Decoded::Frame { used, .. } if used == f.len())
        );
    }
}

#[test]
fn trailing_bytes_are_not_consumed() {
    for (f, req, phase) in all_frames() {
        let whole = decode(&f, req, phase, &L).unwrap();
        // Garbage after the frame.
        let mut g = f.clone();
        g.extend_from_slice(&[0xff; 7]);
        assert_eq!(decode(&g, req, phase, &L).unwrap(), whole);
        // The same frame twice: the first decode uses exactly one.
        let mut two = f.clone();
        two.extend_from_slice(&f);
        assert_eq!(decode(&two, req, phase, &L).unwrap(), whole);
    }
}

/// Feeds a stream in two pieces split at `k`, the way a proxy does: decode what is whole, keep
/// the rest, append, continue. Returns the frames rendered as text.
fn split_decode(stream: &[u8], req: bool, k: usize) -> Vec<String> {
    let mut conn = Connection::new();
    let mut held: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for piece in [&stream[..k], &stream[k..]] {
        held.extend_from_slice(piece);
        let mut start = 0;
        loop {
            let pending = &held[start..];
            let (txt, used) = if req {
                match conn.decode_request(pending, &L).unwrap() {
                    Decoded::Frame { frame, used } => (show_req(&frame), used),
                    Decoded::NeedMore(n) => {
                        assert!(n.bytes() > pending.len());
                        break;
                    }
                }
            } else {
                match conn.decode_response(pending, &L).unwrap() {
                    Decoded::Frame { frame, used } => (show_resp(&frame), used),
                    Decoded::NeedMore(n) => {
                        assert!(n.bytes() > pending.len());
                        break;
                    }
                }
            };
            out.push(txt);
            start += used;
        }
        held.drain(..start);
    }
    assert!(held.is_empty());
    out
}

#[test]
fn split_at_every_point() {
    for n in 1..=3 {
        for (dir, req) in [("c2s", true), ("s2c", false)] {
            let s = data(&format!("conn{n}.{dir}.bin"));
            let whole = split_decode(&s, req, s.len());
            let frames = frames_of(&s, req);
            // Every point of the small streams; for the big one, every point near each frame
            // boundary and a stride through the 512 KiB frame.
            let mut points: Vec<usize> = if s.len() < 4096 {
                (0..=s.len()).collect()
            } else {
                let mut p: Vec<usize> = (0..=s.len()).step_by(16411).collect();
                for &(off, _) in &frames {
                    p.extend(off.saturating_sub(3)..(off + 30).min(s.len()));
                }
                p
            };
            points.push(s.len());
            for k in points {
                assert_eq!(
                    split_decode(&s, req, k),
                    whole,
                    "conn{n}.{dir} split at {k}"
                );
            }
        }
    }
}

#[test]
fn error_reply_round_trips() {
    let codes = [
        0, -1, -2, -3, -4, -5, -6, -7, -8, -12, -13, -14, -100, -101, -102, -103, -108, -110, -111,
        -112, -113, -114, -115, -118, -119, -120, -121, -122, -123, -124, -125, -127, -999,
    ];
    for (i, &c) in codes.iter().enumerate() {
        let err = ErrorCode::from_i32(c);
        assert_eq!(err.as_i32(), c);
        let mut out = vec![0xaa];
        let n = encode_error_reply(i as i32 + 1, 0x1234_5678_9abc, err, &mut out);
        assert_eq!(n, ERROR_REPLY_LEN);
        assert_eq!(out.len(), 1 + ERROR_REPLY_LEN);
        let d = decode_response(&out[1..], Phase::Session, &L).unwrap();
        assert_eq!(
            d,
            Decoded::Frame {
                frame: Response::Reply(Reply {
                    xid: i as i32 + 1,
                    zxid: 0x1234_5678_9abc,
                    err,
                    kind: ReplyKind::Normal,
                    body: &[],
                }),
                used: ERROR_REPLY_LEN
            }
        );
    }
    // Byte for byte what the real server sent for xid 13 (getData on a missing node).
    let s = data("conn1.s2c.bin");
    assert_eq!(&s[883..903], &error_reply(13, 7, ErrorCode::NoNode));
    assert_eq!(&s[903..923], &error_reply(14, 8, ErrorCode::BadVersion));
}

#[test]
fn names_are_zookeepers() {
    assert_eq!(OpCode::GetAcl.as_str(), "getACL");
    assert_eq!(OpCode::CreateTtl.as_str(), "createTTL");
    assert_eq!(OpCode::from_i32(-11), OpCode::CloseSession);
    assert_eq!(ErrorCode::NoNode.as_str(), "NONODE");
    assert_eq!(ErrorCode::from_i32(-126), ErrorCode::Unknown(-126));
    assert_eq!(ErrorCode::Unknown(-126).to_string(), "unknown(-126)");
    assert_eq!(KeeperState::from_i32(-112), KeeperState::Expired);
    assert_eq!(EventType::from_i32(-1), EventType::None);
    for v in -20..200 {
        assert_eq!(OpCode::from_i32(v).as_i32(), v);
        assert_eq!(ErrorCode::from_i32(-v).as_i32(), -v);
    }
    assert!(OpCode::GetEphemerals.has_path() && !OpCode::Multi.has_path());
}

fn req_frame(xid: i32, op: i32, body: &[u8]) -> Vec<u8> {
    let mut v = ((8 + body.len()) as i32).to_be_bytes().to_vec();
    v.extend_from_slice(&xid.to_be_bytes());
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn jstr(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

#[test]
fn malformed_inputs() {
    let s = Phase::Session;
    assert_eq!(
        decode_request(&[0xff, 0xff, 0xff, 0xfe], s, &L),
        Err(Error::NegativeFrameLength { len: -2 })
    );
    assert_eq!(
        decode_request(&[0, 0, 0, 4, 0, 0, 0, 1], s, &L),
        Err(Error::FrameTooShort { len: 8, min: 12 })
    );
    assert_eq!(
        decode_response(&[0, 0, 0, 8], s, &L),
        Err(Error::FrameTooShort { len: 12, min: 20 })
    );
    assert_eq!(
        decode_request(&[0, 0, 0, 10], Phase::Handshake, &L),
        Err(Error::FrameTooShort { len: 14, min: 32 })
    );
    // A path longer than the frame.
    let mut b = jstr(b"/abc");
    b[3] = 9;
    assert_eq!(
        decode_request(&req_frame(1, 4, &b), s, &L),
        Err(Error::Truncated {
            field: "path",
            offset: 12
        })
    );
    // Length below -1.
    assert_eq!(
        decode_request(&req_frame(1, 4, &(-2i32).to_be_bytes()), s, &L),
        Err(Error::BadLength {
            field: "path",
            offset: 12,
            len: -2
        })
    );
    // A null path decodes as "".
    let null_path = req_frame(1, 4, &(-1i32).to_be_bytes());
    let (f, _) = decode_request(&null_path, s, &L).unwrap().frame().unwrap();
    assert!(matches!(f, Request::Op(o) if o.path() == Some("")));
    // Not UTF-8.
    assert_eq!(
        decode_request(&req_frame(1, 3, &jstr(b"/\xff")), s, &L),
        Err(Error::InvalidUtf8 {
            field: "path",
            offset: 16
        })
    );
    // Multi: an ACL count larger than the frame can hold.
    let mut m = vec![0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff];
    m.extend(jstr(b"/a"));
    m.extend(jstr(b"d"));
    m.extend(1000i32.to_be_bytes());
    m.extend([0; 40]);
    assert_eq!(
        decode_request(&req_frame(1, 14, &m), s, &L),
        Err(Error::CountTooLarge {
            field: "acl",
            offset: 32,
            count: 1000
        })
    );
    // Multi without its closing header.
    let mut m = vec![0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff];
    m.extend(jstr(b"/a"));
    m.extend((-1i32).to_be_bytes());
    assert_eq!(
        decode_request(&req_frame(1, 14, &m), s, &L),
        Err(Error::Truncated {
            field: "multi.header",
            offset: 31
        })
    );
    // Multi with a sub-op type the server refuses: yielded as data, the walk stops.
    let mut m = vec![0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff];
    m.extend(jstr(b"/a"));
    m.extend((-1i32).to_be_bytes());
    m.extend([0, 0, 0, 99, 0, 0, 0, 0, 0, 1, 2, 3]);
    let f = req_frame(1, 14, &m);
    let (r, used) = decode_request(&f, s, &L).unwrap().frame().unwrap();
    assert_eq!(used, f.len());
    let subs: Vec<_> = match r {
        Request::Op(o) => o.multi().unwrap().collect(),
        _ => panic!(),
    };
    assert_eq!(
        subs,
        vec![
            MultiOp {
                op: OpCode::Delete,
                path: Some("/a")
            },
            MultiOp {
                op: OpCode::Unknown(99),
                path: None
            }
        ]
    );
    // A watch event cut short.
    let mut w = vec![0, 0, 0, 20];
    w.extend((-1i32).to_be_bytes());
    w.extend((-1i64).to_be_bytes());
    w.extend(0i32.to_be_bytes());
    w.extend(3i32.to_be_bytes());
    assert_eq!(
        decode_response(&w, s, &L),
        Err(Error::Truncated {
            field: "event.state",
            offset: 24
        })
    );
    // A ConnectRequest whose passwd runs past the frame.
    let mut c = vec![0, 0, 0, 28];
    c.extend([0; 24]);
    c.extend(5i32.to_be_bytes());
    assert_eq!(
        decode_request(&c, Phase::Handshake, &L),
        Err(Error::Truncated {
            field: "passwd",
            offset: 28
        })
    );
    // Errors print what broke and where.
    assert_eq!(
        Error::Truncated {
            field: "path",
            offset: 12
        }
        .to_string(),
        "zookeeper: field path at offset 12 runs past the frame"
    );
}

#[test]
fn limits_are_enforced_as_soon_as_the_length_is_known() {
    let f = req_frame(5, 4, &jstr(b"/meltemi/node"));
    let fits = Limits {
        max_frame: f.len(),
        max_depth: 1,
    };
    assert!(decode_request(&f, Phase::Session, &fits)
        .unwrap()
        .frame()
        .is_some());
    let small = Limits {
        max_frame: f.len() - 1,
        max_depth: 1,
    };
    // Only the prefix held: refused already.
    assert_eq!(
        decode_request(&f[..4], Phase::Session, &small),
        Err(Error::FrameTooLarge {
            len: f.len(),
            max: f.len() - 1
        })
    );
    // The captured 512 KiB create under a 64 KiB limit.
    let s = data("conn1.c2s.bin");
    let k64 = Limits {
        max_frame: 64 * 1024,
        max_depth: 1,
    };
    assert_eq!(
        decode_request(&s[1217..1221], Phase::Session, &k64),
        Err(Error::FrameTooLarge {
            len: 524_351,
            max: 65536
        })
    );
    // Replies too, and the handshake.
    let r = data("conn1.s2c.bin");
    assert!(decode_response(&r[1465..1469], Phase::Session, &k64).is_err());
    let tiny = Limits {
        max_frame: 40,
        max_depth: 1,
    };
    assert!(decode_request(&s[..4], Phase::Handshake, &tiny).is_err());
    assert!(decode_response(&r[..4], Phase::Handshake, &tiny).is_err());
}

#[test]
fn connection_phases() {
    let q = data("conn1.c2s.bin");
    let a = data("conn1.s2c.bin");
    let mut c = Connection::new();
    assert_eq!(
        (c.request_phase(), c.response_phase()),
        (Phase::Handshake, Phase::Handshake)
    );
    // A partial handshake does not advance the phase.
    assert!(matches!(
        c.decode_request(&q[..10], &L).unwrap(),
        Decoded::NeedMore(Need::Exact(49))
    ));
    assert_eq!(c.request_phase(), Phase::Handshake);
    c.decode_request(&q, &L).unwrap();
    assert_eq!(
        (c.request_phase(), c.response_phase()),
        (Phase::Session, Phase::Handshake)
    );
    c.decode_response(&a, &L).unwrap();
    assert_eq!(c, Connection::in_session());
}
