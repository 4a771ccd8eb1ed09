//! TARS ("tars://", Tencent's RPC framework) packets: the header fields that routing, policy
//! and metrics need, decoded without allocating.
//!
//! Wire format (TarsCpp `servant/RequestF.tars`, tars4nodejs `core/rpc-tars/RequestF.tars`):
//! a 4-byte big-endian length that counts itself, then one struct in the Tars (JCE) encoding
//! (see [`jce`](self) for the field grammar), without struct-begin/end markers:
//!
//! | tag | `RequestPacket` (client to server) | `ResponsePacket` (server to client) |
//! |-----|-------------------------------------|-------------------------------------|
//! | 1   | `short iVersion` (1 TARS, 2/3 TUP)  | `short iVersion`                    |
//! | 2   | `byte cPacketType` (0 normal, 1 one-way) | `byte cPacketType`             |
//! | 3   | `int iMessageType` (flag bits)      | `int iRequestId`                    |
//! | 4   | `int iRequestId`                    | `int iMessageType`                  |
//! | 5   | `string sServantName`               | `int iRet` (0 success, `TARSSERVER*` codes) |
//! | 6   | `string sFuncName`                  | `vector<byte> sBuffer`              |
//! | 7   | `vector<byte> sBuffer`              | `map<string,string> status`         |
//! | 8   | `int iTimeout` (ms)                 | `optional string sResultDesc`       |
//! | 9   | `map<string,string> context`        | `optional map<string,string> context` |
//! | 10  | `map<string,string> status`         |                                     |
//!
//! TUP (iVersion 2 "complex" / 3 "simple") requests use `RequestPacket` with a `UniAttribute`
//! map in `sBuffer`; a TUP server answers with a `RequestPacket` too, its result code and
//! message in `status["STATUS_RESULT_CODE"]` / `status["STATUS_RESULT_DESC"]` (TarsCpp
//! `TarsCurrent::sendResponse`, tars4nodejs `tars-server.js composeTUP`). [`decode_response`]
//! reads the version first and decodes the layout it names.
//!
//! Decoded: every header field; `sBuffer` is a borrowed view (its `UniAttribute` or argument
//! struct is not decoded); `context`/`status` are validated and borrowed ([`StrMap`]). Fields
//! with other tags are skipped by their grammar. Missing `iVersion`, `iRequestId` (and, in a
//! request, `sServantName`/`sFuncName`) is an error; other missing fields take their IDL
//! defaults. Strings are bytes on the wire: they are exposed as bytes, with `&str` accessors.
//!
//! Not decoded: argument values, TARS push packets (`cPacketType` 2 from the server is decoded
//! as a response like any other), the JSON protocol of tars4nodejs (`rpc-json`).

use core::fmt;

use crate::{Decoded, Limits, Need};

mod jce;
use jce::Reader;
pub use jce::{StrMap, StrMapIter};

/// Length of the length prefix.
pub const HEADER_LEN: usize = 4;
/// `iVersion` of the TARS protocol.
pub const TARS_VERSION: i16 = 1;
/// `iVersion` of TUP with the complex (typed) `UniAttribute`.
pub const TUP_COMPLEX: i16 = 2;
/// `iVersion` of TUP with the simple `UniAttribute`.
pub const TUP_SIMPLE: i16 = 3;
/// `cPacketType` of a normal (two-way) call.
pub const NORMAL: i8 = 0;
/// `cPacketType` of a one-way call (no response).
pub const ONEWAY: i8 = 1;
/// The `status` key a TUP response carries its result code under.
pub const STATUS_RESULT_CODE: &str = "STATUS_RESULT_CODE";
/// The `status` key a TUP response carries its result message under.
pub const STATUS_RESULT_DESC: &str = "STATUS_RESULT_DESC";

