//! Dubbo 2 ("dubbo://") framing with the Hessian2 body fields that routing, policy and metrics need.
//!
//! Wire format (Apache Dubbo 2.x `ExchangeCodec` / `DubboCodec`): a 16-byte header
//!
//! | bytes | field |
//! |-------|-------|
//! | 0-1   | magic `0xdabb` |
//! | 2     | flags: `0x80` request, `0x40` two-way, `0x20` event, low 5 bits serialization id (2 = Hessian2) |
//! | 3     | status (responses; 20 = OK) |
//! | 4-11  | request id (big-endian u64) |
//! | 12-15 | body length (big-endian, a Java `int`) |
//!
//! For Hessian2 bodies this module decodes, without allocating:
//! - requests (`DubboCodec.encodeRequestData`): Dubbo version, service path, service version,
//!   method name, parameter type descriptor (JVM descriptors, which say how many arguments follow),
//!   then skips the arguments and validates the attachments map (exposed as a borrowed iterator);
//! - responses (`encodeResponseData`): for status OK the response kind (`RESPONSE_*`), the raw
//!   value/exception bytes and the attachments of the `*_WITH_ATTACHMENTS` kinds; for other statuses
//!   the error message string (`writeUTF`);
//! - events: a `null` event body is a heartbeat.
//!
//! Hessian2 (<http://hessian.caucho.com/doc/hessian-serialization.html>) is decoded only as far as
//! these fields need: every other value is skipped by its grammar, with every length and count checked
//! against the bytes that remain, and container nesting limited by [`Limits::max_depth`]. Hessian
//! string lengths count UTF-16 code units, so a string's byte length is found by scanning its UTF-8
//! lead bytes; a string that is one chunk of valid UTF-8 is borrowed as `&str`, anything else (chunked
//! strings, Java's CESU-8 surrogates) is exposed as its raw encoding ([`HStr::Raw`]).
//!
//! Not decoded: argument values, non-Hessian2 serializations (their header is decoded and the body is
//! [`RequestPayload::Opaque`]), Dubbo 3 Triple. Bytes after the attachments inside a body are ignored.

mod body;
mod encode;
mod head;
mod header;
mod hessian;

pub use encode::{
    encode_error_response, encode_exception_response, error_response_len, exception_response_len,
    hessian_string_len, supports_response_attachments, write_hessian_string, ExceptionBody,
};
pub use head::decode_head;
pub use header::{
    decode_header, FrameKind, Header, Serialization, Status, FLAG_EVENT, FLAG_REQUEST,
    FLAG_TWO_WAY, HEADER_LEN, HESSIAN2, MAGIC, SERIALIZATION_MASK,
};
pub use hessian::{AttachmentIter, Attachments, HStr, HValue, MAX_CLASSES};

use body::{request_body, response_body};
use core::fmt;
use hessian::Reader;

use crate::{Decoded, Limits};

/// Response kinds written before the value (`DubboCodec.RESPONSE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// 0: `RESPONSE_WITH_EXCEPTION`.
    Exception,
    /// 1: `RESPONSE_VALUE`.
    Value,
    /// 2: `RESPONSE_NULL_VALUE`.
    NullValue,
    /// 3: `RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS`.
    ExceptionWithAttachments,
    /// 4: `RESPONSE_VALUE_WITH_ATTACHMENTS`.
    ValueWithAttachments,
    /// 5: `RESPONSE_NULL_VALUE_WITH_ATTACHMENTS`.
    NullValueWithAttachments,
    /// Any other value: the rest of the body is not interpreted.
    Unknown(i32),
}

