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

use core::fmt;

use crate::{Decoded, Limits, Need};

/// Length of the fixed Dubbo header.
pub const HEADER_LEN: usize = 16;
/// The magic number that opens every frame.
pub const MAGIC: u16 = 0xdabb;
/// Flag bit: the frame is a request (else a response).
pub const FLAG_REQUEST: u8 = 0x80;
/// Flag bit: the request expects a response.
pub const FLAG_TWO_WAY: u8 = 0x40;
/// Flag bit: the frame is an event (a heartbeat when its data is null).
pub const FLAG_EVENT: u8 = 0x20;
/// Mask of the serialization id in the flag byte.
pub const SERIALIZATION_MASK: u8 = 0x1f;
/// Serialization id of Hessian2.
pub const HESSIAN2: u8 = 2;

/// The fixed 16-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The raw flag byte.
    pub flags: u8,
    /// The raw status byte (meaningful in responses).
    pub status: u8,
    /// The request id that pairs a response with its request.
    pub request_id: u64,
    /// Body length in bytes.
    pub body_len: u32,
}

impl Header {
    /// Whether the frame is a request.
    #[inline]
    pub fn is_request(&self) -> bool {
        self.flags & FLAG_REQUEST != 0
    }
    /// Whether a request expects a response (false for one-way requests).
    #[inline]
    pub fn is_two_way(&self) -> bool {
        self.flags & FLAG_TWO_WAY != 0
    }
    /// Whether the frame is an event (heartbeat or other).
    #[inline]
    pub fn is_event(&self) -> bool {
        self.flags & FLAG_EVENT != 0
    }
    /// The raw serialization id.
    #[inline]
    pub fn serialization_id(&self) -> u8 {
        self.flags & SERIALIZATION_MASK
    }
    /// The serialization, as a label.
    #[inline]
    pub fn serialization(&self) -> Serialization {
        Serialization::from_id(self.serialization_id())
    }
    /// The status, as a label.
    #[inline]
    pub fn status(&self) -> Status {
        Status::from_code(self.status)
    }
    /// Total frame length (header and body).
    #[inline]
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }
    /// What kind of frame this is, for metric labels.
    pub fn kind(&self, heartbeat: bool) -> FrameKind {
        match (self.is_request(), self.is_event(), heartbeat) {
            (true, true, true) => FrameKind::HeartbeatRequest,
            (true, true, false) => FrameKind::EventRequest,
            (true, false, _) if self.is_two_way() => FrameKind::Request,
            (true, false, _) => FrameKind::OneWayRequest,
            (false, true, true) => FrameKind::HeartbeatResponse,
            (false, true, false) => FrameKind::EventResponse,
            (false, false, _) => FrameKind::Response,
        }
    }
}

/// Frame kinds, a closed set for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A two-way request.
    Request,
    /// A one-way request (no response expected).
    OneWayRequest,
    /// A response.
    Response,
    /// A heartbeat request (event with null data).
    HeartbeatRequest,
    /// A heartbeat response.
    HeartbeatResponse,
    /// Another event request (for example Dubbo's read-only event).
    EventRequest,
    /// Another event response.
    EventResponse,
}

impl FrameKind {
    /// A static label.
    pub fn as_str(&self) -> &'static str {
        match self {
            FrameKind::Request => "request",
            FrameKind::OneWayRequest => "oneway_request",
            FrameKind::Response => "response",
            FrameKind::HeartbeatRequest => "heartbeat_request",
            FrameKind::HeartbeatResponse => "heartbeat_response",
            FrameKind::EventRequest => "event_request",
            FrameKind::EventResponse => "event_response",
        }
    }
}

/// Serialization ids of Apache Dubbo (`org.apache.dubbo.common.serialize.Constants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serialization {
    /// 2: Hessian2 (the default; the only one whose body this module decodes).
    Hessian2,
    /// 3: Java serialization.
    Java,
    /// 4: compacted Java serialization.
    CompactedJava,
    /// 6: fastjson.
    FastJson,
    /// 7: native Java.
    NativeJava,
    /// 8: Kryo.
    Kryo,
    /// 9: FST.
    Fst,
    /// 10: native Hessian (Caucho's Hessian2: the same wire format, decoded best-effort, since
    /// older Dubbo releases used 10 for protostuff).
    NativeHessian,
    /// 11: Avro.
    Avro,
    /// 12: protostuff.
    Protostuff,
    /// 16: Gson.
    Gson,
    /// 21: protobuf-json.
    ProtobufJson,
    /// Any other id.
    Unknown(u8),
}

impl Serialization {
    /// Maps a wire id.
    pub fn from_id(id: u8) -> Self {
        match id {
            2 => Serialization::Hessian2,
            3 => Serialization::Java,
            4 => Serialization::CompactedJava,
            6 => Serialization::FastJson,
            7 => Serialization::NativeJava,
            8 => Serialization::Kryo,
            9 => Serialization::Fst,
            10 => Serialization::NativeHessian,
            11 => Serialization::Avro,
            12 => Serialization::Protostuff,
            16 => Serialization::Gson,
            21 => Serialization::ProtobufJson,
            other => Serialization::Unknown(other),
        }
    }
    /// A static label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Serialization::Hessian2 => "hessian2",
            Serialization::Java => "java",
            Serialization::CompactedJava => "compactedjava",
            Serialization::FastJson => "fastjson",
            Serialization::NativeJava => "nativejava",
            Serialization::Kryo => "kryo",
            Serialization::Fst => "fst",
            Serialization::NativeHessian => "native-hessian",
            Serialization::Avro => "avro",
            Serialization::Protostuff => "protostuff",
            Serialization::Gson => "gson",
            Serialization::ProtobufJson => "protobuf-json",
            Serialization::Unknown(_) => "unknown",
        }
    }
    fn is_hessian(&self) -> bool {
        matches!(self, Serialization::Hessian2 | Serialization::NativeHessian)
    }
}