/// Framework return codes (`iRet`, TarsCpp `BaseF.tars`).
pub mod ret {
    /// Success.
    pub const SERVER_SUCCESS: i32 = 0;
    /// The server could not decode the request.
    pub const SERVER_DECODE_ERR: i32 = -1;
    /// The server could not encode the response.
    pub const SERVER_ENCODE_ERR: i32 = -2;
    /// No such function.
    pub const SERVER_NO_FUNC_ERR: i32 = -3;
    /// No such servant.
    pub const SERVER_NO_SERVANT_ERR: i32 = -4;
    /// Grid reset.
    pub const SERVER_RESET_GRID: i32 = -5;
    /// The request timed out in the server's queue.
    pub const SERVER_QUEUE_TIMEOUT: i32 = -6;
    /// An asynchronous call timed out.
    pub const ASYNC_CALL_TIMEOUT: i32 = -7;
    /// Proxy connect error.
    pub const PROXY_CONNECT_ERR: i32 = -8;
    /// The server is overloaded (what a rate-limited call is answered with).
    pub const SERVER_OVERLOAD: i32 = -9;
    /// No adapter.
    pub const ADAPTER_NULL: i32 = -10;
    /// Invoked by an invalid set.
    pub const INVOKE_BY_INVALID_ESET: i32 = -11;
    /// The client could not decode the response.
    pub const CLIENT_DECODE_ERR: i32 = -12;
    /// The request could not be sent.
    pub const SEND_REQUEST_ERR: i32 = -13;
    /// Unknown server error.
    pub const SERVER_UNKNOWN_ERR: i32 = -99;
}

/// A decoded request (`RequestPacket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `iVersion`: [`TARS_VERSION`], [`TUP_COMPLEX`] or [`TUP_SIMPLE`].
    pub version: i16,
    /// `cPacketType`: [`NORMAL`] or [`ONEWAY`].
    pub packet_type: i8,
    /// `iMessageType` flag bits (0x04 dyed, 0x08 traced, ...).
    pub message_type: i32,
    /// `iRequestId`: pairs the response with this request.
    pub request_id: i32,
    /// `sServantName`, e.g. `TestApp.HelloServer.HelloObj`.
    pub servant: &'a [u8],
    /// `sFuncName`.
    pub function: &'a [u8],
    /// `sBuffer`: the encoded arguments (a `UniAttribute` for TUP); empty in head mode.
    pub buffer: &'a [u8],
    /// `iTimeout` in milliseconds.
    pub timeout_ms: i32,
    /// `context` (empty in head mode).
    pub context: StrMap<'a>,
    /// `status` (empty in head mode).
    pub status: StrMap<'a>,
}

impl<'a> Request<'a> {
    /// The servant name, when it is UTF-8.
    #[inline]
    pub fn servant_name(&self) -> Option<&'a str> {
        core::str::from_utf8(self.servant).ok()
    }
    /// The function name, when it is UTF-8.
    #[inline]
    pub fn function_name(&self) -> Option<&'a str> {
        core::str::from_utf8(self.function).ok()
    }
    /// Whether the call expects no response.
    #[inline]
    pub fn is_oneway(&self) -> bool {
        self.packet_type == ONEWAY
    }
    /// Whether the call is TUP (version 2 or 3).
    #[inline]
    pub fn is_tup(&self) -> bool {
        matches!(self.version, TUP_COMPLEX | TUP_SIMPLE)
    }
}

/// A decoded response: a `ResponsePacket`, or for TUP the `RequestPacket` a TUP server answers
/// with (then `servant`/`function` are set and `ret`/`result_desc` come from `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// `iVersion`.
    pub version: i16,
    /// `cPacketType`.
    pub packet_type: i8,
    /// `iRequestId` of the request answered.
    pub request_id: i32,
    /// `iMessageType`.
    pub message_type: i32,
    /// `iRet` (TUP: `status["STATUS_RESULT_CODE"]`, 0 when absent). `None` only in head mode
    /// for a TUP response, whose `status` lies past the head.
    pub ret: Option<i32>,
    /// `sBuffer`: the encoded result; empty in head mode.
    pub buffer: &'a [u8],
    /// `status` (empty in head mode).
    pub status: StrMap<'a>,
    /// `sResultDesc` (TUP: `status["STATUS_RESULT_DESC"]`); `None` when absent or in head mode.
    pub result_desc: Option<&'a [u8]>,
    /// `context` (empty when absent, in head mode and for TUP).
    pub context: StrMap<'a>,
    /// TUP only: the servant and function echoed back.
    pub servant: &'a [u8],
    /// TUP only: the function echoed back.
    pub function: &'a [u8],
}

