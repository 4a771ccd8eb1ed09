//! ZooKeeper client protocol: 4-byte big-endian length prefix, then a Jute record.
//!
//! What is decoded (constants and layouts from Apache ZooKeeper 3.8: `zookeeper.jute`,
//! `ZooDefs.OpCode`, `KeeperException.Code`, `Watcher.Event`, `ClientCnxn`, `NIOServerCnxn`):
//! - the handshake: the first client frame is a `ConnectRequest` (protocolVersion, lastZxidSeen,
//!   timeOut, sessionId, passwd, optional readOnly byte), the first server frame a
//!   `ConnectResponse` (protocolVersion, timeOut, sessionId, passwd, optional readOnly);
//!   a client may instead open with a four-letter word (`ruok`, `srvr`, ...), which the server
//!   answers with unframed text and then closes;
//! - requests: `RequestHeader` (xid, opcode), the path of every path operation, the auth scheme of
//!   `AuthPacket`, and for `multi`/`multiRead` each sub-operation's opcode and path;
//! - replies: `ReplyHeader` (xid, zxid, err) and, for xid -1, the `WatcherEvent` (type, state,
//!   path). Replies do not carry their opcode: the engine pairs them with requests by xid.
//!   Special xids: -1 watch event, -2 ping, -4 auth, -8 set-watches.
//!
//! The frame is decoded once it is whole (the length prefix says how long); bodies are not
//! decoded beyond what routing, policy and metrics need. Jute has no nesting, so
//! [`Limits::max_depth`] does not apply here.
//!
//! Which frame comes next depends on the connection's phase ([`Phase`]): the engine either passes
//! it to [`decode_request`]/[`decode_response`] or keeps a [`Connection`] per connection, which
//! advances the phases itself.

mod codes;
mod connection;
mod encode;
mod head;
mod jute;
mod session;

pub use codes::{ErrorCode, EventType, FourLetterWord, KeeperState, OpCode};
pub use connection::Connection;
pub use encode::{encode_error_reply, error_reply};
pub use session::{MultiOp, MultiOps};

use crate::wire::Cursor;
use crate::{Decoded, Limits, Need};
use core::fmt;
use jute::{buffer, int, long};
use session::{decode_op, decode_reply};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;
/// Bytes of a locally generated error reply (prefix + xid + zxid + err).
pub const ERROR_REPLY_LEN: usize = 20;

/// The xid of watch events sent by the server (`ClientCnxn.NOTIFICATION_XID`).
pub const NOTIFICATION_XID: i32 = -1;
/// The xid of pings and their replies (`ClientCnxn.PING_XID`).
pub const PING_XID: i32 = -2;
/// The xid of auth packets and their replies (`ClientCnxn.AUTHPACKET_XID`).
pub const AUTH_XID: i32 = -4;
/// The xid of set-watches requests and their replies (`ClientCnxn.SET_WATCHES_XID`).
pub const SET_WATCHES_XID: i32 = -8;

// Smallest bodies (after the length prefix) of each record.
const CONNECT_REQUEST_MIN: usize = 4 + 8 + 4 + 8 + 4;
const CONNECT_RESPONSE_MIN: usize = 4 + 4 + 8 + 4;
const REQUEST_HEADER: usize = 8;
const REPLY_HEADER: usize = 16;
// A `MultiHeader` is type (int), done (bool), err (int).
const MULTI_HEADER: usize = 9;
// Smallest `ACL`: perms (int) plus two empty strings.
const ACL_MIN: usize = 12;

/// What a direction of a connection expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The first frame: `ConnectRequest` (or a four-letter word) / `ConnectResponse`.
    Handshake,
    /// Requests and replies of an established session.
    Session,
    /// After a four-letter word: unframed bytes until the server closes.
    Raw,
}

