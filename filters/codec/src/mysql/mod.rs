//! MySQL/MariaDB client/server protocol (the "MySQL protocol" of MySQL 8 and MariaDB 10.x,
//! compression off): packets and the per-connection state machine that says what each packet
//! is.
//!
//! Framing (`Protocol::Packet`): 3-byte little-endian payload length, 1-byte sequence id, then
//! the payload. A payload of exactly `0xffffff` bytes continues in the next packet of the same
//! direction (multi-packet payloads of 16 MiB and more); the continuation packets carry raw
//! payload bytes ([`ClientMsg::Continuation`], [`ServerMsg::Continuation`]).
//!
//! What the [`Connection`] follows (MySQL Internals "Connection Phase", "Command Phase",
//! "Text/Binary Resultset"; MariaDB's "Connection" and "Result set packets" pages):
//! - the server's `HandshakeV10` greeting (capabilities, MariaDB's extended capabilities);
//! - the client's `HandshakeResponse41` (user, capabilities; negotiated = client & server), or
//!   an `SSLRequest` (32 bytes with `CLIENT_SSL`): the TLS handshake follows, so both directions
//!   become opaque ([`Phase::Opaque`]); a negotiated `CLIENT_COMPRESS` does the same;
//! - the authentication exchange (auth switch, more data) until OK (login ok) or ERR (failed);
//! - the command phase: each command's kind (`COM_QUERY` text classified by its first keyword,
//!   `COM_STMT_EXECUTE` by the statement it prepared) and its answer: OK/ERR/EOF, text and
//!   binary result sets (column count, column definitions, EOF unless `CLIENT_DEPRECATE_EOF`,
//!   rows, terminator), multi-result answers (`SERVER_MORE_RESULTS_EXISTS`), `COM_STMT_PREPARE`'s
//!   parameter and column definitions, `LOCAL INFILE`, `COM_CHANGE_USER`'s re-authentication.
//!   Commands answer in order; up to [`MAX_PENDING`] may be in flight.
//!
//! Replication (`COM_BINLOG_DUMP*`) makes the connection opaque.

use crate::sql::{classify, StatementKind};
use crate::{Decoded, Limits, Need};
use core::fmt;

/// Bytes of a packet header.
pub const HEADER_LEN: usize = 4;
/// The payload length that says "continued in the next packet".
pub const MAX_PAYLOAD: usize = 0xff_ffff;
/// Commands answered out of [`Connection`]'s fixed ring; more in flight make it opaque.
pub const MAX_PENDING: usize = 8;
/// Prepared statements whose kind a [`Connection`] remembers (older ones are `other`).
pub const STATEMENT_SLOTS: usize = 16;

/// Capability flags this codec looks at (`CLIENT_*`).
pub mod caps {
    /// `CLIENT_LONG_PASSWORD`; MariaDB clears it (`CLIENT_MYSQL`) to announce extended caps.
    pub const LONG_PASSWORD: u32 = 1;
    /// `CLIENT_COMPRESS`.
    pub const COMPRESS: u32 = 0x20;
    /// `CLIENT_PROTOCOL_41`.
    pub const PROTOCOL_41: u32 = 0x200;
    /// `CLIENT_SSL`.
    pub const SSL: u32 = 0x800;
    /// `CLIENT_DEPRECATE_EOF`.
    pub const DEPRECATE_EOF: u32 = 1 << 24;
    /// MariaDB `MARIADB_CLIENT_CACHE_METADATA` (extended capabilities, bit 36 - 32).
    pub const MARIADB_CACHE_METADATA: u32 = 1 << 4;
}

/// `SERVER_MORE_RESULTS_EXISTS` in OK/EOF status flags.
const MORE_RESULTS: u16 = 0x0008;

