//! THeader (Apache Thrift `doc/specs/HeaderFormat.md`): the fixed fields, the transform ids and
//! info key/value headers (borrowed, walked on demand), and the decoder of a whole THeader frame.

use crate::Limits;

use super::{
    fast_call, frame_err, message, Error, Frame, Protocol, Reader, Transport, HEADER_PROTO_BINARY,
    HEADER_PROTO_COMPACT,
};

/// The fixed fields and borrowed header region of a THeader frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The 16-bit flags after the magic.
    pub flags: u16,
    /// The THeader sequence id (separate from the message's).
    pub seq_id: i32,
    /// The protocol id (0 binary, 2 compact).
    pub protocol_id: u32,
    /// How many transforms (e.g. 1 = zlib) were applied to the payload.
    pub transform_count: u32,
    transforms: &'a [u8],
    info: &'a [u8],
}

impl<'a> Header<'a> {
    /// The transform ids, in the order they were written.
    pub fn transforms(&self) -> Varints<'a> {
        Varints {
            buf: self.transforms,
            pos: 0,
        }
    }

    /// The info key/value headers (types 1 and 2), in wire order.
    pub fn headers(&self) -> InfoHeaders<'a> {
        InfoHeaders {
            buf: self.info,
            pos: 0,
            left: 0,
        }
    }

    /// The value of the first header named `key`.
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.headers().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Iterator over a run of compact varints (THeader transform ids).
#[derive(Debug, Clone)]
pub struct Varints<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Iterator for Varints<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        varint_at(self.buf, &mut self.pos).ok()
    }
}

/// Iterator over THeader info key/value headers.
#[derive(Debug, Clone)]
pub struct InfoHeaders<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u32,
}

/// One THeader info key/value pair, borrowed.
type KeyValue<'a> = (&'a [u8], &'a [u8]);

impl<'a> InfoHeaders<'a> {
    /// One step; `Err(offset)` (relative to the info region) names broken structure.
    fn step(&mut self) -> Result<Option<KeyValue<'a>>, usize> {
        while self.left == 0 {
            if self.pos >= self.buf.len() {
                return Ok(None);
            }
            let at = self.pos;
            let ty = varint_at(self.buf, &mut self.pos).map_err(|_| at)?;
            // 1 = INFO_KEYVALUE, 2 = INFO_PKEYVALUE (persistent, same layout). Anything else,
            // including 0 (padding), ends the info headers, as Apache's readers do.
            if ty != 1 && ty != 2 {
                self.pos = self.buf.len();
                return Ok(None);
            }
            let at = self.pos;
            let n = varint_at(self.buf, &mut self.pos).map_err(|_| at)?;
            // Each pair takes at least two bytes (two empty strings).
            if n as usize > (self.buf.len() - self.pos) / 2 {
                return Err(at);
            }
            self.left = n;
        }
        let k = string_at(self.buf, &mut self.pos)?;
        let v = string_at(self.buf, &mut self.pos)?;
        self.left -= 1;
        Ok(Some((k, v)))
    }
}

impl<'a> Iterator for InfoHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        self.step().ok().flatten()
    }
}

pub(super) fn varint_at(buf: &[u8], pos: &mut usize) -> Result<u32, ()> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = *buf.get(*pos).ok_or(())?;
        *pos += 1;
        if i == 4 && b > 0x0f {
            return Err(());
        }
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(())
}

fn string_at<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], usize> {
    let at = *pos;
    let n = varint_at(buf, pos).map_err(|_| at)? as usize;
    let s = buf.get(*pos..pos.checked_add(n).ok_or(at)?).ok_or(at)?;
    *pos += n;
    Ok(s)
}

/// Decodes a whole THeader frame (`frame` is exactly the frame, length word included).
/// Layout (HeaderFormat.md): length(4) magic(2) flags(2) seq_id(4) header_words(2)
/// headers(header_words * 4) payload.
pub(super) fn decode_header<'a>(
    frame: &'a [u8],
    limits: &Limits,
    streaming: bool,
) -> Result<Frame<'a>, Error> {
    if frame.len() < 14 {
        return Err(Error::BadHeader {
            offset: frame.len().min(4),
        });
    }
    let flags = u16::from_be_bytes([frame[6], frame[7]]);
    let seq_id = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
    let words = u16::from_be_bytes([frame[12], frame[13]]) as usize;
    let end = 14 + words * 4;
    let region = frame.get(14..end).ok_or(Error::BadHeader { offset: 12 })?;
    let mut pos = 0;
    let protocol_id = varint_at(region, &mut pos).map_err(|_| Error::BadHeader { offset: 14 })?;
    let at = pos;
    let transform_count =
        varint_at(region, &mut pos).map_err(|_| Error::BadHeader { offset: 14 + at })?;
    if transform_count as usize > region.len() - pos {
        return Err(Error::BadHeader { offset: 14 + at });
    }
    let t_start = pos;
    for _ in 0..transform_count {
        let at = pos;
        varint_at(region, &mut pos).map_err(|_| Error::BadHeader { offset: 14 + at })?;
    }
    let transforms = &region[t_start..pos];
    let info = &region[pos..];
    let mut it = InfoHeaders {
        buf: info,
        pos: 0,
        left: 0,
    };
    loop {
        match it.step() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(at) => {
                return Err(Error::BadHeader {
                    offset: 14 + pos + at,
                })
            }
        }
    }
    let header = Header {
        flags,
        seq_id,
        protocol_id,
        transform_count,
        transforms,
        info,
    };
    let payload = &frame[end..];
    let proto = match protocol_id {
        HEADER_PROTO_BINARY => Protocol::Binary,
        HEADER_PROTO_COMPACT => Protocol::Compact,
        id => Protocol::Unknown(id),
    };
    let mut frame_out = Frame {
        transport: Transport::Header,
        protocol: proto,
        header: Some(header),
        message: None,
        payload,
    };
    if transform_count == 0 && !matches!(proto, Protocol::Unknown(_)) {
        if let Some((p, msg, _)) = fast_call(frame, end)? {
            if p == proto {
                frame_out.message = Some(msg);
                return Ok(frame_out);
            }
        }
        let mut r = Reader {
            buf: frame,
            pos: end,
            streaming,
            open: 0,
            max_depth: limits.max_depth,
        };
        let (proto, msg) = message(&mut r, proto, false).map_err(frame_err)?;
        frame_out.protocol = proto;
        frame_out.message = Some(msg);
    }
    Ok(frame_out)
}
