//! Head mode: a framed or THeader frame too big to hold, decoded from its first bytes.

use crate::{Decoded, Limits, Need};

use super::{
    decode, decode_header, fast_call, is_compact, message, Error, Frame, Protocol, Reader, Stop,
    Transport, HEADER_MAGIC,
};

/// Head mode: decodes the framed or THeader message whose first bytes are `buf` (the frame may
/// be much longer: `used` is its whole length) from those bytes only: the transport header,
/// the message header and a reply's first field (its status) are read, the `payload` view holds
/// what is at hand. [`Need::AtLeast`] when those are cut. An unframed message has no length, so
/// it decodes as [`decode`] does (it must be held whole).
pub fn decode_head<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Frame<'a>>, Error> {
    let total = match decode(buf, limits)? {
        Decoded::NeedMore(Need::Exact(t)) if buf.len() < t => t,
        whole_or_unframed => return Ok(whole_or_unframed),
    };
    let more = |n: usize| Ok(Decoded::NeedMore(Need::AtLeast(n.max(buf.len() + 1))));
    let framed = |f: Frame<'a>| Decoded::Frame {
        frame: f,
        used: total,
    };
    if buf.len() < 6 {
        return more(6);
    }
    if u16::from_be_bytes([buf[4], buf[5]]) == HEADER_MAGIC {
        if buf.len() < 14 {
            return more(14);
        }
        let end = 14 + u16::from_be_bytes([buf[12], buf[13]]) as usize * 4;
        if end > total {
            return Err(Error::BadHeader { offset: 12 });
        }
        if end > buf.len() {
            return more(end);
        }
        return match decode_header(buf, limits, true) {
            Ok(f) => Ok(framed(f)),
            Err(Error::Truncated { offset }) => more(offset),
            Err(e) => Err(e),
        };
    }
    if let Some((protocol, message, _)) = fast_call(buf, 4)? {
        return Ok(framed(Frame {
            transport: Transport::Framed,
            protocol,
            header: None,
            message: Some(message),
            payload: &buf[4..],
        }));
    }
    let proto = if is_compact(buf[4], buf[5]) {
        Protocol::Compact
    } else {
        Protocol::Binary
    };
    let mut r = Reader {
        buf,
        pos: 4,
        streaming: true,
        open: 0,
        max_depth: limits.max_depth,
    };
    match message(&mut r, proto, false) {
        Ok((protocol, msg)) => Ok(framed(Frame {
            transport: Transport::Framed,
            protocol,
            header: None,
            message: Some(msg),
            payload: &buf[4..],
        })),
        Err(Stop::Short(n)) => more(n),
        Err(Stop::Bad(e)) => Err(e),
    }
}