/// Command bytes (`COM_*`). Unknown values are data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `COM_QUIT` (no answer).
    Quit,
    /// `COM_INIT_DB`.
    InitDb,
    /// `COM_QUERY`.
    Query,
    /// `COM_FIELD_LIST`.
    FieldList,
    /// `COM_STATISTICS`.
    Statistics,
    /// `COM_PING`.
    Ping,
    /// `COM_CHANGE_USER`.
    ChangeUser,
    /// `COM_BINLOG_DUMP` / `COM_BINLOG_DUMP_GTID` / `COM_REGISTER_SLAVE`: replication.
    Replication(u8),
    /// `COM_STMT_PREPARE`.
    StmtPrepare,
    /// `COM_STMT_EXECUTE`.
    StmtExecute,
    /// `COM_STMT_SEND_LONG_DATA` (no answer).
    StmtSendLongData,
    /// `COM_STMT_CLOSE` (no answer).
    StmtClose,
    /// `COM_STMT_RESET`.
    StmtReset,
    /// `COM_SET_OPTION`.
    SetOption,
    /// `COM_STMT_FETCH`.
    StmtFetch,
    /// `COM_RESET_CONNECTION`.
    ResetConnection,
    /// MariaDB `COM_STMT_BULK_EXECUTE`.
    StmtBulkExecute,
    /// Any other command byte (answered by OK/ERR).
    Other(u8),
}

impl Command {
    /// Maps a command byte.
    pub const fn from_u8(b: u8) -> Command {
        match b {
            0x01 => Command::Quit,
            0x02 => Command::InitDb,
            0x03 => Command::Query,
            0x04 => Command::FieldList,
            0x09 => Command::Statistics,
            0x0e => Command::Ping,
            0x11 => Command::ChangeUser,
            0x12 | 0x15 | 0x1e => Command::Replication(b),
            0x16 => Command::StmtPrepare,
            0x17 => Command::StmtExecute,
            0x18 => Command::StmtSendLongData,
            0x19 => Command::StmtClose,
            0x1a => Command::StmtReset,
            0x1b => Command::SetOption,
            0x1c => Command::StmtFetch,
            0x1f => Command::ResetConnection,
            0xfa => Command::StmtBulkExecute,
            other => Command::Other(other),
        }
    }

    /// True for the commands the server never answers.
    pub const fn no_reply(self) -> bool {
        matches!(
            self,
            Command::Quit | Command::StmtSendLongData | Command::StmtClose
        )
    }
}

/// Why bytes are not the MySQL protocol. Offsets count from the first byte of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The packet is larger than [`Limits::max_frame`].
    FrameTooLarge {
        /// Header plus payload.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The greeting's protocol version (offset 4) is not 10 (nor an ERR packet).
    BadProtocolVersion {
        /// The byte found.
        found: u8,
    },
    /// A field runs past the end of its packet.
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Where the field started.
        offset: usize,
    },
    /// An empty packet where the state machine needs a header byte.
    EmptyPacket {
        /// The structure expected.
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::FrameTooLarge { len, max } => {
                write!(f, "mysql: packet of {len} bytes exceeds the limit of {max}")
            }
            Error::BadProtocolVersion { found } => {
                write!(
                    f,
                    "mysql: greeting protocol version {found} at offset 4, expected 10"
                )
            }
            Error::Truncated { what, offset } => {
                write!(f, "mysql: {what} truncated at offset {offset}")
            }
            Error::EmptyPacket { what } => {
                write!(f, "mysql: empty packet where {what} was expected")
            }
        }
    }
}

impl std::error::Error for Error {}

/// One packet: `payload` is the whole payload, or in head mode its first bytes (`len` is
/// always the declared payload length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Sequence id.
    pub seq: u8,
    /// Declared payload length.
    pub len: usize,
    /// The payload bytes held.
    pub payload: &'a [u8],
}

impl Packet<'_> {
    /// Header plus payload.
    pub fn total(&self) -> usize {
        HEADER_LEN + self.len
    }
}