impl Response<'_> {
    /// Whether the response is TUP (version 2 or 3).
    #[inline]
    pub fn is_tup(&self) -> bool {
        matches!(self.version, TUP_COMPLEX | TUP_SIMPLE)
    }
}

/// Why a packet could not be decoded. Offsets count from the first byte of the frame (the
/// length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The length prefix is smaller than the prefix itself (offset 0).
    FrameTooShort {
        /// The length prefix.
        len: u32,
    },
    /// The frame is larger than [`Limits::max_frame`] (offset 0).
    FrameTooLarge {
        /// The length prefix.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value runs past the end of the packet.
    Truncated {
        /// Where the value (or its head) started.
        offset: usize,
    },
    /// A field type that does not exist (14, 15).
    BadType {
        /// The head's offset.
        offset: usize,
        /// The type nibble.
        ty: u8,
    },
    /// A field of a type its tag does not allow (a string where an int belongs, ...).
    WrongType {
        /// The head's offset.
        offset: usize,
        /// The type nibble found.
        ty: u8,
    },
    /// An integer out of its field's range (a `short` above 32767, ...).
    OutOfRange {
        /// The head's offset.
        offset: usize,
    },
    /// A length or count that is negative or larger than the bytes that remain.
    BadLength {
        /// The head's offset.
        offset: usize,
    },
    /// Containers nested deeper than [`Limits::max_depth`].
    TooDeep {
        /// The container's offset.
        offset: usize,
    },
    /// A required field is missing.
    MissingField {
        /// Its tag.
        tag: u8,
        /// The end of the packet.
        offset: usize,
    },
    /// `sServantName` or `sFuncName` is more than [`MAX_NAME`] bytes.
    NameTooLong {
        /// The head's offset.
        offset: usize,
    },
}

/// Longest servant or function name accepted (bytes): names are labels and route keys.
pub const MAX_NAME: usize = 1024;

impl Error {
    /// The byte offset (from the frame start) where the broken rule was found.
    pub fn offset(&self) -> usize {
        match *self {
            Error::FrameTooShort { .. } | Error::FrameTooLarge { .. } => 0,
            Error::Truncated { offset }
            | Error::BadType { offset, .. }
            | Error::WrongType { offset, .. }
            | Error::OutOfRange { offset }
            | Error::BadLength { offset }
            | Error::TooDeep { offset }
            | Error::MissingField { offset, .. }
            | Error::NameTooLong { offset } => offset,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::FrameTooShort { len } => {
                write!(f, "tars: length prefix {len} is shorter than the prefix")
            }
            Error::FrameTooLarge { len, max } => {
                write!(f, "tars: packet of {len} bytes exceeds the limit of {max}")
            }
            Error::Truncated { offset } => {
                write!(f, "tars: value at offset {offset} runs past the packet")
            }
            Error::BadType { offset, ty } => {
                write!(f, "tars: unknown field type {ty} at offset {offset}")
            }
            Error::WrongType { offset, ty } => {
                write!(
                    f,
                    "tars: field type {ty} at offset {offset} does not fit its tag"
                )
            }
            Error::OutOfRange { offset } => {
                write!(
                    f,
                    "tars: integer at offset {offset} is out of its field's range"
                )
            }
            Error::BadLength { offset } => write!(
                f,
                "tars: length or count at offset {offset} exceeds the remaining bytes"
            ),
            Error::TooDeep { offset } => {
                write!(f, "tars: nesting deeper than the limit at offset {offset}")
            }
            Error::MissingField { tag, offset } => {
                write!(
                    f,
                    "tars: required field {tag} missing (packet ends at {offset})"
                )
            }
            Error::NameTooLong { offset } => {
                write!(
                    f,
                    "tars: servant or function name at offset {offset} is too long"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// Reads the length prefix: the frame's total length once the whole frame is held,
/// [`Need::Exact`] once the prefix is, [`Need::AtLeast`] before. Limits are checked first.
#[inline]
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<Decoded<()>, Error> {
    let Some(p) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Decoded::NeedMore(Need::AtLeast(HEADER_LEN)));
    };
    let len = u32::from_be_bytes(*p);
    if (len as usize) < HEADER_LEN {
        return Err(Error::FrameTooShort { len });
    }
    let total = len as usize;
    if total > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: total,
            max: limits.max_frame,
        });
    }
    if buf.len() < total {
        return Ok(Decoded::NeedMore(Need::Exact(total)));
    }
    Ok(Decoded::Frame {
        frame: (),
        used: total,
    })
}