impl ResponseKind {
    /// Maps a wire value.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => ResponseKind::Exception,
            1 => ResponseKind::Value,
            2 => ResponseKind::NullValue,
            3 => ResponseKind::ExceptionWithAttachments,
            4 => ResponseKind::ValueWithAttachments,
            5 => ResponseKind::NullValueWithAttachments,
            other => ResponseKind::Unknown(other),
        }
    }
    /// The wire value.
    pub fn code(&self) -> i32 {
        match self {
            ResponseKind::Exception => 0,
            ResponseKind::Value => 1,
            ResponseKind::NullValue => 2,
            ResponseKind::ExceptionWithAttachments => 3,
            ResponseKind::ValueWithAttachments => 4,
            ResponseKind::NullValueWithAttachments => 5,
            ResponseKind::Unknown(c) => *c,
        }
    }
    /// Whether the kind carries an exception.
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            ResponseKind::Exception | ResponseKind::ExceptionWithAttachments
        )
    }
    /// Whether an attachments map follows the value.
    pub fn has_attachments(&self) -> bool {
        matches!(
            self,
            ResponseKind::ExceptionWithAttachments
                | ResponseKind::ValueWithAttachments
                | ResponseKind::NullValueWithAttachments
        )
    }
    /// A static label.
    pub fn as_str(&self) -> &'static str {
        match self {
            ResponseKind::Exception => "exception",
            ResponseKind::Value => "value",
            ResponseKind::NullValue => "null_value",
            ResponseKind::ExceptionWithAttachments => "exception_with_attachments",
            ResponseKind::ValueWithAttachments => "value_with_attachments",
            ResponseKind::NullValueWithAttachments => "null_value_with_attachments",
            ResponseKind::Unknown(_) => "unknown",
        }
    }
}

/// A decoded request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header.
    pub header: Header,
    /// The whole body, for forwarding.
    pub body: &'a [u8],
    /// What the body holds.
    pub payload: RequestPayload<'a>,
}

/// The body of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPayload<'a> {
    /// An RPC invocation.
    Invocation(Invocation<'a>),
    /// A heartbeat (event with null data).
    Heartbeat,
    /// Another event; its data as a raw Hessian value.
    Event(&'a [u8]),
    /// A serialization this module does not decode.
    Opaque,
}

/// The routing fields of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invocation<'a> {
    /// The Dubbo protocol version the client speaks (`null` is `None`).
    pub dubbo_version: Option<HStr<'a>>,
    /// The service path (interface name).
    pub service: HStr<'a>,
    /// The service version (`null` is `None`).
    pub service_version: Option<HStr<'a>>,
    /// The method name.
    pub method: HStr<'a>,
    /// The JVM parameter type descriptor, e.g. `Ljava/lang/String;I` (empty when absent).
    pub parameter_types: HStr<'a>,
    /// Number of arguments the descriptor announces (all were skipped).
    pub arg_count: u32,
    /// The raw Hessian bytes of the arguments.
    pub arguments: &'a [u8],
    /// The attachments map, when the body has one (`null` or an absent map is `None`).
    pub attachments: Option<Attachments<'a>>,
}

/// A decoded response frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// The header.
    pub header: Header,
    /// The whole body, for forwarding.
    pub body: &'a [u8],
    /// What the body holds.
    pub payload: ResponsePayload<'a>,
}

/// The body of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponsePayload<'a> {
    /// Status OK: the RPC result.
    Result(RpcResult<'a>),
    /// Status other than OK: the error message string (`None` when null or absent).
    Error(Option<HStr<'a>>),
    /// A heartbeat response.
    Heartbeat,
    /// Another event response; its data as a raw Hessian value.
    Event(&'a [u8]),
    /// A serialization this module does not decode.
    Opaque,
}

/// The result of an invocation (status OK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcResult<'a> {
    /// The response kind.
    pub kind: ResponseKind,
    /// The raw Hessian bytes of the value or exception (empty for the null kinds; the rest of the
    /// body for an unknown kind).
    pub value: &'a [u8],
    /// The attachments of the `*_WITH_ATTACHMENTS` kinds.
    pub attachments: Option<Attachments<'a>>,
}

impl<'a> RpcResult<'a> {
    /// The class name of a thrown exception when the value defines its class inline (as the first
    /// object of a response body always does), e.g. `java.lang.RuntimeException`.
    pub fn exception_class(&self) -> Option<HStr<'a>> {
        if !self.kind.is_exception() || self.value.first() != Some(&b'C') {
            return None;
        }
        let mut r = Reader::new(self.value, 0, 4);
        r.pos = 1;
        r.string().ok()
    }

    /// The exception's message: the value itself when it is a string (as Envoy and this module's
    /// encoder may write), else the `detailMessage` field of a `Throwable` object defined inline.
    pub fn exception_message(&self) -> Option<HStr<'a>> {
        if !self.kind.is_exception() {
            return None;
        }
        let mut r = Reader::new(self.value, 0, 32);
        match self.value.first()? {
            0x00..=0x1f | 0x30..=0x33 | b'R' | b'S' => r.string().ok(),
            b'C' => r.detail_message().ok().flatten(),
            _ => None,
        }
    }
}

