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

use crate::wire::Cursor;
use crate::{Decoded, Limits, Need};
use core::fmt;

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

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($var:ident = $val:literal => $s:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                #[doc = concat!("`", $s, "` (", stringify!($val), ")")]
                $var,
            )*
            /// A value this version does not know; kept as data.
            Unknown(i32),
        }

        impl $name {
            /// Every known value, in declaration order (a closed set for metric labels).
            pub const ALL: &'static [$name] = &[$($name::$var),*];

            /// Maps a wire value; unknown values become `Unknown(raw)`.
            #[inline]
            pub const fn from_i32(v: i32) -> Self {
                match v {
                    $($val => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }

            /// The wire value.
            #[inline]
            pub const fn as_i32(self) -> i32 {
                match self {
                    $($name::$var => $val,)*
                    $name::Unknown(v) => v,
                }
            }

            /// A static name, for metric labels (`"unknown"` for unknown values).
            #[inline]
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $($name::$var => $s,)*
                    $name::Unknown(_) => "unknown",
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::Unknown(v) => write!(f, "unknown({v})"),
                    known => f.write_str(known.as_str()),
                }
            }
        }
    };
}

code_enum! {
    /// Request opcodes (`ZooDefs.OpCode`, ZooKeeper 3.8); names as ZooKeeper spells them.
    OpCode {
        Notification = 0 => "notification",
        Create = 1 => "create",
        Delete = 2 => "delete",
        Exists = 3 => "exists",
        GetData = 4 => "getData",
        SetData = 5 => "setData",
        GetAcl = 6 => "getACL",
        SetAcl = 7 => "setACL",
        GetChildren = 8 => "getChildren",
        Sync = 9 => "sync",
        Ping = 11 => "ping",
        GetChildren2 = 12 => "getChildren2",
        Check = 13 => "check",
        Multi = 14 => "multi",
        Create2 = 15 => "create2",
        Reconfig = 16 => "reconfig",
        CheckWatches = 17 => "checkWatches",
        RemoveWatches = 18 => "removeWatches",
        CreateContainer = 19 => "createContainer",
        DeleteContainer = 20 => "deleteContainer",
        CreateTtl = 21 => "createTTL",
        MultiRead = 22 => "multiRead",
        Auth = 100 => "auth",
        SetWatches = 101 => "setWatches",
        Sasl = 102 => "sasl",
        GetEphemerals = 103 => "getEphemerals",
        GetAllChildrenNumber = 104 => "getAllChildrenNumber",
        SetWatches2 = 105 => "setWatches2",
        AddWatch = 106 => "addWatch",
        WhoAmI = 107 => "whoAmI",
        CreateSession = -10 => "createSession",
        CloseSession = -11 => "closeSession",
        Error = -1 => "error",
    }
}

impl OpCode {
    /// Whether the request body starts with a path (Jute `ustring path` or `prefixPath`).
    #[inline]
    pub const fn has_path(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::Exists
                | OpCode::GetData
                | OpCode::SetData
                | OpCode::GetAcl
                | OpCode::SetAcl
                | OpCode::GetChildren
                | OpCode::GetChildren2
                | OpCode::Sync
                | OpCode::Check
                | OpCode::CheckWatches
                | OpCode::RemoveWatches
                | OpCode::AddWatch
                | OpCode::GetEphemerals
                | OpCode::GetAllChildrenNumber
        )
    }

    /// Whether the operation changes the tree (or the session's ACLs/config).
    #[inline]
    pub const fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Multi
                | OpCode::Reconfig
        )
    }
}