/// Which struct a packet holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Request,
    Response,
}

/// Every field of either layout, as read.
#[derive(Default)]
struct Fields<'a> {
    version: Option<i16>,
    packet_type: i8,
    message_type: i32,
    request_id: Option<i32>,
    servant: Option<&'a [u8]>,
    function: Option<&'a [u8]>,
    buffer: &'a [u8],
    timeout: i32,
    ret: i32,
    desc: Option<&'a [u8]>,
    context: StrMap<'a>,
    status: StrMap<'a>,
    /// The last tag read whole (head mode: how far the head reached).
    last_tag: u8,
}

fn int_field<T: TryFrom<i64>>(r: &mut Reader<'_>, ty: u8, at: usize) -> Result<T, Error> {
    let v = r.int_of(ty, at)?;
    T::try_from(v).map_err(|_| Error::OutOfRange {
        offset: r.base + at,
    })
}

fn name_field<'a>(r: &mut Reader<'a>, ty: u8, at: usize) -> Result<&'a [u8], Error> {
    let s = r.string_of(ty, at)?;
    if s.len() > MAX_NAME {
        return Err(Error::NameTooLong {
            offset: r.base + at,
        });
    }
    Ok(s)
}

/// Reads the fields of the packet in `body` (the bytes after the prefix; in head mode only
/// the first of them). A `Truncated` error is returned as is, for the head decoder to judge.
fn fields<'a>(
    body: &'a [u8],
    layout: Layout,
    limits: &Limits,
    cut: bool,
    f: &mut Fields<'a>,
) -> Result<(), Error> {
    let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
    r.cut = cut;
    // The response layout is only known once iVersion (tag 1) is read.
    let mut layout = layout;
    while !r.at_end() {
        let step = (|| {
            let (tag, ty, at) = r.head()?;
            match (layout, tag) {
                (_, 1) => {
                    let v: i16 = int_field(&mut r, ty, at)?;
                    f.version = Some(v);
                    if matches!(v, TUP_COMPLEX | TUP_SIMPLE) {
                        layout = Layout::Request;
                    }
                }
                (_, 2) => f.packet_type = int_field(&mut r, ty, at)?,
                (Layout::Request, 3) | (Layout::Response, 4) => {
                    f.message_type = int_field(&mut r, ty, at)?
                }
                (Layout::Request, 4) | (Layout::Response, 3) => {
                    f.request_id = Some(int_field(&mut r, ty, at)?)
                }
                (Layout::Request, 5) => f.servant = Some(name_field(&mut r, ty, at)?),
                (Layout::Request, 6) => f.function = Some(name_field(&mut r, ty, at)?),
                (Layout::Request, 7) | (Layout::Response, 6) => f.buffer = r.bytes_of(ty, at)?,
                (Layout::Request, 8) => f.timeout = int_field(&mut r, ty, at)?,
                (Layout::Request, 9) | (Layout::Response, 9) => {
                    let (raw, n) = r.str_map_of(ty, at)?;
                    f.context = StrMap::new(raw, n);
                }
                (Layout::Request, 10) | (Layout::Response, 7) => {
                    let (raw, n) = r.str_map_of(ty, at)?;
                    f.status = StrMap::new(raw, n);
                }
                (Layout::Response, 5) => f.ret = int_field(&mut r, ty, at)?,
                (Layout::Response, 8) => f.desc = Some(r.string_of(ty, at)?),
                _ => r.skip_of(ty, at, 0)?,
            }
            Ok::<u8, Error>(tag)
        })();
        f.last_tag = step?;
    }
    Ok(())
}

