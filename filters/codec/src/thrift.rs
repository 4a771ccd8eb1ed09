//! Thrift: the binary (strict and lax) and compact protocols over the framed, unframed and
//! THeader transports.
//!
//! [`decode`] detects the transport and protocol from the first bytes the way Apache Thrift's
//! `THeaderTransport.readFrame` does, and returns the message header (name, `service:method`
//! split, type, sequence id), the THeader fields and key/value headers, and for replies whether
//! the result struct holds the success field (id 0) or a declared exception (id > 0), or, for
//! `EXCEPTION` messages, the `TApplicationException` message and type code.
//!
//! Framed and THeader frames are skipped by their length prefix: only the message header (and a
//! reply's first field, or the small `TApplicationException` struct) is read. An unframed message
//! has no length, so its end is found by skipping the argument/result struct field by field; while
//! the message is incomplete, [`Need::AtLeast`] gives a lower bound (the end of the read that ran
//! out, plus one `STOP` byte per struct still open). Nesting is bounded by [`Limits::max_depth`]
//! (recursion depth of the skipper) and every count is checked against the bytes that remain.
//!
//! Unframed lax binary (no version word) cannot be told apart from a frame length; a connection
//! known to speak it uses [`decode_unframed`] with [`Protocol::LaxBinary`].
//!
//! Specs followed: Apache Thrift `doc/specs/thrift-binary-protocol.md`,
//! `thrift-compact-protocol.md`, `HeaderFormat.md` and `thrift-rpc.md` (message types, result
//! structs, `TApplicationException`).

use crate::{Decoded, Limits, Need};

/// The transport (framing) a frame arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A 4-byte big-endian length, then the message (`TFramedTransport`).
    Framed,
    /// The message alone (`TBufferedTransport`): its end is found by skipping its struct.
    Unframed,
    /// THeader: a 4-byte length, magic `0x0FFF`, flags, sequence id, headers, then the message.
    Header,
}

impl Transport {
    /// A static label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Framed => "framed",
            Transport::Unframed => "unframed",
            Transport::Header => "header",
        }
    }
}

/// The protocol (serialization) of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Binary protocol with the version word `0x8001_00TT` (strict write).
    Binary,
    /// Old-style binary protocol: name first, no version word.
    LaxBinary,
    /// Compact protocol (`0x82`, version 1).
    Compact,
    /// A THeader protocol id other than binary (0) or compact (2): the message is not decoded.
    Unknown(u32),
}

impl Protocol {
    /// A static label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Binary => "binary",
            Protocol::LaxBinary => "binary_lax",
            Protocol::Compact => "compact",
            Protocol::Unknown(_) => "unknown",
        }
    }
}

/// The message type (`TMessageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1: a call that expects a reply.
    Call,
    /// 2: a reply (the result struct).
    Reply,
    /// 3: a `TApplicationException` instead of a reply.
    Exception,
    /// 4: a call without reply.
    Oneway,
    /// Any other value, kept as data.
    Unknown(u8),
}

impl MessageType {
    /// From the wire value.
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => MessageType::Call,
            2 => MessageType::Reply,
            3 => MessageType::Exception,
            4 => MessageType::Oneway,
            v => MessageType::Unknown(v),
        }
    }

    /// The wire value.
    pub fn as_u8(&self) -> u8 {
        match self {
            MessageType::Call => 1,
            MessageType::Reply => 2,
            MessageType::Exception => 3,
            MessageType::Oneway => 4,
            MessageType::Unknown(v) => *v,
        }
    }

    /// A static label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageType::Call => "call",
            MessageType::Reply => "reply",
            MessageType::Exception => "exception",
            MessageType::Oneway => "oneway",
            MessageType::Unknown(_) => "unknown",
        }
    }
}

/// `TApplicationException` type codes (Apache Thrift `TApplicationException.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppExceptionType {
    /// 0
    Unknown,
    /// 1
    UnknownMethod,
    /// 2
    InvalidMessageType,
    /// 3
    WrongMethodName,
    /// 4
    BadSequenceId,
    /// 5
    MissingResult,
    /// 6
    InternalError,
    /// 7
    ProtocolError,
    /// 8
    InvalidTransform,
    /// 9
    InvalidProtocol,
    /// 10
    UnsupportedClientType,
    /// Any other code, kept as data.
    Other(i32),
}

