//! Session frames: requests (`RequestHeader`, the path, the auth scheme, the sub-operations of
//! `multi`/`multiRead`) and replies (`ReplyHeader`, watch events).

use crate::wire::Cursor;
use crate::{Decoded, Limits};

use super::jute::{buffer, int, skip, skip_acls, string, truncated};
use super::{
    frame_len, Error, ErrorCode, EventType, KeeperState, OpCode, OpRequest, Reply, ReplyKind,
    Request, Response, Target, WatchEvent, AUTH_XID, LENGTH_PREFIX, MULTI_HEADER, NOTIFICATION_XID,
    PING_XID, REPLY_HEADER, REQUEST_HEADER, SET_WATCHES_XID,
};

/// One sub-operation of a `multi` or `multiRead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiOp<'a> {
    /// The `MultiHeader` type.
    pub op: OpCode,
    /// Its path; `None` for a type the server does not accept in a multi (the iteration then
    /// stops, as the server would: it cannot know the record's length).
    pub path: Option<&'a str>,
}

/// The sub-operations of a `multi` / `multiRead`, validated when the frame was decoded.
#[derive(Debug, Clone, Copy)]
pub struct MultiOps<'a> {
    cursor: Cursor<'a>,
    done: bool,
}

impl PartialEq for MultiOps<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.done == other.done
            && self.cursor.pos() == other.cursor.pos()
            && self.cursor.rest() == other.cursor.rest()
    }
}
impl Eq for MultiOps<'_> {}

impl<'a> Iterator for MultiOps<'a> {
    type Item = MultiOp<'a>;

    fn next(&mut self) -> Option<MultiOp<'a>> {
        if self.done {
            return None;
        }
        match next_multi_op(&mut self.cursor) {
            Ok(Some((op, stop))) => {
                self.done = stop;
                Some(op)
            }
            // Errors cannot happen: the walk was validated at decode time.
            Ok(None) | Err(_) => {
                self.done = true;
                None
            }
        }
    }
}

/// Reads one `MultiHeader` and its record (`MultiOperationRecord` in ZooKeeper 3.8).
/// `Ok(None)` at the closing header (done = true); `(op, true)` for a type that ends the walk.
fn next_multi_op<'a>(c: &mut Cursor<'a>) -> Result<Option<(MultiOp<'a>, bool)>, Error> {
    let at = c.pos();
    let h = c.take(MULTI_HEADER).ok_or(truncated("multi.header", at))?;
    let op = OpCode::from_i32(i32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    if h[4] != 0 {
        return Ok(None);
    }
    let path = match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            let p = string(c, "multi.path")?;
            buffer(c, "multi.data")?;
            skip_acls(c)?;
            skip(c, 4, "multi.flags")?;
            if op == OpCode::CreateTtl {
                skip(c, 8, "multi.ttl")?;
            }
            p
        }
        OpCode::Delete | OpCode::Check => {
            let p = string(c, "multi.path")?;
            skip(c, 4, "multi.version")?;
            p
        }
        OpCode::SetData => {
            let p = string(c, "multi.path")?;
            buffer(c, "multi.data")?;
            skip(c, 4, "multi.version")?;
            p
        }
        OpCode::GetData | OpCode::GetChildren => {
            let p = string(c, "multi.path")?;
            skip(c, 1, "multi.watch")?;
            p
        }
        _ => return Ok(Some((MultiOp { op, path: None }, true))),
    };
    Ok(Some((
        MultiOp {
            op,
            path: Some(path),
        },
        false,
    )))
}

#[inline]
pub(super) fn decode_op<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    let total = match frame_len(buf, REQUEST_HEADER, limits)? {
        Ok(t) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let frame = &buf[..total];
    let xid = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let op = OpCode::from_i32(i32::from_be_bytes([
        frame[8], frame[9], frame[10], frame[11],
    ]));
    let mut c = Cursor::new(frame);
    c.skip(LENGTH_PREFIX + REQUEST_HEADER);
    let body = c.rest();
    let target = if op.has_path() {
        Target::Path(string(&mut c, "path")?)
    } else {
        match op {
            OpCode::Multi | OpCode::MultiRead => {
                let start = c;
                // Validate the whole walk now so that iterating later cannot fail.
                while let Some((_, stop)) = next_multi_op(&mut c)? {
                    if stop {
                        break;
                    }
                }
                Target::Multi(MultiOps {
                    cursor: start,
                    done: false,
                })
            }
            OpCode::Auth => {
                let auth_type = int(&mut c, "auth.type")?;
                let scheme = string(&mut c, "auth.scheme")?;
                buffer(&mut c, "auth.auth")?;
                Target::Auth { auth_type, scheme }
            }
            _ => Target::None,
        }
    };
    Ok(Decoded::Frame {
        frame: Request::Op(OpRequest {
            xid,
            op,
            target,
            body,
        }),
        used: total,
    })
}

#[inline]
pub(super) fn decode_reply<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Decoded<Response<'a>>, Error> {
    let total = match frame_len(buf, REPLY_HEADER, limits)? {
        Ok(t) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let frame = &buf[..total];
    let mut c = Cursor::new(frame);
    c.skip(LENGTH_PREFIX);
    let (Some(xid), Some(zxid), Some(err)) = (c.i32(), c.i64(), c.i32()) else {
        return Err(truncated("replyHeader", LENGTH_PREFIX));
    };
    let body = c.rest();
    let kind = match xid {
        NOTIFICATION_XID => {
            let event_type = EventType::from_i32(int(&mut c, "event.type")?);
            let state = KeeperState::from_i32(int(&mut c, "event.state")?);
            let path = string(&mut c, "event.path")?;
            ReplyKind::Watch(WatchEvent {
                event_type,
                state,
                path,
            })
        }
        PING_XID => ReplyKind::Ping,
        AUTH_XID => ReplyKind::Auth,
        SET_WATCHES_XID => ReplyKind::SetWatches,
        _ => ReplyKind::Normal,
    };
    Ok(Decoded::Frame {
        frame: Response::Reply(Reply {
            xid,
            zxid,
            err: ErrorCode::from_i32(err),
            kind,
            body,
        }),
        used: total,
    })
}