code_enum! {
    /// Reply error codes (`KeeperException.Code`, ZooKeeper 3.8); names as ZooKeeper spells them.
    ErrorCode {
        Ok = 0 => "OK",
        SystemError = -1 => "SYSTEMERROR",
        RuntimeInconsistency = -2 => "RUNTIMEINCONSISTENCY",
        DataInconsistency = -3 => "DATAINCONSISTENCY",
        ConnectionLoss = -4 => "CONNECTIONLOSS",
        MarshallingError = -5 => "MARSHALLINGERROR",
        Unimplemented = -6 => "UNIMPLEMENTED",
        OperationTimeout = -7 => "OPERATIONTIMEOUT",
        BadArguments = -8 => "BADARGUMENTS",
        UnknownSession = -12 => "UNKNOWNSESSION",
        NewConfigNoQuorum = -13 => "NEWCONFIGNOQUORUM",
        ReconfigInProgress = -14 => "RECONFIGINPROGRESS",
        ApiError = -100 => "APIERROR",
        NoNode = -101 => "NONODE",
        NoAuth = -102 => "NOAUTH",
        BadVersion = -103 => "BADVERSION",
        NoChildrenForEphemerals = -108 => "NOCHILDRENFOREPHEMERALS",
        NodeExists = -110 => "NODEEXISTS",
        NotEmpty = -111 => "NOTEMPTY",
        SessionExpired = -112 => "SESSIONEXPIRED",
        InvalidCallback = -113 => "INVALIDCALLBACK",
        InvalidAcl = -114 => "INVALIDACL",
        AuthFailed = -115 => "AUTHFAILED",
        SessionMoved = -118 => "SESSIONMOVED",
        NotReadOnly = -119 => "NOTREADONLY",
        EphemeralOnLocalSession = -120 => "EPHEMERALONLOCALSESSION",
        NoWatcher = -121 => "NOWATCHER",
        RequestTimeout = -122 => "REQUESTTIMEOUT",
        ReconfigDisabled = -123 => "RECONFIGDISABLED",
        SessionClosedRequireSaslAuth = -124 => "SESSIONCLOSEDREQUIRESASLAUTH",
        QuotaExceeded = -125 => "QUOTAEXCEEDED",
        ThrottledOp = -127 => "THROTTLEDOP",
    }
}

code_enum! {
    /// Watch event types (`Watcher.Event.EventType`).
    EventType {
        None = -1 => "None",
        NodeCreated = 1 => "NodeCreated",
        NodeDeleted = 2 => "NodeDeleted",
        NodeDataChanged = 3 => "NodeDataChanged",
        NodeChildrenChanged = 4 => "NodeChildrenChanged",
        DataWatchRemoved = 5 => "DataWatchRemoved",
        ChildWatchRemoved = 6 => "ChildWatchRemoved",
        PersistentWatchRemoved = 7 => "PersistentWatchRemoved",
    }
}

code_enum! {
    /// Session states carried by watch events (`Watcher.Event.KeeperState`).
    KeeperState {
        UnknownState = -1 => "Unknown",
        Disconnected = 0 => "Disconnected",
        NoSyncConnected = 1 => "NoSyncConnected",
        SyncConnected = 3 => "SyncConnected",
        AuthFailed = 4 => "AuthFailed",
        ConnectedReadOnly = 5 => "ConnectedReadOnly",
        SaslAuthenticated = 6 => "SaslAuthenticated",
        Expired = -112 => "Expired",
        Closed = 7 => "Closed",
    }
}

/// Four-letter admin words a client may send instead of a `ConnectRequest`
/// (`FourLetterCommands`, ZooKeeper 3.8). The server answers with unframed text and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FourLetterWord {
    /// `conf`
    Conf,
    /// `cons`
    Cons,
    /// `crst`
    Crst,
    /// `dirs`
    Dirs,
    /// `dump`
    Dump,
    /// `envi`
    Envi,
    /// `gtmk`
    Gtmk,
    /// `ruok`
    Ruok,
    /// `stmk` (followed by an 8-byte trace mask)
    Stmk,
    /// `srvr`
    Srvr,
    /// `srst`
    Srst,
    /// `stat`
    Stat,
    /// `wchc`
    Wchc,
    /// `wchp`
    Wchp,
    /// `wchs`
    Wchs,
    /// `mntr`
    Mntr,
    /// `isro`
    Isro,
    /// `hash`
    Hash,
    /// telnet's interrupt sequence `ff f4 ff fd`: the server closes.
    TelnetClose,
}