impl AppExceptionType {
    /// From the wire value.
    pub fn from_i32(v: i32) -> Self {
        use AppExceptionType::*;
        match v {
            0 => Unknown,
            1 => UnknownMethod,
            2 => InvalidMessageType,
            3 => WrongMethodName,
            4 => BadSequenceId,
            5 => MissingResult,
            6 => InternalError,
            7 => ProtocolError,
            8 => InvalidTransform,
            9 => InvalidProtocol,
            10 => UnsupportedClientType,
            v => Other(v),
        }
    }

    /// The wire value.
    pub fn as_i32(&self) -> i32 {
        use AppExceptionType::*;
        match self {
            Unknown => 0,
            UnknownMethod => 1,
            InvalidMessageType => 2,
            WrongMethodName => 3,
            BadSequenceId => 4,
            MissingResult => 5,
            InternalError => 6,
            ProtocolError => 7,
            InvalidTransform => 8,
            InvalidProtocol => 9,
            UnsupportedClientType => 10,
            Other(v) => *v,
        }
    }

    /// A static label for metrics.
    pub fn as_str(&self) -> &'static str {
        use AppExceptionType::*;
        match self {
            Unknown => "unknown",
            UnknownMethod => "unknown_method",
            InvalidMessageType => "invalid_message_type",
            WrongMethodName => "wrong_method_name",
            BadSequenceId => "bad_sequence_id",
            MissingResult => "missing_result",
            InternalError => "internal_error",
            ProtocolError => "protocol_error",
            InvalidTransform => "invalid_transform",
            InvalidProtocol => "invalid_protocol",
            UnsupportedClientType => "unsupported_client_type",
            Other(_) => "other",
        }
    }
}

/// A `TApplicationException` (an `EXCEPTION` message's struct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppException<'a> {
    /// Field 1, the message, as sent (Thrift strings are UTF-8 by convention; not checked).
    pub message: Option<&'a [u8]>,
    /// Field 2, the type code ([`AppExceptionType::Unknown`] when absent).
    pub kind: AppExceptionType,
}

/// What a reply carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus<'a> {
    /// A `REPLY` whose result struct holds field 0 (success), or is empty (a `void` method).
    Success,
    /// A `REPLY` whose result struct holds a declared exception (field id != 0).
    DeclaredException {
        /// The field id of the exception in the result struct.
        field_id: i16,
    },
    /// An `EXCEPTION` message.
    AppException(AppException<'a>),
}

/// One message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The message type.
    pub kind: MessageType,
    /// The full name as sent (`service:method` when multiplexed).
    pub name: &'a str,
    /// The service of a multiplexed name (before the first `:`).
    pub service: Option<&'a str>,
    /// The method (after the first `:`, or the whole name).
    pub method: &'a str,
    /// The sequence id.
    pub seq_id: i32,
    /// For `REPLY` and `EXCEPTION` messages: what the reply carries.
    pub reply: Option<ReplyStatus<'a>>,
}

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

fn varint_at(buf: &[u8], pos: &mut usize) -> Result<u32, ()> {
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

/// One decoded Thrift frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// How the frame was delimited.
    pub transport: Transport,
    /// How the message is serialized.
    pub protocol: Protocol,
    /// The THeader fields, for [`Transport::Header`].
    pub header: Option<Header<'a>>,
    /// The message header; `None` only for a THeader frame whose payload is transformed (zlib)
    /// or in an unknown protocol, which is forwarded as is.
    pub message: Option<Message<'a>>,
    /// The message bytes (after the length prefix or THeader headers).
    pub payload: &'a [u8],
}

