//! PostgreSQL codec against captured PostgreSQL 15 traffic (`testdata/postgres/README.md`).
mod sql_replay;

use meltemi_codec::postgres::{self, ClientMsg, Connection, ServerMsg, Startup};
use meltemi_codec::{Decoded, Limits};

fn log(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/testdata/postgres/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn events(name: &str) -> Vec<String> {
    let limits = Limits::default();
    let mut c = Connection::new();
    let mut ev = Vec::new();
    sql_replay::replay(&log(name), |client, buf| {
        let mut at = 0;
        while at < buf.len() {
            let rest = &buf[at..];
            let used = if client {
                match c.decode_request(rest, &limits).unwrap() {
                    Decoded::NeedMore(_) => break,
                    Decoded::Frame { frame, used } => {
                        match frame {
                            ClientMsg::Startup(Startup::Ssl) => ev.push("ssl".into()),
                            ClientMsg::Startup(s @ Startup::Startup { .. }) => ev.push(format!(
                                "startup {}",
                                String::from_utf8_lossy(s.param(b"user").unwrap_or(b"?"))
                            )),
                            ClientMsg::Query { kind, .. } => {
                                ev.push(format!("> Q {}", kind.as_str()))
                            }
                            ClientMsg::Execute { kind } => {
                                ev.push(format!("> E {}", kind.as_str()))
                            }
                            _ => {}
                        }
                        used
                    }
                }
            } else {
                match c.decode_response(rest, &limits).unwrap() {
                    Decoded::NeedMore(_) => break,
                    Decoded::Frame { frame, used } => {
                        match frame {
                            ServerMsg::EncryptionAnswer(a) => ev.push(format!("< {}", a as char)),
                            ServerMsg::LoginResult(Ok(())) => ev.push("login ok".into()),
                            ServerMsg::LoginResult(Err(code)) => {
                                ev.push(format!("login failed {}", String::from_utf8_lossy(code)))
                            }
                            ServerMsg::Done(o) => ev.push(match o.result {
                                Ok(()) => format!("< ok {} rows={}", o.kind.as_str(), o.rows),
                                Err(code) => format!(
                                    "< err {} {}",
                                    o.kind.as_str(),
                                    String::from_utf8_lossy(code)
                                ),
                            }),
                            ServerMsg::Ready { skipped, .. } if skipped > 0 => {
                                ev.push(format!("skipped {skipped}"))
                            }
                            _ => {}
                        }
                        used
                    }
                }
            };
            at += used;
        }
        at
    });
    assert_eq!(c.pending(), 0, "{name}: everything answered");
    ev
}

#[test]
fn psql_session() {
    let ev = events("conn-0.log");
    let want = [
        "ssl",
        "< N",
        "startup meltemi",
        "login ok",
        "> Q other",
        "< ok other rows=0",
        "> Q insert",
        "< ok insert rows=2",
        "> Q select",
        "< ok select rows=2",
        "> Q update",
        "< ok update rows=1",
        "> Q delete",
        "< ok delete rows=1",
        "> Q select",
        "< err select 42P01",
        "> Q other",
        "< ok other rows=1",
    ];
    assert_eq!(ev, want, "{ev:#?}");
}

#[test]
fn failed_login() {
    assert_eq!(
        events("conn-1.log"),
        ["ssl", "< N", "startup meltemi", "login failed 28P01"]
    );
}

#[test]
fn psycopg_extended_query() {
    let ev = events("conn-2.log");
    let sel = ev.iter().filter(|e| *e == "> E select").count();
    assert_eq!(sel, 7, "{ev:#?}");
    assert!(ev.contains(&"< ok insert rows=1".to_string()), "{ev:#?}");
    assert!(ev.contains(&"< err select 42P01".to_string()), "{ev:#?}");
}

#[test]
fn ssl_request_answered_no() {
    let ev = events("conn-3.log");
    assert_eq!(
        &ev[..4],
        ["ssl", "< N", "startup meltemi", "login ok"],
        "{ev:#?}"
    );
}

#[test]
fn ssl_request_answered_yes_is_opaque() {
    let limits = Limits::default();
    let mut c = Connection::new();
    let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    assert_eq!(
        c.decode_request(&ssl, &limits).unwrap().frame().unwrap().0,
        ClientMsg::Startup(Startup::Ssl)
    );
    assert_eq!(
        c.decode_response(b"S\x16\x03", &limits)
            .unwrap()
            .frame()
            .unwrap(),
        (ServerMsg::EncryptionAnswer(b'S'), 1)
    );
    assert_eq!(
        c.decode_request(b"\x16\x03\x01", &limits)
            .unwrap()
            .frame()
            .unwrap()
            .0,
        ClientMsg::Opaque(b"\x16\x03\x01")
    );
}

#[test]
fn every_prefix_needs_more_and_split_points_agree() {
    let limits = Limits::default();
    for n in 0..4 {
        let log = log(&format!("conn-{n}.log"));
        for (client, bytes) in sql_replay::records(&log) {
            // Startup packets and one-byte answers are not typed messages.
            let mut at = 0;
            while let Ok(Decoded::Frame { frame, used }) =
                postgres::decode_message(&bytes[at..], &limits)
            {
                if !frame.tag.is_ascii_alphanumeric() {
                    break;
                }
                let whole = &bytes[at..at + used];
                for k in 0..used {
                    match postgres::decode_message(&whole[..k], &limits).unwrap() {
                        Decoded::NeedMore(need) => assert!(need.bytes() > k),
                        other => panic!("{client} prefix {k}: {other:?}"),
                    }
                }
                let mut longer = whole.to_vec();
                longer.extend_from_slice(b"Z\0\0\0\x05I");
                assert_eq!(
                    postgres::decode_message(&longer, &limits).unwrap(),
                    Decoded::Frame { frame, used }
                );
                at += used;
            }
        }
    }
}

#[test]
fn malformed_lengths_are_errors_with_offsets() {
    let limits = Limits::default();
    assert_eq!(
        postgres::decode_message(b"Q\0\0\0\x02", &limits),
        Err(postgres::Error::BadLength { len: 2, offset: 1 })
    );
    assert_eq!(
        postgres::decode_startup(b"\0\0\0\x08\0\x09\0\0", &limits),
        Err(postgres::Error::BadStartupCode { code: 0x0009_0000 })
    );
    let small = Limits {
        max_frame: 64,
        max_depth: 8,
    };
    assert!(matches!(
        postgres::decode_message(b"Q\x7f\0\0\0", &small),
        Err(postgres::Error::FrameTooLarge { .. })
    ));
}

#[test]
fn tags_and_error_encoder() {
    assert_eq!(postgres::tag_rows(b"INSERT 0 12\0"), 12);
    assert_eq!(postgres::tag_rows(b"SELECT 3\0"), 3);
    assert_eq!(postgres::tag_rows(b"BEGIN\0"), 0);
    let mut out = Vec::new();
    let n = postgres::encode_error(&mut out, b"42501", b"denied");
    assert_eq!(n, out.len());
    let (m, used) = postgres::decode_message(&out, &Limits::default())
        .unwrap()
        .frame()
        .unwrap();
    assert_eq!((m.tag, used), (b'E', out.len()));
    assert_eq!(postgres::error_code(m.body), b"42501");
}
