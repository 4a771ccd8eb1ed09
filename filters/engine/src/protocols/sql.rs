//! MySQL/MariaDB and PostgreSQL: statements labelled by kind (the codec's first-keyword
//! classifier), logins and prepares as labels of their own, answers in order. The codecs'
//! per-connection state machines (boxed: their rings and statement tables would grow every
//! connection's `Session`) say which server message ends which statement.
//!
//! Labels (`statement.<label>.total|success|error|latency_us`): `select`, `insert`, `update`,
//! `delete`, `other` (`COM_QUERY`/`COM_STMT_EXECUTE`, `Query`/`Execute`), `login` (the
//! handshake: success = logins ok, error = failed), `prepare` (`COM_STMT_PREPARE`), `command`
//! (MySQL's other commands, `COM_PING` etc., as events). Error codes are the Istio
//! `response_code` (MySQL error numbers, PostgreSQL SQLSTATEs, a closed list plus `other`).

use super::{Ctx, Observe};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind, Tracker};
use meltemi_codec::mysql::{self, ClientMsg, Command, ServerMsg};
use meltemi_codec::postgres::{self, Startup};
use meltemi_codec::sql::StatementKind;
use meltemi_codec::{Decoded, Limits};

const LOGIN: u16 = StatementKind::ALL.len() as u16;
const PREPARE: u16 = LOGIN + 1;
const COMMAND: u16 = LOGIN + 2;

fn labels(reply_codes: &[&str]) -> LabelSet {
    let mut names: Vec<String> = StatementKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    names.extend(["login", "prepare", "command"].map(String::from));
    let mut codes: Vec<String> = reply_codes.iter().map(|c| c.to_string()).collect();
    codes.push("other".into());
    LabelSet {
        family: "statement",
        names,
        versions: 0,
        exceptions: false,
        reply_codes: codes,
    }
}

/// MySQL reply codes: `0` (OK), then the error numbers users meet most.
const MYSQL_CODES: &[&str] = &[
    "0", "1044", "1045", "1046", "1049", "1050", "1051", "1054", "1062", "1064", "1142", "1146",
    "1205", "1213", "1227", "1292", "1364", "1406", "1451", "1452", "2013",
];

/// PostgreSQL reply codes: `00000`, then the SQLSTATEs users meet most.
const PG_CODES: &[&str] = &[
    "00000", "22001", "22003", "22012", "22P02", "23502", "23503", "23505", "25P02", "28000",
    "28P01", "3D000", "40001", "40P01", "42501", "42601", "42703", "42P01", "42P07", "53300",
    "57014",
];

fn code_index(table: &[&str], code: &[u8]) -> u16 {
    table
        .iter()
        .position(|c| c.as_bytes() == code)
        .unwrap_or(table.len()) as u16
}

fn request<S: MetricSink>(label: u16, kind: RequestKind, cx: &mut Ctx<'_, S>) {
    cx.tracker
        .request(cx.metrics, cx.sink, 0, label, kind, cx.now_ns);
}

fn answer<S: MetricSink>(code: Option<u16>, cx: &mut Ctx<'_, S>) {
    let (outcome, code) = match code {
        None => (Outcome::Success, 0),
        Some(c) => (Outcome::Error, c),
    };
    cx.tracker
        .response(cx.metrics, cx.sink, 0, outcome, code, cx.now_ns);
}

/// The four decode calls of a codec `Connection` (whole or head), the same for both codecs.
macro_rules! decode_both {
    () => {
        #[inline]
        fn decode_request<'a>(
            conn: &mut Self::Conn,
            buf: &'a [u8],
            head: bool,
            limits: &Limits,
        ) -> Result<Decoded<Self::Request<'a>>, Self::Error> {
            if head {
                conn.decode_request_head(buf, limits)
            } else {
                conn.decode_request(buf, limits)
            }
        }

        #[inline]
        fn decode_response<'a>(
            conn: &mut Self::Conn,
            buf: &'a [u8],
            head: bool,
            limits: &Limits,
            _: &Tracker,
        ) -> Result<Decoded<Self::Response<'a>>, Self::Error> {
            if head {
                conn.decode_response_head(buf, limits)
            } else {
                conn.decode_response(buf, limits)
            }
        }
    };
}

/// MySQL's [`Observe`].
pub(crate) struct MySql;