/// Broken structure, with the byte offset (from the start of the input) where it broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The frame (or, unframed, the bytes known to belong to it) exceeds `Limits::max_frame`.
    FrameTooLarge {
        /// The length known so far.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A version word with the high bit set that is not binary version 1, or a compact
    /// protocol byte with a version other than 1.
    BadVersion {
        /// Offset of the version.
        offset: usize,
    },
    /// A string or container size is negative.
    NegativeSize {
        /// Offset of the size.
        offset: usize,
    },
    /// The message or a struct in it runs past the end of its frame.
    Truncated {
        /// Offset of the read that ran past the end.
        offset: usize,
    },
    /// A field or element type that the protocol does not define.
    BadType {
        /// Offset of the type.
        offset: usize,
        /// The type found.
        ty: u8,
    },
    /// Containers nest deeper than `Limits::max_depth`.
    TooDeep {
        /// Offset of the container that went too deep.
        offset: usize,
    },
    /// A varint longer than its type allows.
    BadVarint {
        /// Offset of the varint.
        offset: usize,
    },
    /// The message name is not UTF-8.
    NameNotUtf8 {
        /// Offset of the name.
        offset: usize,
    },
    /// The THeader header region runs past the frame, or a header in it is broken.
    BadHeader {
        /// Offset of the broken header field.
        offset: usize,
    },
}

impl Error {
    /// The offset where the input broke (0 for `FrameTooLarge`).
    pub fn offset(&self) -> usize {
        match *self {
            Error::FrameTooLarge { .. } => 0,
            Error::BadVersion { offset }
            | Error::NegativeSize { offset }
            | Error::Truncated { offset }
            | Error::BadType { offset, .. }
            | Error::TooDeep { offset }
            | Error::BadVarint { offset }
            | Error::NameNotUtf8 { offset }
            | Error::BadHeader { offset } => offset,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::FrameTooLarge { len, max } => {
                write!(f, "thrift: frame of {len} bytes exceeds the limit of {max}")
            }
            Error::BadVersion { offset } => {
                write!(f, "thrift: bad protocol version at byte {offset}")
            }
            Error::NegativeSize { offset } => write!(f, "thrift: negative size at byte {offset}"),
            Error::Truncated { offset } => {
                write!(f, "thrift: message runs past its frame at byte {offset}")
            }
            Error::BadType { offset, ty } => {
                write!(f, "thrift: unknown type {ty} at byte {offset}")
            }
            Error::TooDeep { offset } => write!(f, "thrift: nesting too deep at byte {offset}"),
            Error::BadVarint { offset } => write!(f, "thrift: varint too long at byte {offset}"),
            Error::NameNotUtf8 { offset } => {
                write!(f, "thrift: message name is not UTF-8 at byte {offset}")
            }
            Error::BadHeader { offset } => write!(f, "thrift: broken THeader at byte {offset}"),
        }
    }
}

impl std::error::Error for Error {}

// ---- wire constants (Apache Thrift specs) ----------------------------------------------------

const BINARY_VERSION_MASK: u32 = 0xffff_0000;
const BINARY_VERSION_1: u32 = 0x8001_0000;
const COMPACT_PROTOCOL_ID: u8 = 0x82;
const COMPACT_VERSION: u8 = 1;
const COMPACT_VERSION_MASK: u8 = 0x1f;
const COMPACT_TYPE_SHIFT: u8 = 5;
const HEADER_MAGIC: u16 = 0x0fff;
const HEADER_PROTO_BINARY: u32 = 0;
const HEADER_PROTO_COMPACT: u32 = 2;

// ---- the reader ------------------------------------------------------------------------------

/// Why a read stopped: out of input (with a lower bound of the bytes needed), or broken.
enum Stop {
    Short(usize),
    Bad(Error),
}

type R<T> = Result<T, Stop>;

