//! The message header (name, type, sequence id) in either protocol, the fast path for calls, and
//! what a reply or `TApplicationException` carries (`thrift-rpc.md`).

use super::header::varint_at;
use super::reader::{Proto, Reader, Stop, R};
use super::{
    AppException, AppExceptionType, Bin, Cpt, Error, Message, MessageType, Protocol, ReplyStatus,
    BINARY_VERSION_1, BINARY_VERSION_MASK, COMPACT_PROTOCOL_ID, COMPACT_TYPE_SHIFT,
    COMPACT_VERSION, COMPACT_VERSION_MASK,
};

/// Reads the message header; returns the protocol actually seen (strict or lax binary).
#[inline]
fn message_begin<'a>(
    r: &mut Reader<'a>,
    proto: Protocol,
) -> R<(Protocol, MessageType, &'a [u8], usize, i32)> {
    match proto {
        Protocol::Compact => {
            let at = r.pos;
            let id = r.u8()?;
            let vt = r.u8()?;
            if id != COMPACT_PROTOCOL_ID || vt & COMPACT_VERSION_MASK != COMPACT_VERSION {
                return Err(Stop::Bad(Error::BadVersion { offset: at }));
            }
            let seq = r.varint32()? as i32;
            let name_at = r.pos;
            let name = Cpt::string(r)?;
            Ok((
                Protocol::Compact,
                MessageType::from_u8(vt >> COMPACT_TYPE_SHIFT),
                name,
                name_at,
                seq,
            ))
        }
        _ => {
            let at = r.pos;
            let w = r.be32()?;
            if w < 0 {
                let w = w as u32;
                if proto == Protocol::LaxBinary || w & BINARY_VERSION_MASK != BINARY_VERSION_1 {
                    return Err(Stop::Bad(Error::BadVersion { offset: at }));
                }
                let name_at = r.pos;
                let name = Bin::string(r)?;
                let seq = r.be32()?;
                Ok((
                    Protocol::Binary,
                    MessageType::from_u8(w as u8),
                    name,
                    name_at,
                    seq,
                ))
            } else {
                let name = r.take(w as usize)?;
                let ty = r.u8()?;
                let seq = r.be32()?;
                Ok((Protocol::LaxBinary, MessageType::from_u8(ty), name, at, seq))
            }
        }
    }
}

/// Reads what a reply carries; with `full`, skips the whole struct (unframed), else stops as
/// soon as the status is known (framed: the frame length already delimits the message).
fn body<'a, P: Proto>(
    r: &mut Reader<'a>,
    kind: MessageType,
    full: bool,
) -> R<Option<ReplyStatus<'a>>> {
    let at = r.pos;
    match kind {
        MessageType::Exception => {
            let depth = r.enter(0, at)?;
            r.open = 1;
            let mut ex = AppException {
                message: None,
                kind: AppExceptionType::Unknown,
            };
            let mut last = 0;
            while let Some((ty, id)) = P::field(r, &mut last)? {
                match (id, ty) {
                    (1, t) if t == P::STRING => ex.message = Some(P::string(r)?),
                    (2, t) if t == P::I32 => ex.kind = AppExceptionType::from_i32(P::i32(r)?),
                    _ => P::skip(r, ty, depth)?,
                }
            }
            r.open = 0;
            Ok(Some(ReplyStatus::AppException(ex)))
        }
        MessageType::Reply => {
            let depth = r.enter(0, at)?;
            r.open = 1;
            let mut last = 0;
            let status = match P::field(r, &mut last)? {
                None => {
                    r.open = 0;
                    return Ok(Some(ReplyStatus::Success));
                }
                Some((ty, id)) => {
                    if full {
                        P::skip(r, ty, depth)?;
                        while let Some((ty, _)) = P::field(r, &mut last)? {
                            P::skip(r, ty, depth)?;
                        }
                    }
                    if id == 0 {
                        ReplyStatus::Success
                    } else {
                        ReplyStatus::DeclaredException { field_id: id }
                    }
                }
            };
            r.open = 0;
            Ok(Some(status))
        }
        _ => {
            if full {
                r.open = 0;
                P::skip(r, 12, 0)?;
            }
            Ok(None)
        }
    }
}