impl Observe for MySql {
    type Conn = Box<mysql::Connection>;
    type Request<'a> = ClientMsg<'a>;
    type Response<'a> = ServerMsg<'a>;
    type Error = mysql::Error;
    const ORDERED: bool = true;

    fn labels(_methods: &[String]) -> LabelSet {
        labels(MYSQL_CODES)
    }

    decode_both!();

    fn request<S: MetricSink>(frame: &ClientMsg<'_>, cx: &mut Ctx<'_, S>) {
        let ClientMsg::Command { command, kind, .. } = *frame else {
            if let ClientMsg::Login(_) = frame {
                request(LOGIN, RequestKind::Call, cx);
            }
            return;
        };
        match command {
            Command::Query | Command::StmtExecute | Command::StmtBulkExecute => {
                request(kind.index() as u16, RequestKind::Call, cx)
            }
            Command::StmtPrepare => request(PREPARE, RequestKind::Call, cx),
            Command::ChangeUser => request(LOGIN, RequestKind::Call, cx),
            Command::Replication(_) => {}
            c if c.no_reply() => request(COMMAND, RequestKind::Oneway, cx),
            _ => request(COMMAND, RequestKind::Event, cx),
        }
    }

    fn response<S: MetricSink>(frame: ServerMsg<'_>, cx: &mut Ctx<'_, S>) {
        let result = match frame {
            ServerMsg::LoginResult(r) => r,
            ServerMsg::Done(r) => r.result,
            _ => return,
        };
        let code = result.err().map(|e| {
            let mut b = [0u8; 5];
            let n = itoa(e.code, &mut b);
            code_index(MYSQL_CODES, &b[..n])
        });
        answer(code, cx);
    }
}

/// Writes `v` in decimal into `out`; returns the length (no allocation on this path).
fn itoa(mut v: u16, out: &mut [u8; 5]) -> usize {
    let mut tmp = [0u8; 5];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = tmp[n - 1 - i];
    }
    n
}

/// PostgreSQL's [`Observe`].
pub(crate) struct Postgres;

impl Observe for Postgres {
    type Conn = Box<postgres::Connection>;
    type Request<'a> = postgres::ClientMsg<'a>;
    type Response<'a> = postgres::ServerMsg<'a>;
    type Error = postgres::Error;
    const ORDERED: bool = true;

    fn labels(_methods: &[String]) -> LabelSet {
        labels(PG_CODES)
    }

    decode_both!();

    fn request<S: MetricSink>(frame: &postgres::ClientMsg<'_>, cx: &mut Ctx<'_, S>) {
        match *frame {
            postgres::ClientMsg::Startup(Startup::Startup { .. }) => {
                request(LOGIN, RequestKind::Call, cx)
            }
            postgres::ClientMsg::Query { kind, .. } | postgres::ClientMsg::Execute { kind } => {
                request(kind.index() as u16, RequestKind::Call, cx)
            }
            _ => {}
        }
    }

    fn response<S: MetricSink>(frame: postgres::ServerMsg<'_>, cx: &mut Ctx<'_, S>) {
        match frame {
            postgres::ServerMsg::LoginResult(r) => {
                answer(r.err().map(|c| code_index(PG_CODES, c)), cx)
            }
            postgres::ServerMsg::Done(o) => {
                answer(o.result.err().map(|c| code_index(PG_CODES, c)), cx)
            }
            // Statements the server skipped after an error in their batch failed with it.
            postgres::ServerMsg::Ready { skipped, code } => {
                let c = code_index(PG_CODES, &code);
                for _ in 0..skipped {
                    answer(Some(c), cx);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_index_their_tables() {
        let mut b = [0u8; 5];
        let n = itoa(1146, &mut b);
        assert_eq!(&b[..n], b"1146");
        assert_eq!(code_index(MYSQL_CODES, b"1146"), 11);
        assert_eq!(code_index(MYSQL_CODES, b"9999"), MYSQL_CODES.len() as u16);
        assert_eq!(code_index(PG_CODES, b"42P01"), 17);
        let l = labels(PG_CODES);
        assert_eq!(l.names[usize::from(LOGIN)], "login");
        assert_eq!(l.names[usize::from(COMMAND)], "command");
        assert_eq!(l.reply_codes.last().map(String::as_str), Some("other"));
    }
}