/// Frames one packet (the limit is checked from the header, before waiting for the payload).
#[inline]
pub fn decode_packet<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Packet<'a>>, Error> {
    Ok(crate::whole(decode_packet_head(buf, limits)?, buf.len()))
}

/// Head mode: the packet whose header starts `buf`, with as much payload as `buf` holds;
/// `used` is the whole packet's length (possibly more than `buf.len()`).
#[inline]
pub fn decode_packet_head<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Decoded<Packet<'a>>, Error> {
    let [a, b, c, seq, ..] = *buf else {
        return Ok(Decoded::NeedMore(Need::AtLeast(HEADER_LEN)));
    };
    let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
    let total = HEADER_LEN + len;
    if total > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: total,
            max: limits.max_frame,
        });
    }
    let end = total.min(buf.len());
    Ok(Decoded::Frame {
        frame: Packet {
            seq,
            len,
            payload: &buf[HEADER_LEN..end],
        },
        used: total,
    })
}

/// Reads a length-encoded integer at `at`; `None` when cut or the `0xfb`/`0xff` markers.
fn lenenc(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *p.get(at)?;
    let n = match first {
        0..=0xfa => return Some((u64::from(first), at + 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = p.get(at + 1..at + 1 + n)?;
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    Some((v, at + 1 + n))
}

fn le16(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

fn le32(p: &[u8], at: usize) -> Option<u32> {
    let b = p.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The server's `HandshakeV10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting<'a> {
    /// Server version string.
    pub version: &'a [u8],
    /// Connection id.
    pub connection_id: u32,
    /// Capability flags (lower 32 bits).
    pub caps: u32,
    /// MariaDB's extended capabilities (0 for MySQL).
    pub ext_caps: u32,
}

fn greeting(p: &[u8]) -> Result<Greeting<'_>, Error> {
    let t = |offset| Error::Truncated {
        what: "HandshakeV10",
        offset: HEADER_LEN + offset,
    };
    let nul = p[1..].iter().position(|&b| b == 0).ok_or(t(1))?;
    let version = &p[1..1 + nul];
    let mut at = 2 + nul;
    let connection_id = le32(p, at).ok_or(t(at))?;
    at += 4 + 8 + 1; // auth-plugin-data part 1, filler
    let low = le16(p, at).ok_or(t(at))?;
    at += 2;
    // charset(1) status(2) caps high(2) auth data len(1) reserved(6) MariaDB ext caps(4)
    let high = le16(p, at + 3).unwrap_or(0);
    let caps = u32::from(low) | u32::from(high) << 16;
    let ext_caps = if caps & caps::LONG_PASSWORD == 0 {
        le32(p, at + 6 + 6).unwrap_or(0)
    } else {
        0
    };
    Ok(Greeting {
        version,
        connection_id,
        caps,
        ext_caps,
    })
}

/// The client's login: `HandshakeResponse41` (or the old `HandshakeResponse320`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Login<'a> {
    /// Client capability flags.
    pub caps: u32,
    /// MariaDB extended capabilities.
    pub ext_caps: u32,
    /// User name.
    pub user: &'a [u8],
}

fn login(p: &[u8]) -> Result<Login<'_>, Error> {
    let t = |offset| Error::Truncated {
        what: "HandshakeResponse",
        offset: HEADER_LEN + offset,
    };
    let low = le16(p, 0).ok_or(t(0))?;
    if u32::from(low) & caps::PROTOCOL_41 == 0 {
        // HandshakeResponse320: caps(2) max packet(3) user NUL.
        let rest = p.get(5..).ok_or(t(2))?;
        let n = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        return Ok(Login {
            caps: u32::from(low),
            ext_caps: 0,
            user: &rest[..n],
        });
    }
    let caps = le32(p, 0).ok_or(t(0))?;
    // caps(4) max packet(4) charset(1) filler(19) ext caps(4), then the user.
    let ext_caps = le32(p, 28).ok_or(t(28))?;
    let rest = &p[32..];
    let n = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Ok(Login {
        caps,
        ext_caps,
        user: &rest[..n],
    })
}

/// An ERR packet's code and SQL state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrPacket<'a> {
    /// The error number (1045 access denied, 1064 syntax, 1146 no such table, ...).
    pub code: u16,
    /// The SQL state (`#` marker stripped), when present.
    pub state: &'a [u8],
}

fn err_packet(p: &[u8]) -> ErrPacket<'_> {
    let code = le16(p, 1).unwrap_or(0);
    let state = match p.get(3) {
        Some(b'#') => p.get(4..9).unwrap_or(&[]),
        _ => &[],
    };
    ErrPacket { code, state }
}