impl FourLetterWord {
    /// Recognises the first four bytes of a connection.
    pub const fn from_bytes(b: [u8; 4]) -> Option<Self> {
        Some(match &b {
            b"conf" => FourLetterWord::Conf,
            b"cons" => FourLetterWord::Cons,
            b"crst" => FourLetterWord::Crst,
            b"dirs" => FourLetterWord::Dirs,
            b"dump" => FourLetterWord::Dump,
            b"envi" => FourLetterWord::Envi,
            b"gtmk" => FourLetterWord::Gtmk,
            b"ruok" => FourLetterWord::Ruok,
            b"stmk" => FourLetterWord::Stmk,
            b"srvr" => FourLetterWord::Srvr,
            b"srst" => FourLetterWord::Srst,
            b"stat" => FourLetterWord::Stat,
            b"wchc" => FourLetterWord::Wchc,
            b"wchp" => FourLetterWord::Wchp,
            b"wchs" => FourLetterWord::Wchs,
            b"mntr" => FourLetterWord::Mntr,
            b"isro" => FourLetterWord::Isro,
            b"hash" => FourLetterWord::Hash,
            [0xff, 0xf4, 0xff, 0xfd] => FourLetterWord::TelnetClose,
            _ => return None,
        })
    }

    /// A static name, for metric labels.
    pub const fn as_str(&self) -> &'static str {
        match self {
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Hash => "hash",
            FourLetterWord::TelnetClose => "telnetClose",
        }
    }

    /// Bytes the word occupies on the wire (`stmk` carries a trace mask, `NIOServerCnxn`).
    pub const fn wire_len(self) -> usize {
        match self {
            FourLetterWord::Stmk => 12,
            _ => 4,
        }
    }
}

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

/// One sub-operation of a `multi` or `multiRead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiOp<'a> {
    /// The `MultiHeader` type.
    pub op: OpCode,
    /// Its path; `None` for a type the server does not accept in a multi (the iteration then
    /// stops, as the server would: it cannot know the record's length).
    pub path: Option<&'a str>,
}

/// The sub-operations of a `multi` / `multiRead`, validated when the frame was decoded.
#[derive(Debug, Clone, Copy)]
pub struct MultiOps<'a> {
    cursor: Cursor<'a>,
    done: bool,
}

impl PartialEq for MultiOps<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.done == other.done
            && self.cursor.pos() == other.cursor.pos()
            && self.cursor.rest() == other.cursor.rest()
    }
}
impl Eq for MultiOps<'_> {}

impl<'a> Iterator for MultiOps<'a> {
    type Item = MultiOp<'a>;

    fn next(&mut self) -> Option<MultiOp<'a>> {
        if self.done {
            return None;
        }
        match next_multi_op(&mut self.cursor) {
            Ok(Some((op, stop))) => {
                self.done = stop;
                Some(op)
            }
            // Errors cannot happen: the walk was validated at decode time.
            Ok(None) | Err(_) => {
                self.done = true;
                None
            }
        }
    }
}

#[inline]
fn truncated(field: &'static str, offset: usize) -> Error {
    Error::Truncated { field, offset }
}

#[inline]
fn int(c: &mut Cursor<'_>, field: &'static str) -> Result<i32, Error> {
    let at = c.pos();
    c.i32().ok_or(truncated(field, at))
}

#[inline]
fn long(c: &mut Cursor<'_>, field: &'static str) -> Result<i64, Error> {
    let at = c.pos();
    c.i64().ok_or(truncated(field, at))
}

/// Jute `buffer`: int length (-1 null) then bytes. Null decodes as empty.
#[inline]
fn buffer<'a>(c: &mut Cursor<'a>, field: &'static str) -> Result<&'a [u8], Error> {
    let at = c.pos();
    let len = c.i32().ok_or(truncated(field, at))?;
    if len < 0 {
        return if len == -1 {
            Ok(&[])
        } else {
            Err(Error::BadLength {
                field,
                offset: at,
                len,
            })
        };
    }
    c.take(len as usize).ok_or(truncated(field, at))
}

