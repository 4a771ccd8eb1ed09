//! The fixed 16-byte Dubbo header (`ExchangeCodec`): magic, flags, status, request id and body
//! length, the closed sets its fields take (serialization ids, statuses, frame kinds), and the
//! header-only decoder.

use crate::{Decoded, Limits, Need};

use super::Error;

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
    pub(super) fn is_hessian(&self) -> bool {
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