/// Fast path for the common case inside a frame: a strict binary or compact call or oneway,
/// whose struct need not be looked into. `None` sends everything else (and any doubt) to the
/// general path, which also reports errors with their offsets.
#[inline(always)]
pub(super) fn fast_call(
    frame: &[u8],
    at: usize,
) -> Result<Option<(Protocol, Message<'_>, usize)>, Error> {
    let m = match frame.get(at..) {
        Some(m) if m.len() >= 4 => m,
        _ => return Ok(None),
    };
    // `name_at`: where the name's bytes start; `err_at`: the offset the general path reports.
    let (proto, kind, name_at, n, seq_id, err_at);
    if m[0] == 0x80 && m[1] == 0x01 && matches!(m[3], 1 | 4) && m.len() >= 12 {
        proto = Protocol::Binary;
        kind = m[3];
        n = u32::from_be_bytes([m[4], m[5], m[6], m[7]]) as usize;
        if n > m.len() - 12 {
            return Ok(None);
        }
        let s = &m[8 + n..12 + n];
        seq_id = i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
        name_at = 8;
        err_at = 4;
    } else if m[0] == COMPACT_PROTOCOL_ID
        && m[1] & COMPACT_VERSION_MASK == COMPACT_VERSION
        && matches!(m[1] >> COMPACT_TYPE_SHIFT, 1 | 4)
    {
        proto = Protocol::Compact;
        kind = m[1] >> COMPACT_TYPE_SHIFT;
        let mut pos = 2;
        seq_id = match varint_at(m, &mut pos) {
            Ok(v) => v as i32,
            Err(()) => return Ok(None),
        };
        err_at = pos;
        n = match varint_at(m, &mut pos) {
            Ok(v) if (v as usize) <= m.len() - pos => v as usize,
            _ => return Ok(None),
        };
        name_at = pos;
    } else {
        return Ok(None);
    }
    let name = core::str::from_utf8(&m[name_at..name_at + n]).map_err(|_| Error::NameNotUtf8 {
        offset: at + err_at,
    })?;
    let (service, method) = split_name(name);
    let kind = MessageType::from_u8(kind);
    let reply = None;
    // Where the message header ends (the binary sequence id follows the name).
    let end = at + name_at + n + if proto == Protocol::Binary { 4 } else { 0 };
    Ok(Some((
        proto,
        Message {
            kind,
            name,
            service,
            method,
            seq_id,
            reply,
        },
        end,
    )))
}

/// Splits a multiplexed `service:method` name at the first `:` (`TMultiplexedProtocol`).
#[inline(always)]
fn split_name(name: &str) -> (Option<&str>, &str) {
    match name.bytes().position(|b| b == b':') {
        // `:` is ASCII, so both sides are on char boundaries.
        Some(i) => (name.get(..i), name.get(i + 1..).unwrap_or("")),
        None => (None, name),
    }
}

/// Decodes one message (header and, as needed, body) at `r.pos`.
#[inline]
pub(super) fn message<'a>(
    r: &mut Reader<'a>,
    proto: Protocol,
    full: bool,
) -> R<(Protocol, Message<'a>)> {
    // The argument/result struct after the header needs at least its STOP byte.
    r.open = 1;
    let (proto, kind, name, name_at, seq_id) = message_begin(r, proto)?;
    let name = core::str::from_utf8(name)
        .map_err(|_| Stop::Bad(Error::NameNotUtf8 { offset: name_at }))?;
    let (service, method) = split_name(name);
    let reply = match proto {
        Protocol::Compact => body::<Cpt>(r, kind, full)?,
        _ => body::<Bin>(r, kind, full)?,
    };
    Ok((
        proto,
        Message {
            kind,
            name,
            service,
            method,
            seq_id,
            reply,
        },
    ))
}