fn missing(tag: u8, body: &[u8]) -> Error {
    Error::MissingField {
        tag,
        offset: HEADER_LEN + body.len(),
    }
}

fn request_of<'a>(f: Fields<'a>, body: &[u8]) -> Result<Request<'a>, Error> {
    Ok(Request {
        version: f.version.ok_or_else(|| missing(1, body))?,
        packet_type: f.packet_type,
        message_type: f.message_type,
        request_id: f.request_id.ok_or_else(|| missing(4, body))?,
        servant: f.servant.ok_or_else(|| missing(5, body))?,
        function: f.function.ok_or_else(|| missing(6, body))?,
        buffer: f.buffer,
        timeout_ms: f.timeout,
        context: f.context,
        status: f.status,
    })
}

/// A TUP result code is a decimal string; an unparsable one counts as unknown (-99).
fn tup_ret(status: &StrMap<'_>) -> i32 {
    match status.get_str(STATUS_RESULT_CODE) {
        None => 0,
        Some(s) => s.parse().unwrap_or(ret::SERVER_UNKNOWN_ERR),
    }
}

fn response_of<'a>(f: Fields<'a>, body: &[u8], head: bool) -> Result<Response<'a>, Error> {
    let version = f.version.ok_or_else(|| missing(1, body))?;
    let tup = matches!(version, TUP_COMPLEX | TUP_SIMPLE);
    let id_tag = if tup { 4 } else { 3 };
    let (ret, desc) = if !tup {
        (Some(f.ret), f.desc)
    } else if head {
        (None, None)
    } else {
        (Some(tup_ret(&f.status)), f.status.get(STATUS_RESULT_DESC))
    };
    Ok(Response {
        version,
        packet_type: f.packet_type,
        request_id: f.request_id.ok_or_else(|| missing(id_tag, body))?,
        message_type: f.message_type,
        ret,
        buffer: f.buffer,
        status: f.status,
        result_desc: desc,
        context: if tup { StrMap::default() } else { f.context },
        servant: f.servant.unwrap_or(&[]),
        function: f.function.unwrap_or(&[]),
    })
}

/// Decodes one request packet.
pub fn decode_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    let used = match frame_len(buf, limits)? {
        Decoded::Frame { used, .. } => used,
        Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
    };
    let body = &buf[HEADER_LEN..used];
    let mut f = Fields::default();
    fields(body, Layout::Request, limits, false, &mut f)?;
    Ok(Decoded::Frame {
        frame: request_of(f, body)?,
        used,
    })
}

/// Decodes one response packet (either layout, by its version).
pub fn decode_response<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Response<'a>>, Error> {
    let used = match frame_len(buf, limits)? {
        Decoded::Frame { used, .. } => used,
        Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
    };
    let body = &buf[HEADER_LEN..used];
    let mut f = Fields::default();
    fields(body, Layout::Response, limits, false, &mut f)?;
    Ok(Decoded::Frame {
        frame: response_of(f, body, false)?,
        used,
    })
}