/// Response statuses (`org.apache.dubbo.remoting.exchange.Response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 20
    Ok,
    /// 30
    ClientTimeout,
    /// 31
    ServerTimeout,
    /// 35
    ChannelInactive,
    /// 40
    BadRequest,
    /// 50
    BadResponse,
    /// 60
    ServiceNotFound,
    /// 70
    ServiceError,
    /// 80
    ServerError,
    /// 90
    ClientError,
    /// 100
    ServerThreadpoolExhausted,
    /// Any other value.
    Unknown(u8),
}

impl Status {
    /// Maps a wire status.
    pub fn from_code(code: u8) -> Self {
        match code {
            20 => Status::Ok,
            30 => Status::ClientTimeout,
            31 => Status::ServerTimeout,
            35 => Status::ChannelInactive,
            40 => Status::BadRequest,
            50 => Status::BadResponse,
            60 => Status::ServiceNotFound,
            70 => Status::ServiceError,
            80 => Status::ServerError,
            90 => Status::ClientError,
            100 => Status::ServerThreadpoolExhausted,
            other => Status::Unknown(other),
        }
    }
    /// The wire value.
    pub fn code(&self) -> u8 {
        match self {
            Status::Ok => 20,
            Status::ClientTimeout => 30,
            Status::ServerTimeout => 31,
            Status::ChannelInactive => 35,
            Status::BadRequest => 40,
            Status::BadResponse => 50,
            Status::ServiceNotFound => 60,
            Status::ServiceError => 70,
            Status::ServerError => 80,
            Status::ClientError => 90,
            Status::ServerThreadpoolExhausted => 100,
            Status::Unknown(c) => *c,
        }
    }
    /// A static label (Dubbo's constant names, lower case).
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ClientTimeout => "client_timeout",
            Status::ServerTimeout => "server_timeout",
            Status::ChannelInactive => "channel_inactive",
            Status::BadRequest => "bad_request",
            Status::BadResponse => "bad_response",
            Status::ServiceNotFound => "service_not_found",
            Status::ServiceError => "service_error",
            Status::ServerError => "server_error",
            Status::ClientError => "client_error",
            Status::ServerThreadpoolExhausted => "server_threadpool_exhausted_error",
            Status::Unknown(_) => "unknown",
        }
    }
}

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

/// A Hessian2 string as found on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HStr<'a> {
    /// One chunk of valid UTF-8, borrowed.
    Utf8(&'a str),
    /// The raw Hessian encoding (tag, lengths and data) of a chunked string or of one whose bytes
    /// are not valid UTF-8 (Java writes supplementary characters as CESU-8 surrogate pairs).
    Raw(&'a [u8]),
}

impl<'a> HStr<'a> {
    /// The string, when it could be borrowed as UTF-8.
    #[inline]
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            HStr::Utf8(s) => Some(s),
            HStr::Raw(_) => None,
        }
    }
}

/// A Hessian2 value inside an attachments map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HValue<'a> {
    /// A string.
    Str(HStr<'a>),
    /// `null`.
    Null,
    /// Any other value, as its raw Hessian encoding.
    Other(&'a [u8]),
}

impl<'a> HValue<'a> {
    /// The value as a borrowed string, if it is one.
    #[inline]
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            HValue::Str(s) => s.as_str(),
            _ => None,
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

/// Decodes only the 16-byte header: the cheap path for framing, id matching and metrics.
/// `used` is the whole frame length: the body must be held too before this returns a frame.
#[inline]
pub fn decode_header(buf: &[u8], limits: &Limits) -> Result<Decoded<Header>, Error> {
    if buf.len() < HEADER_LEN {
        check_magic_prefix(buf)?;
        return Ok(Decoded::NeedMore(Need::AtLeast(HEADER_LEN)));
    }
    let h: &[u8; HEADER_LEN] = match buf[..HEADER_LEN].try_into() {
        Ok(h) => h,
        Err(_) => return Ok(Decoded::NeedMore(Need::AtLeast(HEADER_LEN))),
    };
    let magic = u16::from_be_bytes([h[0], h[1]]);
    if magic != MAGIC {
        return Err(Error::BadMagic { found: magic });
    }
    let body_len = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    if body_len > i32::MAX as u32 {
        return Err(Error::NegativeBodyLength { raw: body_len });
    }
    let total = HEADER_LEN + body_len as usize;
    if total > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: total,
            max: limits.max_frame,
        });
    }
    if buf.len() < total {
        return Ok(Decoded::NeedMore(Need::Exact(total)));
    }
    let header = Header {
        flags: h[2],
        status: h[3],
        request_id: u64::from_be_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]),
        body_len,
    };
    Ok(Decoded::Frame {
        frame: header,
        used: total,
    })
}

#[inline]
fn check_magic_prefix(buf: &[u8]) -> Result<(), Error> {
    match buf {
        [a, ..] if *a != 0xda => Err(Error::BadMagic {
            found: u16::from(*a) << 8,
        }),
        [a, b, ..] if *b != 0xbb => Err(Error::BadMagic {
            found: u16::from_be_bytes([*a, *b]),
        }),
        _ => Ok(()),
    }
}

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

