//! MySQL codec against captured MariaDB 10.11 traffic (`testdata/mysql/README.md`).
mod sql_replay;

use meltemi_codec::mysql::{self, ClientMsg, Connection, ServerMsg};
use meltemi_codec::sql::StatementKind;
use meltemi_codec::{Decoded, Limits};

fn log(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/testdata/mysql/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Replays a capture; returns the events as short strings.
fn events(name: &str) -> Vec<String> {
    let limits = Limits::default();
    let mut c = Connection::new();
    let mut ev = Vec::new();
    sql_replay::replay(&log(name), |client, buf| {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            if rest.is_empty() {
                break;
            }
            if client {
                match c.decode_request(rest, &limits).unwrap() {
                    Decoded::NeedMore(_) => break,
                    Decoded::Frame { frame, used } => {
                        match frame {
                            ClientMsg::Login(l) => {
                                ev.push(format!("login {}", String::from_utf8_lossy(l.user)))
                            }
                            ClientMsg::Command { command, kind, .. } => {
                                ev.push(format!("> {command:?} {}", kind.as_str()))
                            }
                            ClientMsg::SslRequest => ev.push("ssl".into()),
                            _ => {}
                        }
                        at += used;
                    }
                }
            } else {
                match c.decode_response(rest, &limits).unwrap() {
                    Decoded::NeedMore(_) => break,
                    Decoded::Frame { frame, used } => {
                        match frame {
                            ServerMsg::Greeting(_) => ev.push("greeting".into()),
                            ServerMsg::LoginResult(r) => ev.push(match r {
                                Ok(()) => "login ok".into(),
                                Err(e) => format!("login failed {}", e.code),
                            }),
                            ServerMsg::Done(r) => ev.push(match r.result {
                                Ok(()) => format!("< ok {} rows={}", r.kind.as_str(), r.rows),
                                Err(e) => format!("< err {} {}", r.kind.as_str(), e.code),
                            }),
                            ServerMsg::Unsolicited => ev.push("unsolicited".into()),
                            _ => {}
                        }
                        at += used;
                    }
                }
            }
        }
        at
    });
    assert_eq!(c.pending(), 0, "{name}: every command answered");
    ev
}

#[test]
fn cli_session() {
    let ev = events("conn-0.log");
    let want = [
        "greeting",
        "login meltemi",
        "login ok",
        "> Query other",
        "< ok other rows=0",
        "> Query insert",
        "< ok insert rows=0",
        "> Query select",
        "< ok select rows=2",
        "> Query update",
        "< ok update rows=0",
        "> Query delete",
        "< ok delete rows=0",
        "> Query select",
        "< err select 1146",
        "> Quit other",
    ];
    assert_eq!(ev, want, "{ev:#?}");
}

#[test]
fn failed_login() {
    assert_eq!(
        events("conn-1.log"),
        ["greeting", "login meltemi", "login failed 1045"]
    );
}

#[test]
fn pymysql_session() {
    let ev = events("conn-2.log");
    assert!(ev.contains(&"< ok select rows=1".to_string()), "{ev:#?}");
    assert!(ev.contains(&"< ok select rows=0".to_string()), "{ev:#?}");
    assert!(ev.contains(&"> Ping other".to_string()), "{ev:#?}");
    assert!(ev.contains(&"> InitDb other".to_string()), "{ev:#?}");
}

#[test]
fn sysbench_prepared_statements() {
    let ev = events("conn-4.log");
    let executes_select = ev.iter().filter(|e| *e == "> StmtExecute select").count();
    assert!(executes_select >= 10, "{ev:#?}");
    assert!(
        ev.iter().any(|e| e.starts_with("< ok select rows=")),
        "{ev:#?}"
    );
    assert!(!ev.iter().any(|e| e == "unsolicited"), "{ev:#?}");
    events("conn-3.log");
}

/// Every server and client packet of every capture: each strict prefix needs more (never
/// zero, never less than held), the whole packet decodes with trailing bytes ignored.
#[test]
fn every_prefix_needs_more_and_trailing_bytes_are_ignored() {
    let limits = Limits::default();
    for n in 0..5 {
        let log = log(&format!("conn-{n}.log"));
        sql_replay::replay(&log, |_, buf| {
            let mut at = 0;
            while let Decoded::Frame { frame, used } =
                mysql::decode_packet(&buf[at..], &limits).unwrap()
            {
                let whole = &buf[at..at + used];
                for k in 0..used {
                    match mysql::decode_packet(&whole[..k], &limits).unwrap() {
                        Decoded::NeedMore(need) => assert!(need.bytes() > k),
                        other => panic!("prefix {k}: {other:?}"),
                    }
                    // Head mode on a prefix that holds the header: the same packet, cut.
                    if k >= 4 {
                        let (h, u) = mysql::decode_packet_head(&whole[..k], &limits)
                            .unwrap()
                            .frame()
                            .unwrap();
                        assert_eq!((h.seq, h.len, u), (frame.seq, frame.len, used));
                    }
                }
                let mut longer = whole.to_vec();
                longer.extend_from_slice(b"\x05\x00\x00\x00\x03trail");
                assert_eq!(
                    mysql::decode_packet(&longer, &limits).unwrap(),
                    Decoded::Frame { frame, used }
                );
                at += used;
            }
            at
        });
    }
}