/// A broken rule, with the byte offset (from the start of the frame) where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The length prefix is negative.
    NegativeFrameLength {
        /// The value of the prefix.
        len: i32,
    },
    /// The frame (prefix included) is larger than [`Limits::max_frame`].
    FrameTooLarge {
        /// Frame length, prefix included.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length prefix is smaller than the record this phase expects.
    FrameTooShort {
        /// Frame length, prefix included.
        len: usize,
        /// Smallest frame length of the expected record, prefix included.
        min: usize,
    },
    /// A field runs past the end of the frame.
    Truncated {
        /// The Jute field.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
    },
    /// A string, buffer or vector length is below -1 (-1 means null in Jute).
    BadLength {
        /// The Jute field.
        field: &'static str,
        /// Where the length starts.
        offset: usize,
        /// The value read.
        len: i32,
    },
    /// A vector's element count cannot fit in the bytes that remain.
    CountTooLarge {
        /// The Jute field.
        field: &'static str,
        /// Where the count starts.
        offset: usize,
        /// The count read.
        count: i32,
    },
    /// A path or scheme is not UTF-8 (Jute `ustring`).
    InvalidUtf8 {
        /// The Jute field.
        field: &'static str,
        /// Where the string's bytes start.
        offset: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NegativeFrameLength { len } => {
                write!(f, "zookeeper: negative frame length {len} at offset 0")
            }
            Error::FrameTooLarge { len, max } => {
                write!(f, "zookeeper: frame of {len} bytes exceeds the limit of {max}")
            }
            Error::FrameTooShort { len, min } => write!(
                f,
                "zookeeper: frame of {len} bytes is shorter than the {min} its record needs"
            ),
            Error::Truncated { field, offset } => {
                write!(f, "zookeeper: field {field} at offset {offset} runs past the frame")
            }
            Error::BadLength { field, offset, len } => {
                write!(f, "zookeeper: field {field} at offset {offset} has length {len} < -1")
            }
            Error::CountTooLarge {
                field,
                offset,
                count,
            } => write!(
                f,
                "zookeeper: field {field} at offset {offset} counts {count} elements, more than the frame holds"
            ),
            Error::InvalidUtf8 { field, offset } => {
                write!(f, "zookeeper: field {field} at offset {offset} is not UTF-8")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The first client frame of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRequest<'a> {
    /// `protocolVersion` (0 for every released client).
    pub protocol_version: i32,
    /// `lastZxidSeen`: the newest zxid the client saw (0 for a new session).
    pub last_zxid_seen: i64,
    /// `timeOut`: the session timeout the client asks for, in milliseconds.
    pub timeout_ms: i32,
    /// `sessionId`: 0 for a new session, else the session being resumed.
    pub session_id: i64,
    /// `passwd` (a null buffer decodes as empty).
    pub passwd: &'a [u8],
    /// `readOnly`, absent in clients older than 3.4.
    pub read_only: Option<bool>,
}

/// The first server frame of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectResponse<'a> {
    /// `protocolVersion`.
    pub protocol_version: i32,
    /// `timeOut`: the negotiated session timeout in milliseconds (0: session refused/expired).
    pub timeout_ms: i32,
    /// `sessionId` (0 when the session was refused).
    pub session_id: i64,
    /// `passwd` (a null buffer decodes as empty).
    pub passwd: &'a [u8],
    /// `readOnly`, absent in servers older than 3.4.
    pub read_only: Option<bool>,
}

/// What a request names, beyond its opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Nothing decoded (ping, closeSession, whoAmI, setWatches, sasl, reconfig, unknown opcodes).
    None,
    /// The path of a path operation. A null Jute string decodes as `""`; the server rejects
    /// both alike (`PathUtils.validatePath`).
    Path(&'a str),
    /// The sub-operations of `multi` / `multiRead`.
    Multi(MultiOps<'a>),
    /// An `AuthPacket` (xid -4).
    Auth {
        /// `type` (0 in every client).
        auth_type: i32,
        /// `scheme`, e.g. `digest`, `ip`, `sasl`.
        scheme: &'a str,
    },
}

/// A request of an established session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpRequest<'a> {
    /// `xid`: the id replies are paired by (-2 ping, -4 auth, -8 set-watches).
    pub xid: i32,
    /// `type`.
    pub op: OpCode,
    /// Path, multi sub-operations or auth scheme.
    pub target: Target<'a>,
    /// The record after the request header, undecoded beyond `target`.
    pub body: &'a [u8],
}

impl<'a> OpRequest<'a> {
    /// The path of a path operation.
    #[inline]
    pub fn path(&self) -> Option<&'a str> {
        match self.target {
            Target::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The sub-operations of `multi` / `multiRead`.
    #[inline]
    pub fn multi(&self) -> Option<MultiOps<'a>> {
        match self.target {
            Target::Multi(m) => Some(m),
            _ => None,
        }
    }
}

/// One client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// The handshake.
    Connect(ConnectRequest<'a>),
    /// A request of the session.
    Op(OpRequest<'a>),
    /// A four-letter word instead of a handshake.
    FourLetter(FourLetterWord),
    /// Unframed bytes after a four-letter word.
    Raw(&'a [u8]),
}

/// A watch event (xid -1): `WatcherEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    /// `type`.
    pub event_type: EventType,
    /// `state`.
    pub state: KeeperState,
    /// `path` (a null string decodes as `""`).
    pub path: &'a str,
}

/// What a reply is, told by its xid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind<'a> {
    /// The reply to the request with the same xid.
    Normal,
    /// A watch event (xid -1).
    Watch(WatchEvent<'a>),
    /// A ping reply (xid -2).
    Ping,
    /// An auth reply (xid -4); `err` is `AUTHFAILED` when the credentials were refused.
    Auth,
    /// A set-watches reply (xid -8).
    SetWatches,
}

impl ReplyKind<'_> {
    /// A static name, for metric labels.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ReplyKind::Normal => "reply",
            ReplyKind::Watch(_) => "watch",
            ReplyKind::Ping => "ping",
            ReplyKind::Auth => "auth",
            ReplyKind::SetWatches => "setWatches",
        }
    }
}