/// Head mode: decodes the message whose first bytes are `buf` (the frame may be much longer:
/// `used` is its whole length) from those bytes only. A call's service, version and method,
/// a result's kind and an error status are read; arguments, values and attachments are not
/// (empty views, no attachments). [`Need::AtLeast`] when those fields are cut.
pub fn decode_head<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Message<'a>>, Error> {
    let total = match decode_header(buf, limits)? {
        Decoded::Frame { .. } => return decode(buf, limits),
        Decoded::NeedMore(Need::Exact(t)) => t,
        Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
    };
    let h = &buf[..HEADER_LEN];
    let header = Header {
        flags: h[2],
        status: h[3],
        request_id: u64::from_be_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]),
        body_len: (total - HEADER_LEN) as u32,
    };
    let body = &buf[HEADER_LEN..];
    let more = Decoded::NeedMore(Need::AtLeast(buf.len() + 1));
    let hessian = header.serialization().is_hessian();
    let message = if header.is_request() {
        let payload = if !hessian {
            RequestPayload::Opaque
        } else if header.is_event() {
            RequestPayload::Event(&[])
        } else {
            let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
            let head = (|| {
                Ok::<_, Error>((
                    r.nullable_string()?,
                    r.string()?,
                    r.nullable_string()?,
                    r.string()?,
                ))
            })();
            match head {
                Ok((dubbo_version, service, service_version, method)) => {
                    RequestPayload::Invocation(Invocation {
                        dubbo_version,
                        service,
                        service_version,
                        method,
                        parameter_types: HStr::Utf8(""),
                        arg_count: 0,
                        arguments: &[],
                        attachments: None,
                    })
                }
                Err(Error::Truncated { .. }) => return Ok(more),
                Err(_) if header.serialization() == Serialization::NativeHessian => {
                    RequestPayload::Opaque
                }
                Err(e) => return Err(e),
            }
        };
        Message::Request(Request {
            header,
            body,
            payload,
        })
    } else {
        let payload = if !hessian {
            ResponsePayload::Opaque
        } else if header.status != 20 {
            ResponsePayload::Error(None)
        } else if header.is_event() {
            ResponsePayload::Event(&[])
        } else {
            let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
            match r.int() {
                Ok(code) => ResponsePayload::Result(RpcResult {
                    kind: ResponseKind::from_code(code),
                    value: &[],
                    attachments: None,
                }),
                Err(Error::Truncated { .. }) => return Ok(more),
                Err(_) if header.serialization() == Serialization::NativeHessian => {
                    ResponsePayload::Opaque
                }
                Err(e) => return Err(e),
            }
        };
        Message::Response(Response {
            header,
            body,
            payload,
        })
    };
    Ok(Decoded::Frame {
        frame: message,
        used: total,
    })
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

fn event_payload<'a>(body: &'a [u8], limits: &Limits) -> Result<Option<&'a [u8]>, Error> {
    // A heartbeat's event data is null: body `N` (or, leniently, empty).
    if body.is_empty() || body == b"N" {
        return Ok(None);
    }
    let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
    r.skip_value(0)?;
    Ok(Some(&body[..r.pos]))
}

fn request_body<'a>(header: Header, body: &'a [u8], limits: &Limits) -> Result<Request<'a>, Error> {
    let payload = if !header.serialization().is_hessian() {
        RequestPayload::Opaque
    } else if header.is_event() {
        match event_payload(body, limits)? {
            None => RequestPayload::Heartbeat,
            Some(v) => RequestPayload::Event(v),
        }
    } else {
        RequestPayload::Invocation(invocation(body, limits)?)
    };
    Ok(Request {
        header,
        body,
        payload,
    })
}

fn invocation<'a>(body: &'a [u8], limits: &Limits) -> Result<Invocation<'a>, Error> {
    let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
    let dubbo_version = r.nullable_string()?;
    let service = r.string()?;
    let service_version = r.nullable_string()?;
    let method = r.string()?;
    // Some encoders stop after the method name (no descriptor, arguments or attachments).
    if r.at_end() {
        return Ok(Invocation {
            dubbo_version,
            service,
            service_version,
            method,
            parameter_types: HStr::Utf8(""),
            arg_count: 0,
            arguments: &[],
            attachments: None,
        });
    }
    let types_at = r.offset();
    let mut counter = DescriptorCounter::default();
    let parameter_types = r.string_with(|chunk| counter.feed(chunk))?;
    let arg_count = counter
        .finish()
        .ok_or(Error::BadParameterTypes { offset: types_at })?;
    if arg_count as usize > r.remaining() {
        return Err(Error::BadCount { offset: types_at });
    }
    let args_start = r.pos;
    for _ in 0..arg_count {
        r.skip_value(0)?;
    }
    let arguments = &body[args_start..r.pos];
    let attachments = r.attachments()?;
    Ok(Invocation {
        dubbo_version,
        service,
        service_version,
        method,
        parameter_types,
        arg_count,
        arguments,
        attachments,
    })
}