/// A cursor over `buf[..end]` with absolute offsets. `streaming` (unframed) turns running out of
/// bytes into a lower bound; otherwise the end is the frame's end and running out is an error.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    streaming: bool,
    /// Structs entered and not yet closed: each still needs at least its `STOP` byte.
    open: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn short(&self, end: Option<usize>) -> Stop {
        if self.streaming {
            Stop::Short(
                end.and_then(|e| e.checked_add(self.open))
                    .unwrap_or(usize::MAX),
            )
        } else {
            Stop::Bad(Error::Truncated { offset: self.pos })
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n);
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.short(end)),
        }
    }

    #[inline]
    fn skip(&mut self, n: usize) -> R<()> {
        self.take(n).map(|_| ())
    }

    #[inline]
    fn u8(&mut self) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.short(Some(self.pos + 1))),
        }
    }

    /// Reads a field header's first byte: it may be the `STOP` of the innermost open struct,
    /// so that struct's own `STOP` is not counted again in a lower bound.
    #[inline]
    fn field_byte(&mut self) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => {
                let end = self.pos + 1;
                Err(if self.streaming {
                    Stop::Short(end + self.open.saturating_sub(1))
                } else {
                    Stop::Bad(Error::Truncated { offset: self.pos })
                })
            }
        }
    }

    #[inline]
    fn be16(&mut self) -> R<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    #[inline]
    fn be32(&mut self) -> R<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A compact-protocol varint of at most `max` bytes.
    #[inline]
    fn varint(&mut self, max: u32) -> R<u64> {
        let at = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0;
        for _ in 0..max {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
        Err(Stop::Bad(Error::BadVarint { offset: at }))
    }

    /// A compact 32-bit varint (sizes, sequence ids).
    #[inline]
    fn varint32(&mut self) -> R<u32> {
        let at = self.pos;
        let v = self.varint(5)?;
        u32::try_from(v).map_err(|_| Stop::Bad(Error::BadVarint { offset: at }))
    }

    #[inline]
    fn enter(&self, depth: usize, at: usize) -> R<usize> {
        if depth >= self.max_depth {
            Err(Stop::Bad(Error::TooDeep { offset: at }))
        } else {
            Ok(depth + 1)
        }
    }

    /// `count` elements of at least `min` bytes each must fit before any is read.
    #[inline]
    fn fits(&self, count: usize, min: usize) -> R<()> {
        let need = count.checked_mul(min).and_then(|n| n.checked_add(self.pos));
        match need {
            Some(n) if n <= self.buf.len() => Ok(()),
            _ => Err(self.short(need)),
        }
    }
}