/// What the head of a frame holds.
enum Head<'a> {
    /// The fields the cut bytes hold, the packet body so far and the frame's total length.
    Fields(Fields<'a>, &'a [u8], usize),
    /// The frame is held whole: decode it whole.
    Whole,
    /// Not enough for the fields that matter.
    Need(Need),
}

/// The head of a frame too big to hold.
fn head_fields<'a>(
    buf: &'a [u8],
    layout: Layout,
    limits: &Limits,
    enough: impl Fn(&Fields<'_>) -> bool,
) -> Result<Head<'a>, Error> {
    let total = match frame_len(buf, limits)? {
        Decoded::NeedMore(Need::Exact(t)) => t,
        Decoded::NeedMore(n) => return Ok(Head::Need(n)),
        Decoded::Frame { .. } => return Ok(Head::Whole),
    };
    let body = &buf[HEADER_LEN..];
    let mut f = Fields::default();
    match fields(body, layout, limits, true, &mut f) {
        // A cut exactly between fields, or inside a later one: judge by what was read.
        Ok(()) | Err(Error::Truncated { .. }) if enough(&f) => Ok(Head::Fields(f, body, total)),
        Ok(()) | Err(Error::Truncated { .. }) => Ok(Head::Need(Need::AtLeast(buf.len() + 1))),
        Err(e) => Err(e),
    }
}

/// Head mode: decodes the request whose first bytes are `buf` (the frame may be much longer:
/// `used` is its whole length) from those bytes only: every field up to `sFuncName` (tag 6);
/// `sBuffer`, `context` and `status` are empty views. [`Need::AtLeast`] while those are cut.
pub fn decode_request_head<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Decoded<Request<'a>>, Error> {
    let (f, body, total) = match head_fields(buf, Layout::Request, limits, |f| f.last_tag >= 6)? {
        Head::Fields(f, body, total) => (f, body, total),
        Head::Whole => return decode_request(buf, limits),
        Head::Need(n) => return Ok(Decoded::NeedMore(n)),
    };
    let mut r = request_of(f, body)?;
    r.buffer = &[];
    r.context = StrMap::default();
    r.status = StrMap::default();
    Ok(Decoded::Frame {
        frame: r,
        used: total,
    })
}