/// How a command's answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The command answered.
    pub command: Command,
    /// Its statement kind (`COM_QUERY`, `COM_STMT_EXECUTE`, `COM_STMT_PREPARE`).
    pub kind: StatementKind,
    /// `Err` carries the ERR packet.
    pub result: Result<(), ErrPacket<'a>>,
    /// Rows of the result sets of this answer.
    pub rows: u64,
}

/// What a client packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMsg<'a> {
    /// The login (`HandshakeResponse`).
    Login(Login<'a>),
    /// `SSLRequest`: TLS follows, the connection is opaque from here.
    SslRequest,
    /// An authentication exchange packet (auth switch response, more data).
    AuthData,
    /// A command; `sql` is the statement text (possibly cut in head mode) for `COM_QUERY` and
    /// `COM_STMT_PREPARE`; `kind` classifies it (`COM_STMT_EXECUTE`: its prepared statement).
    Command {
        /// The command.
        command: Command,
        /// Statement kind.
        kind: StatementKind,
        /// Statement text, when the command carries one.
        sql: Option<&'a [u8]>,
    },
    /// `LOCAL INFILE` data (the empty packet ends it).
    InfileData,
    /// A later packet of a multi-packet payload.
    Continuation,
    /// Bytes after TLS or compression started (or replication).
    Opaque(&'a [u8]),
}

/// What a server packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMsg<'a> {
    /// The greeting.
    Greeting(Greeting<'a>),
    /// The login ended: OK, or ERR (also an ERR instead of a greeting).
    LoginResult(Result<(), ErrPacket<'a>>),
    /// Auth switch or more-data: the exchange goes on.
    AuthMore,
    /// The last packet of a command's answer.
    Done(Reply<'a>),
    /// A packet inside an answer (column definition, row, intermediate EOF/OK).
    Part,
    /// A packet nobody asked for (no command pending).
    Unsolicited,
    /// A later packet of a multi-packet payload.
    Continuation,
    /// Bytes after TLS or compression started (or replication).
    Opaque(&'a [u8]),
}

/// The phase of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Waiting for the server's greeting.
    #[default]
    Greeting,
    /// Waiting for the client's login.
    Login,
    /// The authentication exchange.
    Auth,
    /// Commands.
    Command,
    /// Opaque bytes (TLS, compression, replication, too many commands in flight).
    Opaque,
}

/// What the server's next packet of the current answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Answer {
    /// The first packet of an answer (or of the next result set).
    #[default]
    First,
    /// Column definition packets left (their EOF included), then rows.
    Columns { left: u64 },
    /// Rows until the terminator.
    Rows,
    /// `COM_STMT_PREPARE`: parameter and column definition packets left (EOFs included).
    Prepared { left: u32 },
    /// `LOCAL INFILE` sent: the client streams the file; then OK/ERR.
    Infile,
}

/// One pending command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    command: Command,
    kind: StatementKind,
    /// Rows counted so far in this answer.
    rows: u64,
}

/// The per-connection state machine: which packet comes next in each direction.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    phase: Phase,
    server_caps: u32,
    server_ext: u32,
    caps: u32,
    ext_caps: u32,
    /// The next client/server packet continues a multi-packet payload.
    down_cont: bool,
    up_cont: bool,
    /// Client is streaming `LOCAL INFILE` data.
    infile: bool,
    answer: Answer,
    ring: [Option<Pending>; MAX_PENDING],
    head: u8,
    len: u8,
    /// Prepared statement id -> kind, filled round robin.
    stmts: [(u32, u8); STATEMENT_SLOTS],
    stmt_next: u8,
}