/// The whole capture split at every point into two chunks decodes to the same events.
#[test]
fn split_at_every_point() {
    let limits = Limits::default();
    let log = log("conn-0.log");
    let recs = sql_replay::records(&log);
    let up: Vec<u8> = recs
        .iter()
        .filter(|r| !r.0)
        .flat_map(|r| r.1.to_vec())
        .collect();
    let mut want = Vec::new();
    let mut at = 0;
    while let Some((f, u)) = mysql::decode_packet(&up[at..], &limits).unwrap().frame() {
        want.push((f.seq, f.len));
        at += u;
    }
    for split in 0..up.len() {
        let mut got = Vec::new();
        let mut buf = up[..split].to_vec();
        let mut fed = split;
        loop {
            match mysql::decode_packet(&buf, &limits).unwrap() {
                Decoded::Frame { frame, used } => {
                    got.push((frame.seq, frame.len));
                    buf.drain(..used);
                }
                Decoded::NeedMore(_) if fed < up.len() => {
                    buf.extend_from_slice(&up[fed..]);
                    fed = up.len();
                }
                Decoded::NeedMore(_) => break,
            }
        }
        assert_eq!(got, want, "split at {split}");
    }
}

#[test]
fn limits_are_checked_from_the_header() {
    let limits = Limits {
        max_frame: 100,
        max_depth: 8,
    };
    let big = [0xff, 0xff, 0xff, 0x00];
    assert_eq!(
        mysql::decode_packet(&big, &limits),
        Err(mysql::Error::FrameTooLarge {
            len: 4 + 0xff_ffff,
            max: 100
        })
    );
}

/// A 16 MiB + 10 byte COM_QUERY is two packets: the first (0xffffff bytes) is the command,
/// the second a continuation; head mode classifies it from its first bytes.
#[test]
fn multi_packet_payload_in_head_mode() {
    let limits = Limits::default();
    let mut c = Connection::in_commands(mysql::caps::PROTOCOL_41);
    let mut first = vec![0xff, 0xff, 0xff, 0x00, 0x03];
    first.extend_from_slice(b"INSERT INTO t VALUES ('");
    let (m, used) = c
        .decode_request_head(&first, &limits)
        .unwrap()
        .frame()
        .unwrap();
    assert_eq!(used, 4 + 0xff_ffff);
    assert!(matches!(
        m,
        ClientMsg::Command {
            kind: StatementKind::Insert,
            ..
        }
    ));
    let second = [
        10, 0, 0, 1, b'x', b'x', b'x', b'x', b'x', b'x', b'\'', b')', b' ', b' ',
    ];
    let (m, used) = c.decode_request(&second, &limits).unwrap().frame().unwrap();
    assert_eq!((m, used), (ClientMsg::Continuation, 14));
    // The answer: OK.
    let ok = [7, 0, 0, 1, 0, 1, 0, 2, 0, 0, 0];
    let (m, _) = c.decode_response(&ok, &limits).unwrap().frame().unwrap();
    assert!(matches!(m, ServerMsg::Done(r) if r.kind == StatementKind::Insert && r.result.is_ok()));
}

#[test]
fn ssl_request_makes_the_connection_opaque() {
    let limits = Limits::default();
    let mut c = Connection::new();
    let log = log("conn-0.log");
    let greeting = sql_replay::records(&log)[0].1;
    assert!(matches!(
        c.decode_response(greeting, &limits)
            .unwrap()
            .frame()
            .unwrap()
            .0,
        ServerMsg::Greeting(_)
    ));
    let mut ssl = vec![32, 0, 0, 1];
    ssl.extend_from_slice(&(mysql::caps::SSL | mysql::caps::PROTOCOL_41).to_le_bytes());
    ssl.extend_from_slice(&[0; 28]);
    assert_eq!(
        c.decode_request(&ssl, &limits).unwrap().frame().unwrap().0,
        ClientMsg::SslRequest
    );
    assert_eq!(c.phase(), mysql::Phase::Opaque);
    assert_eq!(
        c.decode_request(b"\x16\x03\x01", &limits)
            .unwrap()
            .frame()
            .unwrap(),
        (ClientMsg::Opaque(b"\x16\x03\x01"), 3)
    );
}

#[test]
fn err_encoder_round_trips() {
    let mut out = Vec::new();
    let n = mysql::encode_err(&mut out, 1, 1142, b"42000", b"denied");
    assert_eq!(n, out.len());
    let mut c = Connection::in_commands(mysql::caps::PROTOCOL_41);
    let q = [5, 0, 0, 0, 3, b's', b'e', b'l', b'e'];
    c.decode_request(&q, &Limits::default()).unwrap();
    let (m, _) = c
        .decode_response(&out, &Limits::default())
        .unwrap()
        .frame()
        .unwrap();
    match m {
        ServerMsg::Done(r) => {
            let e = r.result.unwrap_err();
            assert_eq!((e.code, e.state), (1142, &b"42000"[..]));
        }
        other => panic!("{other:?}"),
    }
}