/// The protocol-specific pieces the generic struct walkers need.
trait Proto {
    const STRING: u8;
    const I32: u8;
    /// Reads a field header: `None` at `STOP`, else (type, id). `last` is the previous field id
    /// (compact deltas).
    fn field(r: &mut Reader<'_>, last: &mut i16) -> R<Option<(u8, i16)>>;
    /// Skips a field value of type `ty` at nesting `depth`.
    fn skip(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()>;
    fn string<'a>(r: &mut Reader<'a>) -> R<&'a [u8]>;
    fn i32(r: &mut Reader<'_>) -> R<i32>;
}

struct Bin;
struct Cpt;

/// Smallest encoding of a binary-protocol value of type `ty`, or `None` for an unknown type.
#[inline]
fn bin_min(ty: u8) -> Option<usize> {
    Some(match ty {
        2 | 3 => 1,   // bool, byte
        4 | 10 => 8,  // double, i64
        6 => 2,       // i16
        8 => 4,       // i32
        11 => 4,      // string/binary: length
        12 => 1,      // struct: STOP
        13 => 6,      // map: key type, value type, size
        14 | 15 => 5, // set, list: element type, size
        16 => 16,     // uuid
        _ => return None,
    })
}

/// Fixed width of a binary-protocol scalar, for skipping a whole container at once.
#[inline]
fn bin_fixed(ty: u8) -> Option<usize> {
    match ty {
        2 | 3 | 4 | 6 | 8 | 10 | 16 => bin_min(ty),
        _ => None,
    }
}

impl Bin {
    fn size(r: &mut Reader<'_>) -> R<usize> {
        let at = r.pos;
        let n = r.be32()?;
        usize::try_from(n).map_err(|_| Stop::Bad(Error::NegativeSize { offset: at }))
    }

    fn check_type(ty: u8, at: usize) -> R<usize> {
        bin_min(ty).ok_or(Stop::Bad(Error::BadType { offset: at, ty }))
    }
}

impl Proto for Bin {
    const STRING: u8 = 11;
    const I32: u8 = 8;

    #[inline]
    fn field(r: &mut Reader<'_>, _last: &mut i16) -> R<Option<(u8, i16)>> {
        let ty = r.field_byte()?;
        if ty == 0 {
            return Ok(None);
        }
        let id = r.be16()?;
        Ok(Some((ty, id)))
    }

    fn skip(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()> {
        let at = r.pos;
        match ty {
            11 => {
                let n = Bin::size(r)?;
                r.skip(n)
            }
            12 => {
                let depth = r.enter(depth, at)?;
                r.open += 1;
                loop {
                    let t_at = r.pos;
                    let t = r.field_byte()?;
                    if t == 0 {
                        break;
                    }
                    r.skip(2)?;
                    // Scalars and strings inline; only containers recurse.
                    if let Some(w) = bin_fixed(t) {
                        r.skip(w)?;
                    } else if t == 11 {
                        let n = Bin::size(r)?;
                        r.skip(n)?;
                    } else {
                        Bin::check_type(t, t_at)?;
                        Bin::skip(r, t, depth)?;
                    }
                }
                r.open -= 1;
                Ok(())
            }
            13 => {
                let depth = r.enter(depth, at)?;
                let kt = r.u8()?;
                let vt = r.u8()?;
                let n = Bin::size(r)?;
                if n == 0 {
                    return Ok(());
                }
                let k = Bin::check_type(kt, at)?;
                let v = Bin::check_type(vt, at + 1)?;
                r.fits(n, k + v)?;
                if let (Some(k), Some(v)) = (bin_fixed(kt), bin_fixed(vt)) {
                    return r.skip(n * (k + v));
                }
                for _ in 0..n {
                    Bin::skip(r, kt, depth)?;
                    Bin::skip(r, vt, depth)?;
                }
                Ok(())
            }
            14 | 15 => {
                let depth = r.enter(depth, at)?;
                let et = r.u8()?;
                let n = Bin::size(r)?;
                if n == 0 {
                    return Ok(());
                }
                let e = Bin::check_type(et, at)?;
                r.fits(n, e)?;
                if let Some(e) = bin_fixed(et) {
                    return r.skip(n * e);
                }
                for _ in 0..n {
                    Bin::skip(r, et, depth)?;
                }
                Ok(())
            }
            _ => {
                let n = Bin::check_type(ty, at)?;
                r.skip(n)
            }
        }
    }

    #[inline]
    fn string<'a>(r: &mut Reader<'a>) -> R<&'a [u8]> {
        let n = Bin::size(r)?;
        r.take(n)
    }

    #[inline]
    fn i32(r: &mut Reader<'_>) -> R<i32> {
        r.be32()
    }
}

// Compact types: 1/2 bool true/false, 3 byte, 4 i16, 5 i32, 6 i64, 7 double, 8 binary,
// 9 list, 10 set, 11 map, 12 struct, 13 uuid.
#[inline]
fn cpt_min(ty: u8) -> Option<usize> {
    Some(match ty {
        1..=6 | 8..=12 => 1,
        7 => 8,
        13 => 16,
        _ => return None,
    })
}

impl Cpt {
    fn check_type(ty: u8, at: usize) -> R<usize> {
        cpt_min(ty).ok_or(Stop::Bad(Error::BadType { offset: at, ty }))
    }

    /// Skips an element value (in a container, a bool takes one byte).
    fn skip_elem(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()> {
        match ty {
            1..=3 => r.skip(1),
            _ => Cpt::skip(r, ty, depth),
        }
    }

    fn size(r: &mut Reader<'_>) -> R<usize> {
        let at = r.pos;
        let n = r.varint32()?;
        if n > i32::MAX as u32 {
            return Err(Stop::Bad(Error::NegativeSize { offset: at }));
        }
        Ok(n as usize)
    }
}

impl Proto for Cpt {
    const STRING: u8 = 8;
    const I32: u8 = 5;

    #[inline]
    fn field(r: &mut Reader<'_>, last: &mut i16) -> R<Option<(u8, i16)>> {
        let at = r.pos;
        let b = r.field_byte()?;
        if b == 0 {
            return Ok(None);
        }
        let ty = b & 0x0f;
        let delta = b >> 4;
        let id = if delta == 0 {
            let v = r.varint(3)?;
            let v = u16::try_from(v).map_err(|_| Stop::Bad(Error::BadVarint { offset: at + 1 }))?;
            ((v >> 1) as i16) ^ -((v & 1) as i16)
        } else {
            last.wrapping_add(i16::from(delta))
        };
        Cpt::check_type(ty, at)?;
        *last = id;
        Ok(Some((ty, id)))
    }