/// Jute `ustring`: a UTF-8 buffer.
#[inline]
fn string<'a>(c: &mut Cursor<'a>, field: &'static str) -> Result<&'a str, Error> {
    let at = c.pos() + 4;
    let b = buffer(c, field)?;
    core::str::from_utf8(b).map_err(|_| Error::InvalidUtf8 { field, offset: at })
}

/// Skips a Jute `vector<ACL>` after checking its count against the bytes that remain.
fn skip_acls(c: &mut Cursor<'_>) -> Result<(), Error> {
    let at = c.pos();
    let n = int(c, "acl")?;
    if n < 0 {
        return if n == -1 {
            Ok(())
        } else {
            Err(Error::BadLength {
                field: "acl",
                offset: at,
                len: n,
            })
        };
    }
    if n as usize > c.remaining() / ACL_MIN {
        return Err(Error::CountTooLarge {
            field: "acl",
            offset: at,
            count: n,
        });
    }
    for _ in 0..n {
        int(c, "acl.perms")?;
        buffer(c, "acl.id.scheme")?;
        buffer(c, "acl.id.id")?;
    }
    Ok(())
}

#[inline]
fn skip(c: &mut Cursor<'_>, n: usize, field: &'static str) -> Result<(), Error> {
    let at = c.pos();
    c.skip(n).ok_or(truncated(field, at))
}

/// Reads one `MultiHeader` and its record (`MultiOperationRecord` in ZooKeeper 3.8).
/// `Ok(None)` at the closing header (done = true); `(op, true)` for a type that ends the walk.
fn next_multi_op<'a>(c: &mut Cursor<'a>) -> Result<Option<(MultiOp<'a>, bool)>, Error> {
    let at = c.pos();
    let h = c.take(MULTI_HEADER).ok_or(truncated("multi.header", at))?;
    let op = OpCode::from_i32(i32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    if h[4] != 0 {
        return Ok(None);
    }
    let path = match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            let p = string(c, "multi.path")?;
            buffer(c, "multi.data")?;
            skip_acls(c)?;
            skip(c, 4, "multi.flags")?;
            if op == OpCode::CreateTtl {
                skip(c, 8, "multi.ttl")?;
            }
            p
        }
        OpCode::Delete | OpCode::Check => {
            let p = string(c, "multi.path")?;
            skip(c, 4, "multi.version")?;
            p
        }
        OpCode::SetData => {
            let p = string(c, "multi.path")?;
            buffer(c, "multi.data")?;
            skip(c, 4, "multi.version")?;
            p
        }
        OpCode::GetData | OpCode::GetChildren => {
            let p = string(c, "multi.path")?;
            skip(c, 1, "multi.watch")?;
            p
        }
        _ => return Ok(Some((MultiOp { op, path: None }, true))),
    };
    Ok(Some((
        MultiOp {
            op,
            path: Some(path),
        },
        false,
    )))
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