/// A server frame of an established session: `ReplyHeader` and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// `xid`.
    pub xid: i32,
    /// `zxid`: the server's last zxid (-1 on watch events).
    pub zxid: i64,
    /// `err`.
    pub err: ErrorCode,
    /// Told by the xid.
    pub kind: ReplyKind<'a>,
    /// The record after the reply header, undecoded (a watch event's included).
    pub body: &'a [u8],
}

/// One server frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// The handshake.
    Connect(ConnectResponse<'a>),
    /// A reply, watch event, ping or auth reply.
    Reply(Reply<'a>),
    /// Unframed text answering a four-letter word.
    Raw(&'a [u8]),
}

/// Reads the length prefix and checks it against the limits and the record's smallest size.
/// `Ok(Err(need))` when the frame is not whole yet.
#[inline]
fn frame_len(buf: &[u8], min_body: usize, limits: &Limits) -> Result<Result<usize, Need>, Error> {
    let Some(p) = buf.get(..LENGTH_PREFIX) else {
        return Ok(Err(Need::AtLeast(LENGTH_PREFIX)));
    };
    let len = i32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    if len < 0 {
        return Err(Error::NegativeFrameLength { len });
    }
    let total = LENGTH_PREFIX + len as usize;
    if total > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: total,
            max: limits.max_frame,
        });
    }
    if (len as usize) < min_body {
        return Err(Error::FrameTooShort {
            len: total,
            min: LENGTH_PREFIX + min_body,
        });
    }
    if buf.len() < total {
        return Ok(Err(Need::Exact(total)));
    }
    Ok(Ok(total))
}

#[inline]
fn read_only(c: &mut Cursor<'_>) -> Option<bool> {
    // Extra bytes after it are ignored, as the server does.
    c.u8().map(|b| b != 0)
}