fn response_body<'a>(
    header: Header,
    body: &'a [u8],
    limits: &Limits,
) -> Result<Response<'a>, Error> {
    let payload = if !header.serialization().is_hessian() {
        ResponsePayload::Opaque
    } else if header.status != 20 {
        if body.is_empty() {
            ResponsePayload::Error(None)
        } else {
            let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
            ResponsePayload::Error(r.nullable_string()?)
        }
    } else if header.is_event() {
        match event_payload(body, limits)? {
            None => ResponsePayload::Heartbeat,
            Some(v) => ResponsePayload::Event(v),
        }
    } else {
        let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
        let kind = ResponseKind::from_code(r.int()?);
        let start = r.pos;
        let (value, attachments) = match kind {
            ResponseKind::Unknown(_) => (&body[start..], None),
            k => {
                if !matches!(
                    k,
                    ResponseKind::NullValue | ResponseKind::NullValueWithAttachments
                ) {
                    r.skip_value(0)?;
                }
                let value = &body[start..r.pos];
                let att = if k.has_attachments() {
                    r.attachments()?
                } else {
                    None
                };
                (value, att)
            }
        };
        ResponsePayload::Result(RpcResult {
            kind,
            value,
            attachments,
        })
    };
    Ok(Response {
        header,
        body,
        payload,
    })
}

/// Counts JVM field descriptors (`Z B C S I J F D V`, `Lname;`, `[` prefixes) across chunks.
#[derive(Default)]
struct DescriptorCounter {
    count: u32,
    in_class: bool,
    array: bool,
    bad: bool,
}

impl DescriptorCounter {
    #[inline]
    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.in_class {
                if b == b';' {
                    self.in_class = false;
                    self.array = false;
                    self.count = self.count.saturating_add(1);
                }
                continue;
            }
            match b {
                b'[' => self.array = true,
                b'L' => self.in_class = true,
                b'Z' | b'B' | b'C' | b'S' | b'I' | b'J' | b'F' | b'D' | b'V' => {
                    self.array = false;
                    self.count = self.count.saturating_add(1);
                }
                _ => self.bad = true,
            }
        }
    }
    fn finish(&self) -> Option<u32> {
        (!self.bad && !self.in_class && !self.array).then_some(self.count)
    }
}

/// How many class definitions one body may hold (their field counts live on the stack).
pub const MAX_CLASSES: usize = 256;

/// A validated attachments map, borrowed from the body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Attachments<'a> {
    /// Body bytes before the map: replayed only when a value refers to a class defined there.
    prior: &'a [u8],
    /// The map's entries (after `H` or `M type`, before `Z`).
    entries: &'a [u8],
    /// Offset of `entries` from the frame start.
    base: usize,
    len: u32,
}

impl fmt::Debug for Attachments<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> Attachments<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The raw Hessian bytes of the entries.
    pub fn raw(&self) -> &'a [u8] {
        self.entries
    }
    /// Iterates over the entries in wire order.
    pub fn iter(&self) -> AttachmentIter<'a> {
        let mut r = Reader::new(self.entries, self.base, usize::MAX);
        if !self.prior.is_empty() {
            // Rebuild the class table from the values before the map (rare: object arguments
            // and an object-valued attachment).
            let mut p = Reader::new(self.prior, 0, usize::MAX);
            while !p.at_end() {
                if p.skip_value(0).is_err() {
                    break;
                }
            }
            r.classes = p.classes;
        }
        AttachmentIter { r, left: self.len }
    }
    /// The value of the first entry whose key is the string `key` (keys are compared as bytes, so
    /// only the matching value is checked as UTF-8).
    pub fn get(&self, key: &str) -> Option<HValue<'a>> {
        let mut it = self.iter();
        let r = &mut it.r;
        for _ in 0..self.len {
            let hit = match r.peek().ok()? {
                0x00..=0x1f | 0x30..=0x33 | b'R' | b'S' => {
                    let (data, single) = r.string_raw(|_| {}).ok()?;
                    single && data == key.as_bytes()
                }
                _ => {
                    r.skip_value(1).ok()?;
                    false
                }
            };
            if hit {
                return r.value().ok();
            }
            r.skip_value(1).ok()?;
        }
        None
    }
}

/// Iterator over attachment entries (key, value).
#[derive(Debug, Clone)]
pub struct AttachmentIter<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for AttachmentIter<'a> {
    type Item = (HValue<'a>, HValue<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The map was validated while decoding; a failure here cannot happen, and ends iteration.
        let k = self.r.value().ok()?;
        let v = self.r.value().ok()?;
        Some((k, v))
    }
}

/// A forward Hessian2 reader over one body; offsets in errors are `base + pos`.
#[derive(Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    max_depth: usize,
    classes: Classes,
}

impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").field("pos", &self.pos).finish()
    }
}