    fn skip(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()> {
        let at = r.pos;
        match ty {
            1 | 2 => Ok(()), // a bool field's value is in its type
            3 => r.skip(1),
            4 => r.varint(3).map(|_| ()),
            5 => r.varint(5).map(|_| ()),
            6 => r.varint(10).map(|_| ()),
            7 => r.skip(8),
            8 => {
                let n = Cpt::size(r)?;
                r.skip(n)
            }
            9 | 10 => {
                let depth = r.enter(depth, at)?;
                let h = r.u8()?;
                let et = h & 0x0f;
                let n = if h >> 4 == 15 {
                    Cpt::size(r)?
                } else {
                    usize::from(h >> 4)
                };
                if n == 0 {
                    return Ok(());
                }
                let e = Cpt::check_type(et, at)?;
                r.fits(n, e)?;
                match et {
                    1..=3 => r.skip(n),
                    7 => r.skip(n * 8),
                    13 => r.skip(n * 16),
                    _ => {
                        for _ in 0..n {
                            Cpt::skip_elem(r, et, depth)?;
                        }
                        Ok(())
                    }
                }
            }
            11 => {
                let depth = r.enter(depth, at)?;
                let n = Cpt::size(r)?;
                if n == 0 {
                    return Ok(());
                }
                let kv_at = r.pos;
                let kv = r.u8()?;
                let (kt, vt) = (kv >> 4, kv & 0x0f);
                let k = Cpt::check_type(kt, kv_at)?;
                let v = Cpt::check_type(vt, kv_at)?;
                r.fits(n, k + v)?;
                for _ in 0..n {
                    Cpt::skip_elem(r, kt, depth)?;
                    Cpt::skip_elem(r, vt, depth)?;
                }
                Ok(())
            }
            12 => {
                let depth = r.enter(depth, at)?;
                r.open += 1;
                let mut last = 0;
                while let Some((t, _)) = Cpt::field(r, &mut last)? {
                    // Scalars and strings inline; only containers recurse.
                    match t {
                        1 | 2 => {}
                        3 => r.skip(1)?,
                        4..=6 => {
                            r.varint([3, 5, 10][usize::from(t - 4)])?;
                        }
                        7 => r.skip(8)?,
                        8 => {
                            let n = Cpt::size(r)?;
                            r.skip(n)?;
                        }
                        _ => Cpt::skip(r, t, depth)?,
                    }
                }
                r.open -= 1;
                Ok(())
            }
            13 => r.skip(16),
            _ => Err(Stop::Bad(Error::BadType { offset: at, ty })),
        }
    }

    #[inline]
    fn string<'a>(r: &mut Reader<'a>) -> R<&'a [u8]> {
        let n = Cpt::size(r)?;
        r.take(n)
    }

