//! Head mode: a session frame too big to hold, decoded from its first bytes.

use crate::wire::Cursor;
use crate::{Decoded, Limits, Need};

use super::jute::string;
use super::{
    decode_op, decode_reply, frame_len, Error, ErrorCode, OpCode, OpRequest, Reply, ReplyKind,
    Request, Response, Target, AUTH_XID, LENGTH_PREFIX, NOTIFICATION_XID, PING_XID, REPLY_HEADER,
    REQUEST_HEADER, SET_WATCHES_XID,
};

/// Head mode for a session request: the first bytes of a frame that may be much longer
/// (`used` is its whole length). The xid and opcode are read; the path only if it is at hand
/// (else [`Target::None`]); a multi's operations are not walked ([`Target::None`]).
pub(super) fn op_head<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    let total = match frame_len(buf, REQUEST_HEADER, limits)? {
        Ok(_) => return decode_op(buf, limits),
        Err(Need::Exact(t)) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let mut c = Cursor::new(buf);
    c.skip(LENGTH_PREFIX);
    let (Some(xid), Some(op)) = (c.i32(), c.i32()) else {
        return Ok(Decoded::NeedMore(Need::AtLeast(
            LENGTH_PREFIX + REQUEST_HEADER,
        )));
    };
    let op = OpCode::from_i32(op);
    let body = c.rest();
    let target = match op.has_path() {
        true => string(&mut c, "path").map_or(Target::None, Target::Path),
        false => Target::None,
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

/// Head mode for a session reply (see [`op_head`]): the reply header from the first bytes; a
/// watch event is never that large, so it must be whole.
pub(super) fn reply_head<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Decoded<Response<'a>>, Error> {
    let total = match frame_len(buf, REPLY_HEADER, limits)? {
        Ok(_) => return decode_reply(buf, limits),
        Err(Need::Exact(t)) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let mut c = Cursor::new(buf);
    c.skip(LENGTH_PREFIX);
    let (Some(xid), Some(zxid), Some(err)) = (c.i32(), c.i64(), c.i32()) else {
        return Ok(Decoded::NeedMore(Need::AtLeast(
            LENGTH_PREFIX + REPLY_HEADER,
        )));
    };
    let kind = match xid {
        NOTIFICATION_XID => return Ok(Decoded::NeedMore(Need::Exact(total))),
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
            body: c.rest(),
        }),
        used: total,
    })
}