impl Connection {
    /// A connection that has not seen the greeting.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection already in the command phase (taken over mid-stream), with `caps`.
    pub fn in_commands(caps: u32) -> Self {
        Connection {
            phase: Phase::Command,
            caps,
            ..Self::default()
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The negotiated capabilities.
    pub fn caps(&self) -> u32 {
        self.caps
    }

    /// Commands waiting for their answer.
    pub fn pending(&self) -> usize {
        usize::from(self.len)
    }

    fn front(&self) -> Option<Pending> {
        self.ring[usize::from(self.head)]
    }

    fn push(&mut self, p: Pending) -> bool {
        if usize::from(self.len) == MAX_PENDING {
            return false;
        }
        let at = (usize::from(self.head) + usize::from(self.len)) % MAX_PENDING;
        self.ring[at] = Some(p);
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<Pending> {
        let p = self.ring[usize::from(self.head)].take()?;
        self.head = ((usize::from(self.head) + 1) % MAX_PENDING) as u8;
        self.len -= 1;
        self.answer = Answer::First;
        Some(p)
    }

    fn stmt_kind(&self, id: u32) -> StatementKind {
        self.stmts
            .iter()
            .find(|(i, k)| *i == id && *k != 0)
            .map_or(StatementKind::Other, |(_, k)| {
                StatementKind::from_index(k - 1)
            })
    }

    fn remember(&mut self, id: u32, kind: StatementKind) {
        let at = usize::from(self.stmt_next) % STATEMENT_SLOTS;
        self.stmts[at] = (id, kind.index() as u8 + 1);
        self.stmt_next = ((at + 1) % STATEMENT_SLOTS) as u8;
    }

    fn deprecate_eof(&self) -> bool {
        self.caps & caps::DEPRECATE_EOF != 0
    }

    /// Decodes one client packet and advances the state.
    pub fn decode_request<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<ClientMsg<'a>>, Error> {
        self.request(buf, limits, false)
    }

    /// Head mode: the client packet whose first bytes are `buf` (`used` is its whole length).
    pub fn decode_request_head<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<ClientMsg<'a>>, Error> {
        self.request(buf, limits, true)
    }

    /// Decodes one server packet and advances the state.
    pub fn decode_response<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<ServerMsg<'a>>, Error> {
        self.response(buf, limits, false)
    }