    #[inline]
    fn i32(r: &mut Reader<'_>) -> R<i32> {
        let v = r.varint32()?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
}

// ---- message ---------------------------------------------------------------------------------

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
fn fast_call(frame: &[u8], at: usize) -> Result<Option<(Protocol, Message<'_>, usize)>, Error> {
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
fn message<'a>(r: &mut Reader<'a>, proto: Protocol, full: bool) -> R<(Protocol, Message<'a>)> {
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

fn unstop<F>(s: Stop, limits: &Limits) -> Result<Decoded<F>, Error> {
    match s {
        Stop::Bad(e) => Err(e),
        Stop::Short(n) if n > limits.max_frame => Err(Error::FrameTooLarge {
            len: n,
            max: limits.max_frame,
        }),
        Stop::Short(n) => Ok(Decoded::NeedMore(Need::AtLeast(n))),
    }
}

fn frame_err(s: Stop) -> Error {
    match s {
        Stop::Bad(e) => e,
        // Not reachable in framed mode (reads are bounded by the frame); keep it an error.
        Stop::Short(n) => Error::Truncated { offset: n },
    }
}

#[inline]
fn is_compact(b0: u8, b1: u8) -> bool {
    b0 == COMPACT_PROTOCOL_ID && b1 & COMPACT_VERSION_MASK == COMPACT_VERSION
}

/// Decodes one frame, detecting the transport and protocol (framed, THeader, or unframed strict
/// binary / compact; framed lax binary is recognised inside a frame).
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Frame<'a>>, Error> {
    if buf.len() < 4 {
        return Ok(Decoded::NeedMore(Need::AtLeast(4)));
    }
    let w = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if w & BINARY_VERSION_MASK == BINARY_VERSION_1 {
        return decode_unframed(buf, Protocol::Binary, limits);
    }
    if is_compact(buf[0], buf[1]) {
        return decode_unframed(buf, Protocol::Compact, limits);
    }
    if w & 0x8000_0000 != 0 {
        return Err(Error::BadVersion { offset: 0 });
    }
    let total = w as usize + 4;
    if total > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: total,
            max: limits.max_frame,
        });
    }
    if buf.len() < total {
        return Ok(Decoded::NeedMore(Need::Exact(total)));
    }
    let frame = &buf[..total];
    if total >= 6 && u16::from_be_bytes([frame[4], frame[5]]) == HEADER_MAGIC {
        return decode_header(frame, limits, false).map(|f| Decoded::Frame {
            frame: f,
            used: total,
        });
    }
    if let Some((protocol, message, _)) = fast_call(frame, 4)? {
        return Ok(Decoded::Frame {
            frame: Frame {
                transport: Transport::Framed,
                protocol,
                header: None,
                message: Some(message),
                payload: &frame[4..],
            },
            used: total,
        });
    }
    let proto = if total >= 6 && is_compact(frame[4], frame[5]) {
        Protocol::Compact
    } else {
        Protocol::Binary // strict or lax, told apart by the sign of the first word
    };
    let mut r = Reader {
        buf: frame,
        pos: 4,
        streaming: false,
        open: 0,
        max_depth: limits.max_depth,
    };
    let (proto, msg) = message(&mut r, proto, false).map_err(frame_err)?;
    Ok(Decoded::Frame {
        frame: Frame {
            transport: Transport::Framed,
            protocol: proto,
            header: None,
            message: Some(msg),
            payload: &frame[4..],
        },
        used: total,
    })
}

/// Decodes one unframed message in a known protocol (the only way to read unframed lax binary).
pub fn decode_unframed<'a>(
    buf: &'a [u8],
    protocol: Protocol,
    limits: &Limits,
) -> Result<Decoded<Frame<'a>>, Error> {
    let mut r = Reader {
        buf,
        pos: 0,
        streaming: true,
        open: 0,
        max_depth: limits.max_depth,
    };
    // Fast path: a strict binary or compact call whose header is all here; then the struct.
    if protocol != Protocol::LaxBinary {
        if let Some((p, msg, end)) = fast_call(buf, 0)? {
            if p == protocol {
                r.pos = end;
                let skipped = match p {
                    Protocol::Compact => Cpt::skip(&mut r, 12, 0),
                    _ => Bin::skip(&mut r, 12, 0),
                };
                if let Err(s) = skipped {
                    return unstop(s, limits);
                }
                return unframed_frame(buf, p, msg, r.pos, limits);
            }
        }
    }
    let (protocol, msg) = match message(&mut r, protocol, true) {
        Ok(m) => m,
        Err(s) => return unstop(s, limits),
    };
    unframed_frame(buf, protocol, msg, r.pos, limits)
}

#[inline]
fn unframed_frame<'a>(
    buf: &'a [u8],
    protocol: Protocol,
    msg: Message<'a>,
    used: usize,
    limits: &Limits,
) -> Result<Decoded<Frame<'a>>, Error> {
    if used > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: used,
            max: limits.max_frame,
        });
    }
    Ok(Decoded::Frame {
        frame: Frame {
            transport: Transport::Unframed,
            protocol,
            header: None,
            message: Some(msg),
            payload: &buf[..used],
        },
        used,
    })
}

/// Decodes a whole THeader frame (`frame` is exactly the frame, length word included).
/// Layout (HeaderFormat.md): length(4) magic(2) flags(2) seq_id(4) header_words(2)
/// headers(header_words * 4) payload.
fn decode_header<'a>(
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

/// Decodes a client-to-server frame (Thrift's wire format is the same both ways).
#[inline]
pub fn decode_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Frame<'a>>, Error> {
    decode(buf, limits)
}

/// Decodes a server-to-client frame (Thrift's wire format is the same both ways).
#[inline]
pub fn decode_response<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Frame<'a>>, Error> {
    decode(buf, limits)
}

// ---- encoder ---------------------------------------------------------------------------------

