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

mod binary;
mod compact;
mod encode;
mod head;
mod header;
mod message;
mod reader;

pub use encode::AppExceptionReply;
pub use head::decode_head;
pub use header::{Header, InfoHeaders, Varints};

use crate::{Decoded, Limits, Need};
use binary::Bin;
use compact::Cpt;
use header::decode_header;
use message::{fast_call, message};
use reader::{Proto, Reader, Stop};

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