/// A decoded frame of either direction (the flag byte says which). Both peers may send heartbeat
/// requests, so a server-to-client stream can carry requests too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A request.
    Request(Request<'a>),
    /// A response.
    Response(Response<'a>),
}

impl<'a> Message<'a> {
    /// The header.
    pub fn header(&self) -> &Header {
        match self {
            Message::Request(r) => &r.header,
            Message::Response(r) => &r.header,
        }
    }
    /// What kind of frame this is, for metric labels.
    pub fn kind(&self) -> FrameKind {
        let hb = matches!(
            self,
            Message::Request(Request {
                payload: RequestPayload::Heartbeat,
                ..
            }) | Message::Response(Response {
                payload: ResponsePayload::Heartbeat,
                ..
            })
        );
        self.header().kind(hb)
    }
}

/// Why a frame could not be decoded. Offsets count from the first byte of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The first two bytes are not `0xdabb` (`found` holds what was there; a single wrong byte
    /// is reported as soon as it arrives).
    BadMagic {
        /// The offending bytes.
        found: u16,
    },
    /// The body length field is negative as a Java `int` (offset 12).
    NegativeBodyLength {
        /// The raw field.
        raw: u32,
    },
    /// The frame is larger than [`Limits::max_frame`].
    FrameTooLarge {
        /// Header plus body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `decode_request` was given a response, or `decode_response` a request (offset 2).
    WrongDirection {
        /// The flag byte.
        flags: u8,
    },
    /// A Hessian value runs past the end of the body.
    Truncated {
        /// Where the value (or its length) started.
        offset: usize,
    },
    /// A tag byte that the grammar does not allow here.
    UnexpectedTag {
        /// The tag's offset.
        offset: usize,
        /// The tag.
        tag: u8,
    },
    /// String data that is not UTF-8 shaped (bad lead or continuation byte), or a surrogate pair
    /// split across the announced length.
    BadUtf8 {
        /// The offending byte's offset.
        offset: usize,
    },
    /// A length or count that is negative or larger than the bytes that remain.
    BadCount {
        /// The count's offset.
        offset: usize,
    },
    /// Containers nested deeper than [`Limits::max_depth`].
    TooDeep {
        /// The container's offset.
        offset: usize,
    },
    /// An object refers to a class definition that was not given.
    UnknownClass {
        /// The object's offset.
        offset: usize,
    },
    /// More class definitions in one body than this decoder tracks (`MAX_CLASSES`).
    TooManyClasses {
        /// The definition's offset.
        offset: usize,
    },
    /// The parameter type descriptor is not a sequence of JVM field descriptors.
    BadParameterTypes {
        /// The descriptor's offset.
        offset: usize,
    },
}

impl Error {
    /// The byte offset (from the frame start) where the broken rule was found.
    pub fn offset(&self) -> usize {
        match *self {
            Error::BadMagic { .. } => 0,
            Error::NegativeBodyLength { .. } | Error::FrameTooLarge { .. } => 12,
            Error::WrongDirection { .. } => 2,
            Error::Truncated { offset }
            | Error::UnexpectedTag { offset, .. }
            | Error::BadUtf8 { offset }
            | Error::BadCount { offset }
            | Error::TooDeep { offset }
            | Error::UnknownClass { offset }
            | Error::TooManyClasses { offset }
            | Error::BadParameterTypes { offset } => offset,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BadMagic { found } => write!(f, "dubbo: bad magic {found:#06x}, want 0xdabb"),
            Error::NegativeBodyLength { raw } => {
                write!(f, "dubbo: negative body length {raw:#x} at offset 12")
            }
            Error::FrameTooLarge { len, max } => {
                write!(f, "dubbo: frame of {len} bytes exceeds the limit of {max}")
            }
            Error::WrongDirection { flags } => {
                write!(
                    f,
                    "dubbo: flags {flags:#04x} at offset 2 are of the other direction"
                )
            }
            Error::Truncated { offset } => {
                write!(
                    f,
                    "dubbo: hessian value at offset {offset} runs past the body"
                )
            }
            Error::UnexpectedTag { offset, tag } => {
                write!(
                    f,
                    "dubbo: unexpected hessian tag {tag:#04x} at offset {offset}"
                )
            }
            Error::BadUtf8 { offset } => write!(f, "dubbo: bad UTF-8 in string at offset {offset}"),
            Error::BadCount { offset } => {
                write!(
                    f,
                    "dubbo: length or count at offset {offset} exceeds the remaining bytes"
                )
            }
            Error::TooDeep { offset } => {
                write!(
                    f,
                    "dubbo: hessian nesting deeper than the limit at offset {offset}"
                )
            }
            Error::UnknownClass { offset } => {
                write!(
                    f,
                    "dubbo: object at offset {offset} refers to an undefined class"
                )
            }
            Error::TooManyClasses { offset } => {
                write!(f, "dubbo: too many class definitions at offset {offset}")
            }
            Error::BadParameterTypes { offset } => {
                write!(f, "dubbo: bad parameter type descriptor at offset {offset}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Decodes one frame of either direction.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Message<'a>>, Error> {
    let (header, used) = match decode_header(buf, limits)? {
        Decoded::Frame { frame, used } => (frame, used),
        Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
    };
    let body = &buf[HEADER_LEN..used];
    let decoded = if header.is_request() {
        request_body(header, body, limits).map(Message::Request)
    } else {
        response_body(header, body, limits).map(Message::Response)
    };
    let frame = match decoded {
        Ok(m) => m,
        // Id 10 meant protostuff before it meant native Hessian: a body that does not parse as
        // Hessian2 is forwarded as opaque rather than refused.
        Err(_) if header.serialization() == Serialization::NativeHessian => {
            if header.is_request() {
                Message::Request(Request {
                    header,
                    body,
                    payload: RequestPayload::Opaque,
                })
            } else {
                Message::Response(Response {
                    header,
                    body,
                    payload: ResponsePayload::Opaque,
                })
            }
        }
        Err(e) => return Err(e),
    };
    Ok(Decoded::Frame { frame, used })
}

/// Decodes one request frame; a response frame is [`Error::WrongDirection`]. Use [`decode`] on a
/// stream where both peers may send heartbeat requests.
pub fn decode_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    match decode(buf, limits)? {
        Decoded::Frame {
            frame: Message::Request(r),
            used,
        } => Ok(Decoded::Frame { frame: r, used }),
        Decoded::Frame {
            frame: Message::Response(r),
            ..
        } => Err(Error::WrongDirection {
            flags: r.header.flags,
        }),
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
    }
}

/// Decodes one response frame; a request frame is [`Error::WrongDirection`].
pub fn decode_response<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Response<'a>>, Error> {
    match decode(buf, limits)? {
        Decoded::Frame {
            frame: Message::Response(r),
            used,
        } => Ok(Decoded::Frame { frame: r, used }),
        Decoded::Frame {
            frame: Message::Request(r),
            ..
        } => Err(Error::WrongDirection {
            flags: r.header.flags,
        }),
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
    }
}