/// A locally generated `TApplicationException` reply (an `EXCEPTION` message), in the
/// transport and protocol of the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppExceptionReply<'a> {
    /// The request's transport.
    pub transport: Transport,
    /// The request's protocol; [`Protocol::Unknown`] is answered in strict binary.
    pub protocol: Protocol,
    /// The request's message name (as sent, `service:method` included).
    pub name: &'a str,
    /// The request's sequence id (also the THeader sequence id).
    pub seq_id: i32,
    /// The exception type code.
    pub kind: AppExceptionType,
    /// The exception message.
    pub message: &'a str,
}

fn varint_len(mut v: u32) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

impl AppExceptionReply<'_> {
    fn proto(&self) -> Protocol {
        match self.protocol {
            Protocol::Unknown(_) => Protocol::Binary,
            p => p,
        }
    }

    fn message_len(&self) -> usize {
        let (n, m) = (self.name.len(), self.message.len());
        match self.proto() {
            Protocol::Compact => {
                2 + varint_len(self.seq_id as u32)
                    + varint_len(n as u32)
                    + n
                    + 1
                    + varint_len(m as u32)
                    + m
                    + 1
                    + varint_len(zigzag32(self.kind.as_i32()))
                    + 1
            }
            Protocol::LaxBinary => 9 + n + 15 + m,
            _ => 12 + n + 15 + m,
        }
    }

    /// The exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self.transport {
            Transport::Unframed => self.message_len(),
            Transport::Framed => 4 + self.message_len(),
            // length, magic, flags, seq id, header words, one word of headers.
            Transport::Header => 14 + 4 + self.message_len(),
        }
    }

    /// Appends the reply to `out`; returns the number of bytes written.
    pub fn encode(&self, out: &mut Vec<u8>) -> usize {
        let len = self.encoded_len();
        out.reserve(len);
        let start = out.len();
        let body = self.message_len();
        let proto = self.proto();
        match self.transport {
            Transport::Unframed => {}
            Transport::Framed => out.extend_from_slice(&(body as u32).to_be_bytes()),
            Transport::Header => {
                out.extend_from_slice(&((body + 14) as u32).to_be_bytes());
                out.extend_from_slice(&HEADER_MAGIC.to_be_bytes());
                out.extend_from_slice(&0u16.to_be_bytes());
                out.extend_from_slice(&self.seq_id.to_be_bytes());
                out.extend_from_slice(&1u16.to_be_bytes());
                let id = if proto == Protocol::Compact {
                    HEADER_PROTO_COMPACT
                } else {
                    HEADER_PROTO_BINARY
                };
                // protocol id, no transforms, two bytes of padding.
                out.extend_from_slice(&[id as u8, 0, 0, 0]);
            }
        }
        let (n, m) = (self.name.len(), self.message.len());
        match proto {
            Protocol::Compact => {
                out.push(COMPACT_PROTOCOL_ID);
                out.push((3 << COMPACT_TYPE_SHIFT) | COMPACT_VERSION);
                put_varint(out, self.seq_id as u32);
                put_varint(out, n as u32);
                out.extend_from_slice(self.name.as_bytes());
                out.push(0x18); // field 1 (delta 1), binary
                put_varint(out, m as u32);
                out.extend_from_slice(self.message.as_bytes());
                out.push(0x15); // field 2 (delta 1), i32
                put_varint(out, zigzag32(self.kind.as_i32()));
                out.push(0);
            }
            _ => {
                if proto == Protocol::LaxBinary {
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                    out.extend_from_slice(self.name.as_bytes());
                    out.push(3);
                } else {
                    out.extend_from_slice(&(BINARY_VERSION_1 | 3).to_be_bytes());
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                    out.extend_from_slice(self.name.as_bytes());
                }
                out.extend_from_slice(&self.seq_id.to_be_bytes());
                out.extend_from_slice(&[11, 0, 1]);
                out.extend_from_slice(&(m as u32).to_be_bytes());
                out.extend_from_slice(self.message.as_bytes());
                out.extend_from_slice(&[8, 0, 2]);
                out.extend_from_slice(&self.kind.as_i32().to_be_bytes());
                out.push(0);
            }
        }
        debug_assert_eq!(out.len() - start, len);
        out.len() - start
    }
}