#[inline]
fn decode_op<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    let total = match frame_len(buf, REQUEST_HEADER, limits)? {
        Ok(t) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let frame = &buf[..total];
    let xid = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let op = OpCode::from_i32(i32::from_be_bytes([
        frame[8], frame[9], frame[10], frame[11],
    ]));
    let mut c = Cursor::new(frame);
    c.skip(LENGTH_PREFIX + REQUEST_HEADER);
    let body = c.rest();
    let target = if op.has_path() {
        Target::Path(string(&mut c, "path")?)
    } else {
        match op {
            OpCode::Multi | OpCode::MultiRead => {
                let start = c;
                // Validate the whole walk now so that iterating later cannot fail.
                while let Some((_, stop)) = next_multi_op(&mut c)? {
                    if stop {
                        break;
                    }
                }
                Target::Multi(MultiOps {
                    cursor: start,
                    done: false,
                })
            }
            OpCode::Auth => {
                let auth_type = int(&mut c, "auth.type")?;
                let scheme = string(&mut c, "auth.scheme")?;
                buffer(&mut c, "auth.auth")?;
                Target::Auth { auth_type, scheme }
            }
            _ => Target::None,
        }
    };
    Ok(Decoded::Frame {
        frame: Request::Op(OpRequest {
            xid,
            op,
            target,
            body,
        }),
        used: total,
    })
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

#[inline]
fn decode_reply<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Response<'a>>, Error> {
    let total = match frame_len(buf, REPLY_HEADER, limits)? {
        Ok(t) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let frame = &buf[..total];
    let mut c = Cursor::new(frame);
    c.skip(LENGTH_PREFIX);
    let (Some(xid), Some(zxid), Some(err)) = (c.i32(), c.i64(), c.i32()) else {
        return Err(truncated("replyHeader", LENGTH_PREFIX));
    };
    let body = c.rest();
    let kind = match xid {
        NOTIFICATION_XID => {
            let event_type = EventType::from_i32(int(&mut c, "event.type")?);
            let state = KeeperState::from_i32(int(&mut c, "event.state")?);
            let path = string(&mut c, "event.path")?;
            ReplyKind::Watch(WatchEvent {
                event_type,
                state,
                path,
            })
        }
        PING_XID => ReplyKind::Ping,
        AUTH_XID => ReplyKind::Auth,
        SET_WATCHES_XID => ReplyKind::SetWatches,
        _ => ReplyKind::Normal,
    };
    Ok(Decoded::Frame {
        frame: Response::Reply(Reply {
            xid,
            zxid,
            err: ErrorCode::from_i32(err),
            kind,
            body,
        }),
        used: total,
    })
}

/// Head mode for a session request: the first bytes of a frame that may be much longer
/// (`used` is its whole length). The xid and opcode are read; the path only if it is at hand
/// (else [`Target::None`]); a multi's operations are not walked ([`Target::None`]).
fn op_head<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    let total = match frame_len(buf, REQUEST_HEADER, limits)? {
        Ok(_) => return decode_op(buf, limits),
        Err(Need::Exact(t)) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let mut c = Cursor::new(buf);
    c.skip(LENGTH_PREFIX);
    let (Some(xid), Some(op)) = (c.i32(), c.i32()) else {
        return Ok(Decoded::NeedMore(Need::AtLeast(
            LENGTH_PREFIX + REQUEST_HEADER,
        )));
    };
    let op = OpCode::from_i32(op);
    let body = c.rest();
    let target = match op.has_path() {
        true => string(&mut c, "path").map_or(Target::None, Target::Path),
        false => Target::None,
    };
    Ok(Decoded::Frame {
        frame: Request::Op(OpRequest {
            xid,
            op,
            target,
            body,
        }),
        used: total,
    })
}

/// Head mode for a session reply (see [`op_head`]): the reply header from the first bytes; a
/// watch event is never that large, so it must be whole.
fn reply_head<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Response<'a>>, Error> {
    let total = match frame_len(buf, REPLY_HEADER, limits)? {
        Ok(_) => return decode_reply(buf, limits),
        Err(Need::Exact(t)) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let mut c = Cursor::new(buf);
    c.skip(LENGTH_PREFIX);
    let (Some(xid), Some(zxid), Some(err)) = (c.i32(), c.i64(), c.i32()) else {
        return Ok(Decoded::NeedMore(Need::AtLeast(
            LENGTH_PREFIX + REPLY_HEADER,
        )));
    };
    let kind = match xid {
        NOTIFICATION_XID => return Ok(Decoded::NeedMore(Need::Exact(total))),
        PING_XID => ReplyKind::Ping,
        AUTH_XID => ReplyKind::Auth,
        SET_WATCHES_XID => ReplyKind::SetWatches,
        _ => ReplyKind::Normal,
    };
    Ok(Decoded::Frame {
        frame: Response::Reply(Reply {
            xid,
            zxid,
            err: ErrorCode::from_i32(err),
            kind,
            body: c.rest(),
        }),
        used: total,
    })
}

/// The per-connection decoding state: one per client connection, driven by the engine.
///
/// After a `ConnectRequest` the request side expects session requests; after a
/// `ConnectResponse` the response side expects replies; after a four-letter word both sides
/// carry unframed bytes until the server closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    requests: Phase,
    responses: Phase,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// A new connection: both sides expect the handshake.
    pub const fn new() -> Self {
        Connection {
            requests: Phase::Handshake,
            responses: Phase::Handshake,
        }
    }

    /// A connection picked up mid-session (both sides past the handshake).
    pub const fn in_session() -> Self {
        Connection {
            requests: Phase::Session,
            responses: Phase::Session,
        }
    }

    /// What the next client frame is expected to be.
    pub const fn request_phase(&self) -> Phase {
        self.requests
    }

    /// What the next server frame is expected to be.
    pub const fn response_phase(&self) -> Phase {
        self.responses
    }

    /// Decodes one client frame and advances the phase past the handshake.
    pub fn decode_request<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Request<'a>>, Error> {
        let d = decode_request(buf, self.requests, limits)?;
        match d {
            Decoded::Frame {
                frame: Request::Connect(_),
                ..
            } => self.requests = Phase::Session,
            Decoded::Frame {
                frame: Request::FourLetter(_),
                ..
            } => {
                self.requests = Phase::Raw;
                self.responses = Phase::Raw;
            }
            _ => {}
        }
        Ok(d)
    }

    /// Head mode (a frame too big to hold): decodes a session request from its first bytes,
    /// with `used` the whole frame's length; the handshake and four-letter words must be
    /// whole (they are small), so they decode as [`Connection::decode_request`] does.
    pub fn decode_request_head<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Request<'a>>, Error> {
        match self.requests {
            Phase::Session => op_head(buf, limits),
            _ => self.decode_request(buf, limits),
        }
    }

    /// Head mode for a server frame (see [`Connection::decode_request_head`]).
    pub fn decode_response_head<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Response<'a>>, Error> {
        match self.responses {
            Phase::Session => reply_head(buf, limits),
            _ => self.decode_response(buf, limits),
        }
    }

    /// Decodes one server frame and advances the phase past the handshake.
    pub fn decode_response<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Response<'a>>, Error> {
        let d = decode_response(buf, self.responses, limits)?;
        if let Decoded::Frame {
            frame: Response::Connect(_),
            ..
        } = d
        {
            self.responses = Phase::Session;
        }
        Ok(d)
    }
}