    /// Head mode: the server packet whose first bytes are `buf`.
    pub fn decode_response_head<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<ServerMsg<'a>>, Error> {
        self.response(buf, limits, true)
    }

    fn request<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
        head: bool,
    ) -> Result<Decoded<ClientMsg<'a>>, Error> {
        if self.phase == Phase::Opaque {
            return Ok(opaque(buf, ClientMsg::Opaque));
        }
        let (pk, used) = match frame(buf, limits, head)? {
            Ok(f) => f,
            Err(more) => return Ok(Decoded::NeedMore(more)),
        };
        let cont = pk.len == MAX_PAYLOAD;
        if self.down_cont {
            self.down_cont = cont;
            return Ok(Decoded::Frame {
                frame: ClientMsg::Continuation,
                used,
            });
        }
        let p = pk.payload;
        let msg = match self.phase {
            // Nothing from the client is expected before the greeting; pass it by.
            Phase::Greeting | Phase::Auth => ClientMsg::AuthData,
            Phase::Login => {
                let l = login(p)?;
                if l.caps & caps::SSL != 0 && pk.len == 32 {
                    self.phase = Phase::Opaque;
                    return Ok(Decoded::Frame {
                        frame: ClientMsg::SslRequest,
                        used,
                    });
                }
                self.caps = l.caps & self.server_caps;
                self.ext_caps = l.ext_caps & self.server_ext;
                self.phase = if self.caps & caps::COMPRESS != 0 {
                    Phase::Opaque
                } else {
                    Phase::Auth
                };
                ClientMsg::Login(l)
            }
            Phase::Command if self.infile => {
                if pk.len == 0 {
                    self.infile = false;
                }
                ClientMsg::InfileData
            }
            Phase::Command => {
                let Some(&b) = p.first() else {
                    return Err(Error::EmptyPacket { what: "a command" });
                };
                let command = Command::from_u8(b);
                let (kind, sql) = match command {
                    Command::Query | Command::StmtPrepare => {
                        let sql = &p[1..];
                        (classify(sql), Some(sql))
                    }
                    Command::StmtExecute | Command::StmtBulkExecute => {
                        let id = le32(p, 1).ok_or(Error::Truncated {
                            what: "COM_STMT_EXECUTE",
                            offset: HEADER_LEN + 1,
                        })?;
                        (self.stmt_kind(id), None)
                    }
                    _ => (StatementKind::Other, None),
                };
                match command {
                    Command::Replication(_) => self.phase = Phase::Opaque,
                    Command::ChangeUser => {
                        self.phase = Phase::Auth;
                    }
                    _ => {}
                }
                if !command.no_reply()
                    && !matches!(command, Command::Replication(_))
                    && !self.push(Pending {
                        command,
                        kind,
                        rows: 0,
                    })
                {
                    self.phase = Phase::Opaque;
                }
                ClientMsg::Command { command, kind, sql }
            }
            Phase::Opaque => ClientMsg::Opaque(p),
        };
        self.down_cont = cont;
        Ok(Decoded::Frame { frame: msg, used })
    }

    fn response<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
        head: bool,
    ) -> Result<Decoded<ServerMsg<'a>>, Error> {
        if self.phase == Phase::Opaque {
            return Ok(opaque(buf, ServerMsg::Opaque));
        }
        let (pk, used) = match frame(buf, limits, head)? {
            Ok(f) => f,
            Err(more) => return Ok(Decoded::NeedMore(more)),
        };
        let cont = pk.len == MAX_PAYLOAD;
        if self.up_cont {
            self.up_cont = cont;
            return Ok(Decoded::Frame {
                frame: ServerMsg::Continuation,
                used,
            });
        }
        let p = pk.payload;
        let msg = match self.phase {
            Phase::Greeting => match p.first() {
                None => {
                    return Err(Error::EmptyPacket {
                        what: "the greeting",
                    })
                }
                Some(0xff) => ServerMsg::LoginResult(Err(err_packet(p))),
                Some(10) => {
                    let g = greeting(p)?;
                    self.server_caps = g.caps;
                    self.server_ext = g.ext_caps;
                    self.phase = Phase::Login;
                    ServerMsg::Greeting(g)
                }
                Some(&found) => return Err(Error::BadProtocolVersion { found }),
            },
            Phase::Login => ServerMsg::Unsolicited,
            Phase::Auth => match p.first() {
                Some(0x00) => {
                    self.phase = Phase::Command;
                    self.finish_change_user(Ok(()))
                }
                Some(0xff) => {
                    self.phase = Phase::Command;
                    self.finish_change_user(Err(err_packet(p)))
                }
                _ => ServerMsg::AuthMore,
            },
            Phase::Command => self.answer(&pk)?,
            Phase::Opaque => ServerMsg::Opaque(p),
        };
        self.up_cont = cont;
        Ok(Decoded::Frame { frame: msg, used })
    }

    /// The end of an authentication: the login's, or a `COM_CHANGE_USER`'s answer.
    fn finish_change_user<'a>(&mut self, r: Result<(), ErrPacket<'a>>) -> ServerMsg<'a> {
        match self.front() {
            Some(p) if p.command == Command::ChangeUser => {
                self.pop();
                ServerMsg::Done(Reply {
                    command: p.command,
                    kind: p.kind,
                    result: r,
                    rows: 0,
                })
            }
            _ => ServerMsg::LoginResult(r),
        }
    }

    fn answer<'a>(&mut self, pk: &Packet<'a>) -> Result<ServerMsg<'a>, Error> {
        let p = pk.payload;
        let Some(front) = self.front() else {
            return Ok(ServerMsg::Unsolicited);
        };
        let Some(&first) = p.first() else {
            // An empty packet: a zero-length row can not be (rows carry at least one byte).
            return Err(Error::EmptyPacket { what: "an answer" });
        };
        let done = |this: &mut Self, result| {
            let rows = this.front().map_or(0, |f| f.rows);
            this.pop();
            ServerMsg::Done(Reply {
                command: front.command,
                kind: front.kind,
                result,
                rows,
            })
        };
        if first == 0xff && !matches!(self.answer, Answer::Infile) {
            return Ok(done(self, Err(err_packet(p))));
        }
        Ok(match self.answer {
            Answer::First => match front.command {
                Command::Query
                | Command::StmtExecute
                | Command::StmtBulkExecute
                | Command::StmtFetch
                | Command::FieldList => {
                    if matches!(front.command, Command::StmtFetch | Command::FieldList) {
                        // Rows (or column definitions) straight away, then EOF.
                        self.answer = Answer::Rows;
                        return self.answer(pk);
                    }
                    match first {
                        0x00 => self.end_of_result(p, 1, done),
                        0xfb if front.command == Command::Query => {
                            self.answer = Answer::Infile;
                            self.infile = true;
                            ServerMsg::Part
                        }
                        _ => {
                            let (n, at) = lenenc(p, 0).ok_or(Error::Truncated {
                                what: "column count",
                                offset: HEADER_LEN,
                            })?;
                            let eof = u64::from(!self.deprecate_eof());
                            let meta = self.ext_caps & caps::MARIADB_CACHE_METADATA == 0
                                || front.command == Command::Query
                                || p.get(at) != Some(&0);
                            // MariaDB's cached metadata skips the definitions, not their EOF.
                            let left = if meta { n + eof } else { eof };
                            self.answer = if n > 0 && left > 0 {
                                Answer::Columns { left }
                            } else {
                                Answer::Rows
                            };
                            ServerMsg::Part
                        }
                    }
                }
                Command::StmtPrepare => {
                    if first != 0x00 {
                        return Ok(done(self, Ok(())));
                    }
                    let t = Error::Truncated {
                        what: "COM_STMT_PREPARE_OK",
                        offset: HEADER_LEN + 1,
                    };
                    let id = le32(p, 1).ok_or(t)?;
                    let columns = le16(p, 5).ok_or(t)?;
                    let params = le16(p, 7).ok_or(t)?;
                    self.remember(id, front.kind);
                    let eof = u32::from(!self.deprecate_eof());
                    let block = |n: u16| if n > 0 { u32::from(n) + eof } else { 0 };
                    let left = block(params) + block(columns);
                    if left == 0 {
                        done(self, Ok(()))
                    } else {
                        self.answer = Answer::Prepared { left };
                        ServerMsg::Part
                    }
                }
                // OK, EOF (COM_SET_OPTION, COM_DEBUG) or a string (COM_STATISTICS).
                _ => done(self, Ok(())),
            },
            Answer::Columns { left } => {
                self.answer = match left.saturating_sub(1) {
                    0 => Answer::Rows,
                    l => Answer::Columns { left: l },
                };
                ServerMsg::Part
            }
            Answer::Rows => {
                // The terminator: EOF (payload < 9) or, with CLIENT_DEPRECATE_EOF, an OK packet
                // with the 0xfe header (a row starting 0xfe is a string of 2^24+ bytes).
                let end = first == 0xfe
                    && if self.deprecate_eof() {
                        pk.len < MAX_PAYLOAD
                    } else {
                        pk.len < 9
                    };
                if end {
                    let at = if self.deprecate_eof() { 1 } else { 3 };
                    self.end_of_result(p, at, done)
                } else {
                    if let Some(Some(f)) = self.ring.get_mut(usize::from(self.head)) {
                        f.rows = f.rows.saturating_add(1);
                    }
                    ServerMsg::Part
                }
            }
            Answer::Prepared { left } => {
                if left <= 1 {
                    done(self, Ok(()))
                } else {
                    self.answer = Answer::Prepared { left: left - 1 };
                    ServerMsg::Part
                }
            }
            Answer::Infile => match first {
                0xff => {
                    self.infile = false;
                    done(self, Err(err_packet(p)))
                }
                _ => {
                    self.infile = false;
                    self.end_of_result(p, 1, done)
                }
            },
        })
    }

    /// An OK/EOF that ends one result: more follow when `SERVER_MORE_RESULTS_EXISTS` is set.
    /// `at` is where an EOF's status sits (3); for OK packets it is found after two lenencs.
    fn end_of_result<'a>(
        &mut self,
        p: &'a [u8],
        at: usize,
        done: impl FnOnce(&mut Self, Result<(), ErrPacket<'a>>) -> ServerMsg<'a>,
    ) -> ServerMsg<'a> {
        let status = if at == 3 {
            le16(p, 3)
        } else {
            lenenc(p, 1)
                .and_then(|(_, a)| lenenc(p, a))
                .and_then(|(_, a)| le16(p, a))
        };
        if status.unwrap_or(0) & MORE_RESULTS != 0 {
            self.answer = Answer::First;
            ServerMsg::Part
        } else {
            done(self, Ok(()))
        }
    }
}

