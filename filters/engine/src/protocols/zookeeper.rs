//! ZooKeeper: requests and replies pair by xid. Watch events (xid -1) answer no request and are
//! counted apart; pings (xid -2) and auth (xid -4) are housekeeping. The handshake is paired as
//! the `connect` opcode.

use super::{Ctx, Observe};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind, Tracker};
use meltemi_codec::zookeeper::{self, Connection, ErrorCode, OpCode, ReplyKind, Request, Response};
use meltemi_codec::{Decoded, Limits};

/// The xid the handshake is tracked under (no real request uses it).
const CONNECT_XID: i64 = i64::MIN;

/// Label indexes: the known opcodes in the codec's order, then `connect`, then `unknown`.
fn label(op: Option<OpCode>) -> u16 {
    let n = OpCode::ALL.len();
    match op {
        None => n as u16,
        Some(op) => OpCode::ALL.iter().position(|o| *o == op).unwrap_or(n + 1) as u16,
    }
}

/// The Istio `response_code` values: ZooKeeper's error code numbers (`0`, `-101`, ...) and
/// `other` for codes this version does not know.
fn reply_codes() -> Vec<String> {
    let mut v: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|e| e.as_i32().to_string())
        .collect();
    v.push("other".into());
    v
}

fn code_index(e: ErrorCode) -> u16 {
    ErrorCode::ALL
        .iter()
        .position(|x| *x == e)
        .unwrap_or(ErrorCode::ALL.len()) as u16
}

/// ZooKeeper's [`Observe`]: labelled by opcode; the connection's handshake phase per direction
/// is the codec's [`Connection`].
pub(crate) struct ZooKeeper;

impl Observe for ZooKeeper {
    type Conn = Connection;
    type Request<'a> = Request<'a>;
    type Response<'a> = Response<'a>;
    type Error = zookeeper::Error;

    fn labels(_methods: &[String]) -> LabelSet {
        let mut names: Vec<String> = OpCode::ALL.iter().map(|o| o.as_str().to_string()).collect();
        names.push("connect".into());
        names.push("unknown".into());
        LabelSet {
            family: "opcode",
            names,
            versions: 0,
            exceptions: false,
            reply_codes: reply_codes(),
        }
    }

    #[inline]
    fn decode_request<'a>(
        conn: &mut Connection,
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
    ) -> Result<Decoded<Request<'a>>, zookeeper::Error> {
        if head {
            conn.decode_request_head(buf, limits)
        } else {
            conn.decode_request(buf, limits)
        }
    }

    #[inline]
    fn decode_response<'a>(
        conn: &mut Connection,
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
        _: &Tracker,
    ) -> Result<Decoded<Response<'a>>, zookeeper::Error> {
        if head {
            conn.decode_response_head(buf, limits)
        } else {
            conn.decode_response(buf, limits)
        }
    }

    fn request<S: MetricSink>(frame: &Request<'_>, cx: &mut Ctx<'_, S>) {
        match frame {
            Request::Connect(_) => cx.tracker.request(
                cx.metrics,
                cx.sink,
                CONNECT_XID,
                label(None),
                RequestKind::Event,
                cx.now_ns,
            ),
            Request::Op(op) => {
                let kind = match op.op {
                    OpCode::Ping | OpCode::Auth | OpCode::SetWatches | OpCode::SetWatches2 => {
                        RequestKind::Event
                    }
                    _ => RequestKind::Call,
                };
                cx.tracker.request(
                    cx.metrics,
                    cx.sink,
                    i64::from(op.xid),
                    label(Some(op.op)),
                    kind,
                    cx.now_ns,
                );
            }
            // Four-letter words and what follows are not requests of a session.
            Request::FourLetter(_) | Request::Raw(_) => {}
        }
    }

    fn response<S: MetricSink>(frame: Response<'_>, cx: &mut Ctx<'_, S>) {
        match frame {
            Response::Connect(_) => cx.tracker.response(
                cx.metrics,
                cx.sink,
                CONNECT_XID,
                Outcome::Success,
                code_index(ErrorCode::Ok),
                cx.now_ns,
            ),
            Response::Reply(r) => match r.kind {
                ReplyKind::Watch(_) => cx.tracker.server_event(cx.metrics, cx.sink),
                _ => {
                    let outcome = if r.err == ErrorCode::Ok {
                        Outcome::Success
                    } else {
                        Outcome::Error
                    };
                    cx.tracker.response(
                        cx.metrics,
                        cx.sink,
                        i64::from(r.xid),
                        outcome,
                        code_index(r.err),
                        cx.now_ns,
                    );
                }
            },
            Response::Raw(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_are_zookeepers_numbers() {
        let names = reply_codes();
        assert_eq!(names[code_index(ErrorCode::Ok) as usize], "0");
        assert_eq!(names[code_index(ErrorCode::NoNode) as usize], "-101");
        assert_eq!(
            names[code_index(ErrorCode::from_i32(-999)) as usize],
            "other"
        );
    }
}