/// The 20 bytes of an error reply: `ReplyHeader` (xid, zxid, err) with no record after it.
///
/// Clients read no record when `err != 0` (`ClientCnxn.readResponse`), so this is a complete
/// reply to any opcode, `multi` included. Use the request's xid and the last zxid seen from the
/// server (clients keep the larger of their own and a positive zxid; 0 is safe).
pub const fn error_reply(xid: i32, zxid: i64, err: ErrorCode) -> [u8; ERROR_REPLY_LEN] {
    let mut out = [0u8; ERROR_REPLY_LEN];
    let len = ((ERROR_REPLY_LEN - LENGTH_PREFIX) as i32).to_be_bytes();
    let x = xid.to_be_bytes();
    let z = zxid.to_be_bytes();
    let e = err.as_i32().to_be_bytes();
    let mut i = 0;
    while i < 4 {
        out[i] = len[i];
        out[4 + i] = x[i];
        out[16 + i] = e[i];
        i += 1;
    }
    let mut i = 0;
    while i < 8 {
        out[8 + i] = z[i];
        i += 1;
    }
    out
}

/// Appends an error reply ([`error_reply`]) to `out`; returns the bytes written
/// ([`ERROR_REPLY_LEN`]).
pub fn encode_error_reply(xid: i32, zxid: i64, err: ErrorCode, out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&error_reply(xid, zxid, err));
    ERROR_REPLY_LEN
}