/// Frames a packet whole (or its head); `Err(need)` when more bytes are needed.
#[allow(clippy::type_complexity)]
fn frame<'a>(
    buf: &'a [u8],
    limits: &Limits,
    head: bool,
) -> Result<Result<(Packet<'a>, usize), Need>, Error> {
    let d = if head {
        decode_packet_head(buf, limits)?
    } else {
        decode_packet(buf, limits)?
    };
    Ok(match d {
        Decoded::Frame { frame, used } => Ok((frame, used)),
        Decoded::NeedMore(n) => Err(n),
    })
}

fn opaque<'a, M>(buf: &'a [u8], f: impl FnOnce(&'a [u8]) -> M) -> Decoded<M> {
    if buf.is_empty() {
        Decoded::NeedMore(Need::AtLeast(1))
    } else {
        Decoded::Frame {
            frame: f(buf),
            used: buf.len(),
        }
    }
}

/// Encodes an ERR packet (`CLIENT_PROTOCOL_41` form) with sequence id `seq`, for local replies.
/// Returns the bytes written (`HEADER_LEN + 9 + message.len()`).
pub fn encode_err(
    out: &mut impl bytes_sink::Sink,
    seq: u8,
    code: u16,
    state: &[u8; 5],
    message: &[u8],
) -> usize {
    let message = &message[..message.len().min(MAX_PAYLOAD - 9)];
    let len = 9 + message.len();
    out.put(&(len as u32).to_le_bytes()[..3]);
    out.put(&[seq, 0xff]);
    out.put(&code.to_le_bytes());
    out.put(b"#");
    out.put(state);
    out.put(message);
    HEADER_LEN + len
}

/// The tiny output trait the encoders write into (a `Vec<u8>` is one).
pub mod bytes_sink {
    /// Appends bytes.
    pub trait Sink {
        /// Appends `b`.
        fn put(&mut self, b: &[u8]);
    }
    impl Sink for Vec<u8> {
        fn put(&mut self, b: &[u8]) {
            self.extend_from_slice(b);
        }
    }
}