/// Decodes one client frame. `phase` says what the connection expects (see [`Connection`]).
pub fn decode_request<'a>(
    buf: &'a [u8],
    phase: Phase,
    limits: &Limits,
) -> Result<Decoded<Request<'a>>, Error> {
    match phase {
        Phase::Session => decode_op(buf, limits),
        Phase::Handshake => {
            // The server checks for a four-letter word before it reads a ConnectRequest.
            if let Some(&[a, b, c, d]) = buf.get(..4) {
                if let Some(w) = FourLetterWord::from_bytes([a, b, c, d]) {
                    let used = w.wire_len();
                    if buf.len() < used {
                        return Ok(Decoded::NeedMore(Need::Exact(used)));
                    }
                    return Ok(Decoded::Frame {
                        frame: Request::FourLetter(w),
                        used,
                    });
                }
            }
            let total = match frame_len(buf, CONNECT_REQUEST_MIN, limits)? {
                Ok(t) => t,
                Err(need) => return Ok(Decoded::NeedMore(need)),
            };
            let mut c = Cursor::new(&buf[..total]);
            c.skip(LENGTH_PREFIX);
            let protocol_version = int(&mut c, "protocolVersion")?;
            let last_zxid_seen = long(&mut c, "lastZxidSeen")?;
            let timeout_ms = int(&mut c, "timeOut")?;
            let session_id = long(&mut c, "sessionId")?;
            let passwd = buffer(&mut c, "passwd")?;
            let read_only = read_only(&mut c);
            Ok(Decoded::Frame {
                frame: Request::Connect(ConnectRequest {
                    protocol_version,
                    last_zxid_seen,
                    timeout_ms,
                    session_id,
                    passwd,
                    read_only,
                }),
                used: total,
            })
        }
        Phase::Raw => raw(buf).map(|d| map_raw(d, Request::Raw)),
    }
}

#[inline]
fn raw(buf: &[u8]) -> Result<Decoded<&[u8]>, Error> {
    if buf.is_empty() {
        Ok(Decoded::NeedMore(Need::AtLeast(1)))
    } else {
        Ok(Decoded::Frame {
            frame: buf,
            used: buf.len(),
        })
    }
}

#[inline]
fn map_raw<'a, F>(d: Decoded<&'a [u8]>, f: impl FnOnce(&'a [u8]) -> F) -> Decoded<F> {
    match d {
        Decoded::Frame { frame, used } => Decoded::Frame {
            frame: f(frame),
            used,
        },
        Decoded::NeedMore(n) => Decoded::NeedMore(n),
    }
}

/// Decodes one server frame. `phase` says what the connection expects (see [`Connection`]).
pub fn decode_response<'a>(
    buf: &'a [u8],
    phase: Phase,
    limits: &Limits,
) -> Result<Decoded<Response<'a>>, Error> {
    match phase {
        Phase::Session => decode_reply(buf, limits),
        Phase::Handshake => {
            let total = match frame_len(buf, CONNECT_RESPONSE_MIN, limits)? {
                Ok(t) => t,
                Err(need) => return Ok(Decoded::NeedMore(need)),
            };
            let mut c = Cursor::new(&buf[..total]);
            c.skip(LENGTH_PREFIX);
            let protocol_version = int(&mut c, "protocolVersion")?;
            let timeout_ms = int(&mut c, "timeOut")?;
            let session_id = long(&mut c, "sessionId")?;
            let passwd = buffer(&mut c, "passwd")?;
            let read_only = read_only(&mut c);
            Ok(Decoded::Frame {
                frame: Response::Connect(ConnectResponse {
                    protocol_version,
                    timeout_ms,
                    session_id,
                    passwd,
                    read_only,
                }),
                used: total,
            })
        }
        Phase::Raw => raw(buf).map(|d| map_raw(d, Response::Raw)),
    }
}