#[derive(Clone, Copy)]
struct Classes {
    fields: [u32; MAX_CLASSES],
    len: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn new(buf: &'a [u8], base: usize, max_depth: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            max_depth,
            classes: Classes {
                fields: [0; MAX_CLASSES],
                len: 0,
            },
        }
    }
    #[inline]
    fn offset(&self) -> usize {
        self.base + self.pos
    }
    #[inline]
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    #[inline]
    fn truncated(&self, at: usize) -> Error {
        Error::Truncated {
            offset: self.base + at,
        }
    }
    #[inline]
    fn u8(&mut self) -> Result<u8, Error> {
        let b = *self.buf.get(self.pos).ok_or(self.truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }
    #[inline]
    fn peek(&self) -> Result<u8, Error> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(self.truncated(self.pos))
    }
    #[inline]
    fn skip(&mut self, n: usize, start: usize) -> Result<(), Error> {
        if n > self.remaining() {
            return Err(self.truncated(start));
        }
        self.pos += n;
        Ok(())
    }
    #[inline]
    fn be16(&mut self, start: usize) -> Result<usize, Error> {
        match self.buf.get(self.pos..self.pos + 2) {
            Some(b) => {
                self.pos += 2;
                Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
            }
            None => Err(self.truncated(start)),
        }
    }

    /// `int ::= I b3 b2 b1 b0 | [x80-xbf] | [xc0-xcf] b0 | [xd0-xd7] b1 b0`.
    fn int(&mut self) -> Result<i32, Error> {
        let start = self.pos;
        let tag = self.u8()?;
        let v = match tag {
            0x80..=0xbf => i32::from(tag) - 0x90,
            0xc0..=0xcf => {
                let b = self.u8().map_err(|_| self.truncated(start))?;
                ((i32::from(tag) - 0xc8) << 8) | i32::from(b)
            }
            0xd0..=0xd7 => {
                let hi = self.be16(start)? as i32;
                ((i32::from(tag) - 0xd4) << 16) | hi
            }
            b'I' => match self.buf.get(self.pos..self.pos + 4) {
                Some(b) => {
                    self.pos += 4;
                    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
                }
                None => return Err(self.truncated(start)),
            },
            _ => {
                return Err(Error::UnexpectedTag {
                    offset: self.base + start,
                    tag,
                })
            }
        };
        Ok(v)
    }

    /// An int used as a count: non-negative and at most the remaining bytes (each counted item
    /// takes at least one byte).
    fn count(&mut self) -> Result<usize, Error> {
        let at = self.offset();
        let n = self.int()?;
        if n < 0 || n as usize > self.remaining() {
            return Err(Error::BadCount { offset: at });
        }
        Ok(n as usize)
    }

    /// Advances over `units` UTF-16 code units of UTF-8 data and returns the bytes.
    #[inline]
    fn utf8_units(&mut self, units: usize, start: usize) -> Result<&'a [u8], Error> {
        let rest = &self.buf[self.pos..];
        // Every unit takes at least one byte.
        if units > rest.len() {
            return Err(self.truncated(start));
        }
        if rest[..units].is_ascii() {
            self.pos += units;
            return Ok(&rest[..units]);
        }
        let mut i = 0;
        let mut left = units;
        while left > 0 {
            let b = *rest.get(i).ok_or(self.truncated(start))?;
            let (n, w) = match b {
                0x00..=0x7f => (1, 1),
                0xc0..=0xdf => (2, 1),
                0xe0..=0xef => (3, 1),
                // A 4-byte sequence is a surrogate pair: two UTF-16 units.
                0xf0..=0xf7 => (4, 2),
                _ => {
                    return Err(Error::BadUtf8 {
                        offset: self.offset() + i,
                    })
                }
            };
            if w > left {
                return Err(Error::BadUtf8 {
                    offset: self.offset() + i,
                });
            }
            let seq = rest.get(i..i + n).ok_or(self.truncated(start))?;
            if let Some(k) = seq[1..].iter().position(|c| c & 0xc0 != 0x80) {
                return Err(Error::BadUtf8 {
                    offset: self.offset() + i + 1 + k,
                });
            }
            i += n;
            left -= w;
        }
        self.pos += i;
        Ok(&rest[..i])
    }

    /// Walks a string, handing each chunk's data to `f`; returns the last chunk's data and
    /// whether it was the only chunk. No UTF-8 validation beyond the shape of lead bytes.
    /// `string ::= R b1 b0 <utf8> string | S b1 b0 <utf8> | [x00-x1f] <utf8> | [x30-x33] b0 <utf8>`.
    #[inline]
    fn string_raw(&mut self, mut f: impl FnMut(&'a [u8])) -> Result<(&'a [u8], bool), Error> {
        let mut single = true;
        loop {
            let at = self.pos;
            let tag = self.u8()?;
            let (units, more) = match tag {
                0x00..=0x1f => (usize::from(tag), false),
                0x30..=0x33 => {
                    let lo = self.u8().map_err(|_| self.truncated(at))?;
                    ((usize::from(tag - 0x30) << 8) | usize::from(lo), false)
                }
                b'S' => (self.be16(at)?, false),
                b'R' => (self.be16(at)?, true),
                _ => {
                    return Err(Error::UnexpectedTag {
                        offset: self.base + at,
                        tag,
                    })
                }
            };
            let data = self.utf8_units(units, at)?;
            f(data);
            if !more {
                return Ok((data, single));
            }
            single = false;
        }
    }

    /// Reads a string as [`HStr`], handing each chunk's data to `f`.
    #[inline]
    fn string_with(&mut self, f: impl FnMut(&'a [u8])) -> Result<HStr<'a>, Error> {
        let start = self.pos;
        let (data, single) = self.string_raw(f)?;
        if single {
            if let Ok(s) = core::str::from_utf8(data) {
                return Ok(HStr::Utf8(s));
            }
        }
        Ok(HStr::Raw(&self.buf[start..self.pos]))
    }

    #[inline]
    fn string(&mut self) -> Result<HStr<'a>, Error> {
        self.string_with(|_| {})
    }

    #[inline]
    fn nullable_string(&mut self) -> Result<Option<HStr<'a>>, Error> {
        if self.peek()? == b'N' {
            self.pos += 1;
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// Reads one value as an attachment key or value.
    fn value(&mut self) -> Result<HValue<'a>, Error> {
        let start = self.pos;
        match self.peek()? {
            b'N' => {
                self.pos += 1;
                Ok(HValue::Null)
            }
            0x00..=0x1f | 0x30..=0x33 | b'R' | b'S' => self.string().map(HValue::Str),
            _ => {
                self.skip_value(1)?;
                Ok(HValue::Other(&self.buf[start..self.pos]))
            }
        }
    }

    /// `type ::= string | int`.
    fn skip_type(&mut self) -> Result<(), Error> {
        match self.peek()? {
            0x00..=0x1f | 0x30..=0x33 | b'R' | b'S' => self.string_raw(|_| {}).map(|_| ()),
            _ => self.int().map(|_| ()),
        }
    }

    /// `class-def ::= 'C' string int string*` (the `C` already read).
    fn class_def(&mut self, at: usize) -> Result<(), Error> {
        self.string_raw(|_| {})?;
        let n = self.count()?;
        for _ in 0..n {
            self.string_raw(|_| {})?;
        }
        let c = &mut self.classes;
        if c.len == MAX_CLASSES {
            return Err(Error::TooManyClasses {
                offset: self.base + at,
            });
        }
        c.fields[c.len] = n as u32;
        c.len += 1;
        Ok(())
    }

    fn enter(&self, depth: usize, at: usize) -> Result<usize, Error> {
        if depth >= self.max_depth {
            return Err(Error::TooDeep {
                offset: self.base + at,
            });
        }
        Ok(depth + 1)
    }

    fn skip_items(&mut self, n: usize, depth: usize) -> Result<(), Error> {
        for _ in 0..n {
            self.skip_value(depth)?;
        }
        Ok(())
    }

    fn skip_until_z(&mut self, depth: usize, pairs: bool) -> Result<usize, Error> {
        let mut n = 0usize;
        loop {
            if self.peek()? == b'Z' {
                self.pos += 1;
                return Ok(n);
            }
            self.skip_value(depth)?;
            if pairs {
                self.skip_value(depth)?;
            }
            n += 1;
        }
    }

    /// Skips one value of any type; `depth` counts enclosing containers.
    fn skip_value(&mut self, depth: usize) -> Result<(), Error> {
        loop {
            let at = self.pos;
            let tag = self.u8()?;
            match tag {
                // strings
                0x00..=0x1f | 0x30..=0x33 | b'R' | b'S' => {
                    self.pos = at;
                    self.string_raw(|_| {})?;
                }
                // binary: [x20-x2f] data, [x34-x37] b0 data, A b1 b0 data binary, B b1 b0 data
                0x20..=0x2f => self.skip(usize::from(tag - 0x20), at)?,
                0x34..=0x37 => {
                    let lo = self.u8().map_err(|_| self.truncated(at))?;
                    self.skip((usize::from(tag - 0x34) << 8) | usize::from(lo), at)?;
                }
                b'A' | b'B' => {
                    let mut t = tag;
                    loop {
                        let n = self.be16(at)?;
                        self.skip(n, at)?;
                        if t == b'B' {
                            break;
                        }
                        let c = self.u8()?;
                        match c {
                            b'A' | b'B' => t = c,
                            0x20..=0x2f => {
                                self.skip(usize::from(c - 0x20), at)?;
                                break;
                            }
                            0x34..=0x37 => {
                                let lo = self.u8().map_err(|_| self.truncated(at))?;
                                self.skip((usize::from(c - 0x34) << 8) | usize::from(lo), at)?;
                                break;
                            }
                            _ => {
                                return Err(Error::UnexpectedTag {
                                    offset: self.base + self.pos - 1,
                                    tag: c,
                                })
                            }
                        }
                    }
                }
                // a class definition precedes the value that uses it
                b'C' => {
                    self.class_def(at)?;
                    continue;
                }
                // fixed-width scalars
                b'F' | b'T' | b'N' | 0x5b | 0x5c | 0x80..=0xbf | 0xd8..=0xef => {}
                0x5d | 0xc0..=0xcf | 0xf0..=0xff => self.skip(1, at)?,
                0x5e | 0x38..=0x3f | 0xd0..=0xd7 => self.skip(2, at)?,
                b'I' | b'K' | b'Y' | 0x5f => self.skip(4, at)?,
                b'D' | b'J' | b'L' => self.skip(8, at)?,
                // reference to an earlier object/list/map
                b'Q' => {
                    self.int()?;
                }
                // maps: H (k v)* Z, M type (k v)* Z
                b'H' => {
                    let d = self.enter(depth, at)?;
                    self.skip_until_z(d, true)?;
                }
                b'M' => {
                    let d = self.enter(depth, at)?;
                    self.skip_type()?;
                    self.skip_until_z(d, true)?;
                }
                // lists: U type v* Z, V type int v*, W v* Z, X int v*, [x70-77] type v*, [x78-7f] v*
                b'U' => {
                    let d = self.enter(depth, at)?;
                    self.skip_type()?;
                    self.skip_until_z(d, false)?;
                }
                b'V' => {
                    let d = self.enter(depth, at)?;
                    self.skip_type()?;
                    let n = self.count()?;
                    self.skip_items(n, d)?;
                }
                b'W' => {
                    let d = self.enter(depth, at)?;
                    self.skip_until_z(d, false)?;
                }
                b'X' => {
                    let d = self.enter(depth, at)?;
                    let n = self.count()?;
                    self.skip_items(n, d)?;
                }
                0x70..=0x77 => {
                    let d = self.enter(depth, at)?;
                    self.skip_type()?;
                    self.skip_items(usize::from(tag - 0x70), d)?;
                }
                0x78..=0x7f => {
                    let d = self.enter(depth, at)?;
                    self.skip_items(usize::from(tag - 0x78), d)?;
                }
                // objects: O int value*, [x60-x6f] value*
                b'O' | 0x60..=0x6f => {
                    let d = self.enter(depth, at)?;
                    let idx = if tag == b'O' {
                        self.int()?
                    } else {
                        i32::from(tag - 0x60)
                    };
                    if idx < 0 || idx as usize >= self.classes.len {
                        return Err(Error::UnknownClass {
                            offset: self.base + at,
                        });
                    }
                    let n = self.classes.fields[idx as usize] as usize;
                    if n > self.remaining() {
                        return Err(Error::BadCount {
                            offset: self.base + at,
                        });
                    }
                    self.skip_items(n, d)?;
                }
                // 0x40, E, G, P (reserved) and Z (only ends a container)
                _ => {
                    return Err(Error::UnexpectedTag {
                        offset: self.base + at,
                        tag,
                    })
                }
            }
            return Ok(());
        }
    }

    /// The map that ends a request body or follows a `*_WITH_ATTACHMENTS` value: `H`, `M type`,
    /// `N` or nothing at all.
    fn attachments(&mut self) -> Result<Option<Attachments<'a>>, Error> {
        if self.at_end() {
            return Ok(None);
        }
        let at = self.pos;
        match self.u8()? {
            b'N' => return Ok(None),
            b'H' => {}
            b'M' => self.skip_type()?,
            tag => {
                return Err(Error::UnexpectedTag {
                    offset: self.base + at,
                    tag,
                })
            }
        }
        let d = self.enter(0, at)?;
        let start = self.pos;
        let classes_before = self.classes.len;
        let n = self.skip_until_z(d, true)?;
        let entries = &self.buf[start..self.pos - 1];
        let prior = if classes_before > 0 {
            &self.buf[..at]
        } else {
            &[][..]
        };
        Ok(Some(Attachments {
            prior,
            entries,
            base: self.base + start,
            len: n as u32,
        }))
    }

    /// For `C name n fields... (O|0x60) values...`: the `detailMessage` string, if the first object
    /// is an instance of the class just defined.
    fn detail_message(&mut self) -> Result<Option<HStr<'a>>, Error> {
        self.pos = 1;
        self.string()?;
        let n = self.count()?;
        let mut which = None;
        for i in 0..n {
            if self.string()?.as_str() == Some("detailMessage") {
                which = Some(i);
            }
        }
        self.classes.fields[0] = n as u32;
        self.classes.len = 1;
        let Some(which) = which else { return Ok(None) };
        match self.u8()? {
            0x60 => {}
            b'O' if self.int()? == 0 => {}
            _ => return Ok(None),
        }
        for _ in 0..which {
            self.skip_value(1)?;
        }
        self.nullable_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Encoders for locally generated replies.

/// Whether a client speaking `dubbo_version` reads the `*_WITH_ATTACHMENTS` response kinds
/// (Apache Dubbo `Version.isSupportResponseAttachment`: protocol versions 2.0.2 to 2.0.99).
pub fn supports_response_attachments(dubbo_version: &str) -> bool {
    let mut it = dubbo_version.split('.');
    let (Some(a), Some(b), Some(c)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let c: u32 = match c.parse() {
        Ok(c) => c,
        Err(_) => return false,
    };
    a == "2" && b == "0" && (2..=99).contains(&c)
}

/// Hessian chunk size in UTF-16 units, as Java's `Hessian2Output` uses.
const CHUNK: usize = 0x8000;

/// Bytes of a character as Java's Hessian writes it: supplementary characters become two
/// 3-byte surrogates (CESU-8), so Java peers can read them.
#[inline]
fn java_utf8_len(c: char) -> (usize, usize) {
    match c as u32 {
        0..=0x7f => (1, 1),
        0x80..=0x7ff => (2, 1),
        0x800..=0xffff => (3, 1),
        _ => (6, 2),
    }
}

/// Length of `s` encoded as a Hessian2 string.
pub fn hessian_string_len(s: &str) -> usize {
    let mut total = 0;
    let mut units = 0;
    let mut chunk_units = 0;
    for c in s.chars() {
        let (b, u) = java_utf8_len(c);
        if chunk_units + u > CHUNK {
            total += 3; // `R` b1 b0
            chunk_units = 0;
        }
        chunk_units += u;
        units += u;
        total += b;
    }
    let _ = units;
    total
        + match chunk_units {
            0..=31 => 1,
            32..=1023 => 2,
            _ => 3,
        }
}

/// Writes `s` as a Hessian2 string (chunked above 32768 UTF-16 units, as Java does).
pub fn write_hessian_string(out: &mut Vec<u8>, s: &str) {
    // Find chunk boundaries first: a chunk's header carries its unit count.
    let mut rest = s;
    loop {
        let mut units = 0;
        let mut split = rest.len();
        for (i, c) in rest.char_indices() {
            let u = java_utf8_len(c).1;
            if units + u > CHUNK {
                split = i;
                break;
            }
            units += u;
        }
        let (chunk, tail) = rest.split_at(split);
        let last = tail.is_empty();
        if !last {
            out.push(b'R');
            out.extend_from_slice(&(units as u16).to_be_bytes());
        } else if units <= 31 {
            out.push(units as u8);
        } else if units <= 1023 {
            out.push(0x30 + (units >> 8) as u8);
            out.push(units as u8);
        } else {
            out.push(b'S');
            out.extend_from_slice(&(units as u16).to_be_bytes());
        }
        for c in chunk.chars() {
            let v = c as u32;
            if v > 0xffff {
                let v = v - 0x1_0000;
                for sur in [0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff)] {
                    out.push(0xe0 | (sur >> 12) as u8);
                    out.push(0x80 | ((sur >> 6) & 0x3f) as u8);
                    out.push(0x80 | (sur & 0x3f) as u8);
                }
            } else {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
        if last {
            return;
        }
        rest = tail;
    }
}

fn write_header(out: &mut Vec<u8>, flags: u8, status: u8, request_id: u64, body_len: usize) {
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(flags);
    out.push(status);
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
}

/// Length of the frame [`encode_error_response`] writes.
pub fn error_response_len(message: &str) -> usize {
    HEADER_LEN + hessian_string_len(message)
}

/// Writes a Dubbo error response (Hessian2): `status` (anything but OK, e.g.
/// [`Status::ServiceError`], [`Status::ServerThreadpoolExhausted`], [`Status::ServerTimeout`]) and
/// the message string as the body, as `ExchangeCodec.encodeResponse` does for a failed request.
pub fn encode_error_response(out: &mut Vec<u8>, request_id: u64, status: Status, message: &str) {
    let len = error_response_len(message);
    out.reserve(len);
    write_header(out, HESSIAN2, status.code(), request_id, len - HEADER_LEN);
    write_hessian_string(out, message);
}

/// What an exception response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionBody<'s> {
    /// A `Throwable` object of the given class (e.g. `java.lang.RuntimeException`) with fields
    /// `detailMessage`, `cause` (null), `stackTrace` (empty) and `suppressedExceptions` (null).
    Object {
        /// Fully qualified Java class name.
        class: &'s str,
        /// The message.
        message: &'s str,
    },
    /// A plain string (what Envoy's dubbo_proxy writes for its local exceptions).
    String(&'s str),
}

const THROWABLE_FIELDS: [&str; 4] = [
    "detailMessage",
    "cause",
    "stackTrace",
    "suppressedExceptions",
];
const STACK_TRACE_TYPE: &str = "[java.lang.StackTraceElement";

fn exception_body_len(body: &ExceptionBody<'_>, with_attachments: bool) -> usize {
    let value = match body {
        ExceptionBody::String(m) => hessian_string_len(m),
        ExceptionBody::Object { class, message } => {
            1 + hessian_string_len(class)
                + 1
                + THROWABLE_FIELDS
                    .iter()
                    .map(|f| hessian_string_len(f))
                    .sum::<usize>()
                + 1
                + hessian_string_len(message)
                + 1
                + 1
                + hessian_string_len(STACK_TRACE_TYPE)
                + 1
        }
    };
    1 + value + if with_attachments { 2 } else { 0 }
}

/// Length of the frame [`encode_exception_response`] writes.
pub fn exception_response_len(body: &ExceptionBody<'_>, with_attachments: bool) -> usize {
    HEADER_LEN + exception_body_len(body, with_attachments)
}

/// Writes an OK response whose result is an exception (`RESPONSE_WITH_EXCEPTION`, or
/// `RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS` with an empty map when `with_attachments`; pass
/// [`supports_response_attachments`] of the request's Dubbo version).
pub fn encode_exception_response(
    out: &mut Vec<u8>,
    request_id: u64,
    body: &ExceptionBody<'_>,
    with_attachments: bool,
) {
    let body_len = exception_body_len(body, with_attachments);
    out.reserve(HEADER_LEN + body_len);
    write_header(out, HESSIAN2, Status::Ok.code(), request_id, body_len);
    // Response kind as a compact int.
    out.push(0x90 + if with_attachments { 3 } else { 0 });
    match body {
        ExceptionBody::String(m) => write_hessian_string(out, m),
        ExceptionBody::Object { class, message } => {
            out.push(b'C');
            write_hessian_string(out, class);
            out.push(0x90 + THROWABLE_FIELDS.len() as u8);
            for f in THROWABLE_FIELDS {
                write_hessian_string(out, f);
            }
            out.push(0x60); // instance of class 0
            write_hessian_string(out, message);
            out.push(b'N'); // cause
            out.push(0x70); // stackTrace: typed list of length 0
            write_hessian_string(out, STACK_TRACE_TYPE);
            out.push(b'N'); // suppressedExceptions
        }
    }
    if with_attachments {
        out.extend_from_slice(b"HZ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_counts() {
        let count = |s: &str| {
            let mut c = DescriptorCounter::default();
            c.feed(s.as_bytes());
            c.finish()
        };
        assert_eq!(count(""), Some(0));
        assert_eq!(count("Ljava/lang/String;I[J[[Lx;Z"), Some(5));
        assert_eq!(count("Ljava/lang/String"), None);
        assert_eq!(count("["), None);
        assert_eq!(count("Q"), None);
    }

    #[test]
    fn string_lengths_match_writer() {
        for s in [
            "",
            "a",
            "héllo",
            "世界",
            "😀x",
            &"y".repeat(40_000),
            &"é".repeat(70_000),
        ] {
            let mut v = Vec::new();
            write_hessian_string(&mut v, s);
            assert_eq!(v.len(), hessian_string_len(s), "{}", s.len());
            let mut r = Reader::new(&v, 0, 4);
            let h = r.string().unwrap();
            assert_eq!(r.pos, v.len());
            if s.len() < 0x8000 && !s.contains('😀') {
                assert_eq!(h, HStr::Utf8(s));
            }
        }
    }

    #[test]
    fn versions() {
        assert!(supports_response_attachments("2.0.2"));
        assert!(supports_response_attachments("2.0.99"));
        assert!(!supports_response_attachments("2.0.1"));
        assert!(!supports_response_attachments("2.7.8"));
        assert!(!supports_response_attachments("2.4.10"));
    }
}