/// Head mode for responses: every field up to `iRet` (tag 5) of a `ResponsePacket`, or up to
/// `sFuncName` of a TUP response (whose result code, in `status`, is past the head: `ret` is
/// `None`); the rest are empty views.
pub fn decode_response_head<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Decoded<Response<'a>>, Error> {
    let enough = |f: &Fields<'_>| {
        let tup = matches!(f.version, Some(TUP_COMPLEX | TUP_SIMPLE));
        f.last_tag >= if tup { 6 } else { 5 }
    };
    let (f, body, total) = match head_fields(buf, Layout::Response, limits, enough)? {
        Head::Fields(f, body, total) => (f, body, total),
        Head::Whole => return decode_response(buf, limits),
        Head::Need(n) => return Ok(Decoded::NeedMore(n)),
    };
    let mut r = response_of(f, body, true)?;
    r.buffer = &[];
    r.status = StrMap::default();
    r.context = StrMap::default();
    r.result_desc = None;
    Ok(Decoded::Frame {
        frame: r,
        used: total,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoders for locally generated replies (a rate-limited call's error, ...).

/// Where an encoder writes: the caller's buffer, or a counter that measures the length first.
trait Out {
    fn put(&mut self, b: &[u8]);
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

struct Count(usize);

impl Out for Count {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
}

fn write_int(out: &mut impl Out, tag: u8, v: i64) {
    let h = tag << 4;
    match v {
        0 => out.put(&[h | jce::ZERO]),
        -128..=127 => out.put(&[h | jce::INT1, v as i8 as u8]),
        -32768..=32767 => {
            out.put(&[h | jce::INT2]);
            out.put(&(v as i16).to_be_bytes());
        }
        -2147483648..=2147483647 => {
            out.put(&[h | jce::INT4]);
            out.put(&(v as i32).to_be_bytes());
        }
        _ => {
            out.put(&[h | jce::INT8]);
            out.put(&v.to_be_bytes());
        }
    }
}

fn write_str(out: &mut impl Out, tag: u8, s: &[u8]) {
    if s.len() <= 255 {
        out.put(&[tag << 4 | jce::STRING1, s.len() as u8]);
    } else {
        out.put(&[tag << 4 | jce::STRING4]);
        out.put(&(s.len() as u32).to_be_bytes());
    }
    out.put(s);
}

/// An empty `vector<byte>`: a simple list with an `INT1` element head and a zero count.
#[inline]
fn write_empty_bytes(out: &mut impl Out, tag: u8) {
    out.put(&[tag << 4 | jce::SIMPLE_LIST, jce::INT1, jce::ZERO]);
}

fn write_map_len(out: &mut impl Out, tag: u8, n: i64) {
    out.put(&[tag << 4 | jce::MAP]);
    write_int(out, 0, n);
}

fn code_digits(code: i32, buf: &mut [u8; 11]) -> &[u8] {
    let mut n = i64::from(code).unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if code < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

fn write_error_body(out: &mut impl Out, req: &Request<'_>, code: i32, desc: &[u8]) {
    write_int(out, 1, i64::from(req.version));
    write_int(out, 2, 0);
    if req.is_tup() {
        write_int(out, 3, i64::from(req.message_type));
        write_int(out, 4, i64::from(req.request_id));
        write_str(out, 5, req.servant);
        write_str(out, 6, req.function);
        // sBuffer: an empty UniAttribute (an empty map), as tars4nodejs `composeTUP` writes.
        out.put(&[
            7 << 4 | jce::SIMPLE_LIST,
            jce::INT1,
            jce::INT1,
            2,
            jce::MAP,
            jce::ZERO,
        ]);
        write_int(out, 8, 0);
        write_map_len(out, 9, 0);
        write_map_len(out, 10, 2);
        let mut b = [0u8; 11];
        write_str(out, 0, STATUS_RESULT_CODE.as_bytes());
        write_str(out, 1, code_digits(code, &mut b));
        write_str(out, 0, STATUS_RESULT_DESC.as_bytes());
        write_str(out, 1, desc);
    } else {
        write_int(out, 3, i64::from(req.request_id));
        write_int(out, 4, i64::from(req.message_type));
        write_int(out, 5, i64::from(code));
        write_empty_bytes(out, 6);
        write_map_len(out, 7, 0);
        write_str(out, 8, desc);
        write_map_len(out, 9, 0);
    }
}

/// Length of the frame [`encode_error_response`] writes.
pub fn error_response_len(req: &Request<'_>, code: i32, desc: &str) -> usize {
    let mut c = Count(HEADER_LEN);
    write_error_body(&mut c, req, code, desc.as_bytes());
    c.0
}

/// Writes the answer a TARS server gives a call it refuses (tars4nodejs
/// `TarsCurrent.sendErrorResponse`, TarsCpp `sendResponse(iRet, ...)` with an empty buffer): a
/// `ResponsePacket` with `iRet = code` and `sResultDesc = desc`, or for a TUP call the
/// `RequestPacket` form with the code and message in `status`. A one-way call gets no answer:
/// write nothing for it.
pub fn encode_error_response(out: &mut Vec<u8>, req: &Request<'_>, code: i32, desc: &str) {
    let len = error_response_len(req, code, desc);
    out.reserve(len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    write_error_body(out, req, code, desc.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_digits_are_decimal() {
        let mut b = [0u8; 11];
        assert_eq!(code_digits(0, &mut b), b"0");
        assert_eq!(code_digits(-9, &mut b), b"-9");
        assert_eq!(code_digits(i32::MIN, &mut b), b"-2147483648");
        assert_eq!(code_digits(1234, &mut b), b"1234");
    }
}
