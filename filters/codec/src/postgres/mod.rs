//! PostgreSQL frontend/backend protocol v3 (PostgreSQL docs, "Frontend/Backend Protocol",
//! "Message Formats"): messages and the per-connection state machine that pairs statements
//! with their outcome.
//!
//! Framing: every message is a type byte and a 4-byte big-endian length that counts itself but
//! not the type byte; the client's first message has no type byte (`StartupMessage`,
//! `SSLRequest`, `GSSENCRequest`, `CancelRequest`: length + a 4-byte code). The server answers
//! `SSLRequest`/`GSSENCRequest` with one unframed byte: `S`/`G` means TLS/GSSAPI follows, and
//! both directions become opaque; `N` means the client goes on in the clear.
//!
//! What the [`Connection`] follows: the startup and authentication exchange until
//! `ReadyForQuery` (login ok) or `ErrorResponse` (login failed); the simple query (`Query`,
//! answered by `CommandComplete`/`EmptyQueryResponse`/`ErrorResponse`, then `ReadyForQuery`);
//! the extended query (`Parse`/`Bind`/`Execute`/`Sync`: each `Execute` is a statement whose
//! kind is the one its portal's prepared statement was parsed with); COPY (`CopyData`,
//! `CopyDone`, `CopyFail` pass as parts of the statement); `CommandComplete` tags (kind and
//! row count); `ErrorResponse` SQLSTATE codes. Statements answer in order; a `Query` whose
//! text holds several statements is one statement (its first keyword, its first outcome).
//! After an error in an extended batch the server skips to `Sync`: the `Execute`s it skipped
//! are reported with the `ReadyForQuery` that ends the batch ([`ServerMsg::Ready`]).

use crate::sql::{classify, StatementKind};
use crate::{Decoded, Limits, Need};
use core::fmt;

/// Bytes of a typed message header.
pub const HEADER_LEN: usize = 5;
/// `SSLRequest` code.
pub const SSL_REQUEST: u32 = 80_877_103;
/// `GSSENCRequest` code.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// `CancelRequest` code.
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// Statements in flight a [`Connection`] follows; more make it opaque.
pub const MAX_PENDING: usize = 64;
/// Named prepared statements whose kind a [`Connection`] remembers.
pub const STATEMENT_SLOTS: usize = 16;

/// Why bytes are not the PostgreSQL protocol. Offsets count from the first byte of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The message is larger than [`Limits::max_frame`].
    FrameTooLarge {
        /// Its length (type byte included).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A length field smaller than itself (offset 1, or 0 for a startup packet).
    BadLength {
        /// The field.
        len: u32,
        /// Where it sits.
        offset: usize,
    },
    /// A startup packet with a code that is neither a protocol 3.x version nor a request.
    BadStartupCode {
        /// The code found (offset 4).
        code: u32,
    },
    /// The answer to `SSLRequest`/`GSSENCRequest` is not `S`, `G`, `N` or an `ErrorResponse`.
    BadEncryptionAnswer {
        /// The byte found.
        found: u8,
    },
    /// A field runs past the end of its message.
    Truncated {
        /// The message.
        what: &'static str,
        /// Where the field started.
        offset: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::FrameTooLarge { len, max } => {
                write!(
                    f,
                    "postgres: message of {len} bytes exceeds the limit of {max}"
                )
            }
            Error::BadLength { len, offset } => {
                write!(f, "postgres: length {len} at offset {offset} is too small")
            }
            Error::BadStartupCode { code } => {
                write!(
                    f,
                    "postgres: startup code {code} at offset 4 is not protocol 3"
                )
            }
            Error::BadEncryptionAnswer { found } => {
                write!(
                    f,
                    "postgres: answer {found:#04x} to an encryption request at offset 0"
                )
            }
            Error::Truncated { what, offset } => {
                write!(f, "postgres: {what} truncated at offset {offset}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// A typed message: `body` is the whole body, or in head mode its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The type byte.
    pub tag: u8,
    /// Body bytes held (after the length).
    pub body: &'a [u8],
    /// Declared body length.
    pub len: usize,
}

/// Frames one typed message (the limit is checked from the header, before waiting).
#[inline]
pub fn decode_message<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Message<'a>>, Error> {
    Ok(crate::whole(decode_message_head(buf, limits)?, buf.len()))
}

/// Head mode: the message whose header starts `buf`, with the body bytes held; `used` is the
/// whole message's length.
#[inline]
pub fn decode_message_head<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Decoded<Message<'a>>, Error> {
    let [tag, a, b, c, d, ..] = *buf else {
        return Ok(Decoded::NeedMore(Need::AtLeast(HEADER_LEN)));
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    if len < 4 {
        return Err(Error::BadLength { len, offset: 1 });
    }
    let total = 1 + len as usize;
    if total > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: total,
            max: limits.max_frame,
        });
    }
    Ok(Decoded::Frame {
        frame: Message {
            tag,
            body: &buf[HEADER_LEN..total.min(buf.len())],
            len: total - HEADER_LEN,
        },
        used: total,
    })
}

/// The client's first packets (no type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup<'a> {
    /// `StartupMessage` (protocol 3.minor); `params` holds the NUL-separated pairs.
    Startup {
        /// Minor protocol version.
        minor: u16,
        /// The parameter pairs.
        params: &'a [u8],
    },
    /// `SSLRequest`.
    Ssl,
    /// `GSSENCRequest`.
    GssEnc,
    /// `CancelRequest` (process id, secret key).
    Cancel {
        /// The backend's process id.
        pid: u32,
    },
}

impl<'a> Startup<'a> {
    /// The value of startup parameter `name` (`user`, `database`, ...).
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        let Startup::Startup { params, .. } = *self else {
            return None;
        };
        let mut it = params.split(|&b| b == 0);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if k.is_empty() {
                return None;
            }
            if k == name {
                return Some(v);
            }
        }
        None
    }
}

/// Decodes a startup packet.
pub fn decode_startup<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Startup<'a>>, Error> {
    let [a, b, c, d, ..] = *buf else {
        return Ok(Decoded::NeedMore(Need::AtLeast(8)));
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    if len < 8 {
        return Err(Error::BadLength { len, offset: 0 });
    }
    let total = len as usize;
    // The server refuses startup packets over 10000 bytes (MAX_STARTUP_PACKET_LENGTH).
    let max = limits.max_frame.min(10_000);
    if total > max {
        return Err(Error::FrameTooLarge { len: total, max });
    }
    if buf.len() < total {
        return Ok(Decoded::NeedMore(Need::Exact(total)));
    }
    let code = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let frame = match code {
        SSL_REQUEST => Startup::Ssl,
        GSSENC_REQUEST => Startup::GssEnc,
        CANCEL_REQUEST => Startup::Cancel {
            pid: be32(buf, 8).ok_or(Error::Truncated {
                what: "CancelRequest",
                offset: 8,
            })?,
        },
        c if c >> 16 == 3 => Startup::Startup {
            minor: (c & 0xffff) as u16,
            params: &buf[8..total],
        },
        code => return Err(Error::BadStartupCode { code }),
    };
    Ok(Decoded::Frame { frame, used: total })
}

fn be32(p: &[u8], at: usize) -> Option<u32> {
    let b = p.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A NUL-terminated string at `at`: (the string, the offset after its NUL).
fn cstr(p: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = p.get(at..)?;
    let n = rest.iter().position(|&b| b == 0)?;
    Some((&rest[..n], at + n + 1))
}

/// A client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMsg<'a> {
    /// A startup packet.
    Startup(Startup<'a>),
    /// `Query` (simple query): a statement.
    Query {
        /// The statement text (cut in head mode).
        sql: &'a [u8],
        /// Its kind.
        kind: StatementKind,
    },
    /// `Parse`.
    Parse {
        /// The statement's kind.
        kind: StatementKind,
    },
    /// `Execute`: a statement.
    Execute {
        /// The kind of the statement its portal was bound to.
        kind: StatementKind,
    },
    /// `Sync`.
    Sync,
    /// `Terminate`.
    Terminate,
    /// Any other message (`Bind`, `Describe`, `Close`, `Flush`, COPY data, passwords, ...).
    Other(u8),
    /// Bytes after TLS/GSSAPI started.
    Opaque(&'a [u8]),
}

/// The end of one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome<'a> {
    /// The kind the client's statement was classified as.
    pub kind: StatementKind,
    /// `Err(sqlstate)` for an `ErrorResponse` (5 bytes, or empty when missing).
    pub result: Result<(), &'a [u8]>,
    /// Rows the `CommandComplete` tag reports (`SELECT 5`, `INSERT 0 1`, ...).
    pub rows: u64,
}

/// A server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMsg<'a> {
    /// The one-byte answer to an encryption request (`S`, `G`, `N`).
    EncryptionAnswer(u8),
    /// The login ended: `ReadyForQuery` after the startup, or an `ErrorResponse` (its SQLSTATE).
    LoginResult(Result<(), &'a [u8]>),
    /// A statement ended.
    Done(Outcome<'a>),
    /// `ReadyForQuery`; `skipped`: `Execute`s of the batch that the server skipped after an
    /// error, and that error's SQLSTATE.
    Ready {
        /// Statements skipped.
        skipped: u32,
        /// The SQLSTATE of the error that made them skipped.
        code: [u8; 5],
    },
    /// Any other message (`R`, `S`, `K`, `T`, `D`, `1`, `2`, notices, COPY, ...).
    Other(u8),
    /// Bytes after TLS/GSSAPI started.
    Opaque(&'a [u8]),
}

/// The SQLSTATE (`C` field) of an `ErrorResponse` body.
pub fn error_code(body: &[u8]) -> &[u8] {
    let mut at = 0;
    while let Some(&f) = body.get(at) {
        if f == 0 {
            break;
        }
        let Some((v, next)) = cstr(body, at + 1) else {
            break;
        };
        if f == b'C' {
            return v;
        }
        at = next;
    }
    &[]
}

/// The row count of a `CommandComplete` tag (its last number; 0 when it has none).
pub fn tag_rows(tag: &[u8]) -> u64 {
    let tag = tag.strip_suffix(&[0]).unwrap_or(tag);
    let last = tag.rsplit(|&b| b == b' ').next().unwrap_or(&[]);
    let mut v: u64 = 0;
    for &b in last {
        if !b.is_ascii_digit() {
            return 0;
        }
        v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    v
}

/// The phase of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Untyped startup packets.
    #[default]
    Startup,
    /// The server's one-byte answer to an encryption request.
    EncryptionAnswer,
    /// Authentication and start-up until the first `ReadyForQuery`.
    Auth,
    /// Queries.
    Session,
    /// Opaque bytes (TLS/GSSAPI, or too much in flight).
    Opaque,
}

/// What the server still owes, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// A `Query`: answered by its first outcome, ended by `ReadyForQuery`.
    Query { kind: u8, answered: bool },
    /// An `Execute`.
    Execute { kind: u8 },
    /// A `Sync`: ended by `ReadyForQuery`.
    Sync,
}

/// The per-connection state machine.
#[derive(Debug, Clone)]
pub struct Connection {
    down: Phase,
    up: Phase,
    ring: [Pending; MAX_PENDING],
    head: u8,
    len: u8,
    /// The unnamed statement's and portal's kinds.
    unnamed_stmt: u8,
    unnamed_portal: u8,
    /// Named statements (hash of the name, kind + 1) and named portals, round robin.
    stmts: [(u32, u8); STATEMENT_SLOTS],
    stmt_next: u8,
    portals: [(u32, u8); 4],
    portal_next: u8,
    last_error: [u8; 5],
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            down: Phase::Startup,
            up: Phase::Startup,
            ring: [Pending::Sync; MAX_PENDING],
            head: 0,
            len: 0,
            unnamed_stmt: 0,
            unnamed_portal: 0,
            stmts: [(0, 0); STATEMENT_SLOTS],
            stmt_next: 0,
            portals: [(0, 0); 4],
            portal_next: 0,
            last_error: [0; 5],
        }
    }
}

/// A cheap hash of a statement or portal name (FNV-1a).
fn name_hash(n: &[u8]) -> u32 {
    n.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn kind_of(k: u8) -> StatementKind {
    StatementKind::from_index(k)
}

fn code(k: StatementKind) -> u8 {
    k.index() as u8
}

impl Connection {
    /// A connection before its startup packet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection already past the start-up (taken over mid-stream).
    pub fn in_session() -> Self {
        Connection {
            down: Phase::Session,
            up: Phase::Session,
            ..Self::default()
        }
    }

    /// The client and server phases.
    pub fn phases(&self) -> (Phase, Phase) {
        (self.down, self.up)
    }

    /// Statements (and syncs) the server still owes.
    pub fn pending(&self) -> usize {
        usize::from(self.len)
    }

    fn push(&mut self, p: Pending) {
        if usize::from(self.len) == MAX_PENDING {
            self.down = Phase::Opaque;
            self.up = Phase::Opaque;
            return;
        }
        let at = (usize::from(self.head) + usize::from(self.len)) % MAX_PENDING;
        self.ring[at] = p;
        self.len += 1;
    }

    fn front(&self) -> Option<Pending> {
        (self.len > 0).then(|| self.ring[usize::from(self.head)])
    }

    fn pop(&mut self) {
        if self.len > 0 {
            self.head = ((usize::from(self.head) + 1) % MAX_PENDING) as u8;
            self.len -= 1;
        }
    }

    fn stmt_kind(&self, name: &[u8]) -> u8 {
        if name.is_empty() {
            return self.unnamed_stmt;
        }
        let h = name_hash(name);
        self.stmts
            .iter()
            .find(|(x, k)| *x == h && *k != 0)
            .map_or(code(StatementKind::Other), |(_, k)| k - 1)
    }

    fn portal_kind(&self, name: &[u8]) -> u8 {
        if name.is_empty() {
            return self.unnamed_portal;
        }
        let h = name_hash(name);
        self.portals
            .iter()
            .find(|(x, k)| *x == h && *k != 0)
            .map_or(code(StatementKind::Other), |(_, k)| k - 1)
    }

    /// Decodes one client message and advances the state.
    pub fn decode_request<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<ClientMsg<'a>>, Error> {
        self.request(buf, limits, false)
    }

    /// Head mode: the client message whose first bytes are `buf`.
    pub fn decode_request_head<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<ClientMsg<'a>>, Error> {
        self.request(buf, limits, true)
    }

    /// Decodes one server message and advances the state.
    pub fn decode_response<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<ServerMsg<'a>>, Error> {
        self.response(buf, limits, false)
    }

    /// Head mode: the server message whose first bytes are `buf`.
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
        match self.down {
            Phase::Opaque => return Ok(opaque(buf, ClientMsg::Opaque)),
            Phase::Startup | Phase::EncryptionAnswer => {
                let (s, used) = match decode_startup(buf, limits)? {
                    Decoded::Frame { frame, used } => (frame, used),
                    Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
                };
                match s {
                    Startup::Ssl | Startup::GssEnc => {
                        self.down = Phase::EncryptionAnswer;
                        self.up = Phase::EncryptionAnswer;
                    }
                    Startup::Startup { .. } => {
                        self.down = Phase::Auth;
                        self.up = Phase::Auth;
                    }
                    // The server closes after a cancel request.
                    Startup::Cancel { .. } => self.down = Phase::Opaque,
                }
                return Ok(Decoded::Frame {
                    frame: ClientMsg::Startup(s),
                    used,
                });
            }
            Phase::Auth | Phase::Session => {}
        }
        let d = if head {
            decode_message_head(buf, limits)?
        } else {
            decode_message(buf, limits)?
        };
        let (m, used) = match d {
            Decoded::Frame { frame, used } => (frame, used),
            Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
        };
        let b = m.body;
        let t = |what| Error::Truncated {
            what,
            offset: HEADER_LEN,
        };
        let msg = match m.tag {
            b'Q' => {
                let sql = b.strip_suffix(&[0]).unwrap_or(b);
                let kind = classify(sql);
                self.push(Pending::Query {
                    kind: code(kind),
                    answered: false,
                });
                ClientMsg::Query { sql, kind }
            }
            b'P' => {
                let (name, at) = cstr(b, 0).ok_or(t("Parse"))?;
                let sql = b.get(at..).unwrap_or(&[]);
                let kind = classify(sql);
                if name.is_empty() {
                    self.unnamed_stmt = code(kind);
                } else {
                    let i = usize::from(self.stmt_next) % STATEMENT_SLOTS;
                    self.stmts[i] = (name_hash(name), code(kind) + 1);
                    self.stmt_next = ((i + 1) % STATEMENT_SLOTS) as u8;
                }
                ClientMsg::Parse { kind }
            }
            b'B' => {
                let (portal, at) = cstr(b, 0).ok_or(t("Bind"))?;
                let (stmt, _) = cstr(b, at).ok_or(t("Bind"))?;
                let k = self.stmt_kind(stmt);
                if portal.is_empty() {
                    self.unnamed_portal = k;
                } else {
                    let i = usize::from(self.portal_next) % self.portals.len();
                    self.portals[i] = (name_hash(portal), k + 1);
                    self.portal_next = ((i + 1) % self.portals.len()) as u8;
                }
                ClientMsg::Other(b'B')
            }
            b'E' => {
                let (portal, _) = cstr(b, 0).ok_or(t("Execute"))?;
                let kind = self.portal_kind(portal);
                self.push(Pending::Execute { kind });
                ClientMsg::Execute {
                    kind: kind_of(kind),
                }
            }
            b'S' => {
                self.push(Pending::Sync);
                ClientMsg::Sync
            }
            b'X' => ClientMsg::Terminate,
            other => ClientMsg::Other(other),
        };
        Ok(Decoded::Frame { frame: msg, used })
    }

    fn response<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
        head: bool,
    ) -> Result<Decoded<ServerMsg<'a>>, Error> {
        match self.up {
            Phase::Opaque => return Ok(opaque(buf, ServerMsg::Opaque)),
            Phase::EncryptionAnswer => match buf.first() {
                None => return Ok(Decoded::NeedMore(Need::AtLeast(1))),
                Some(&a @ (b'S' | b'G')) => {
                    self.up = Phase::Opaque;
                    self.down = Phase::Opaque;
                    return Ok(Decoded::Frame {
                        frame: ServerMsg::EncryptionAnswer(a),
                        used: 1,
                    });
                }
                Some(b'N') => {
                    self.up = Phase::Startup;
                    self.down = Phase::Startup;
                    return Ok(Decoded::Frame {
                        frame: ServerMsg::EncryptionAnswer(b'N'),
                        used: 1,
                    });
                }
                // An old server answers with an ErrorResponse: a login failure.
                Some(b'E') => self.up = Phase::Auth,
                Some(&found) => return Err(Error::BadEncryptionAnswer { found }),
            },
            _ => {}
        }
        let d = if head {
            decode_message_head(buf, limits)?
        } else {
            decode_message(buf, limits)?
        };
        let (m, used) = match d {
            Decoded::Frame { frame, used } => (frame, used),
            Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
        };
        let msg = if self.up != Phase::Session {
            match m.tag {
                b'Z' => {
                    self.up = Phase::Session;
                    self.down = Phase::Session;
                    ServerMsg::LoginResult(Ok(()))
                }
                b'E' => ServerMsg::LoginResult(Err(error_code(m.body))),
                t => ServerMsg::Other(t),
            }
        } else {
            match m.tag {
                b'C' | b'I' | b's' => {
                    let rows = if m.tag == b'C' { tag_rows(m.body) } else { 0 };
                    self.outcome(Ok(()), rows)
                }
                b'E' => {
                    let c = error_code(m.body);
                    if c.len() == 5 {
                        self.last_error.copy_from_slice(c);
                    }
                    self.outcome(Err(c), 0)
                }
                b'Z' => {
                    let mut skipped = 0u32;
                    while let Some(p) = self.front() {
                        self.pop();
                        match p {
                            Pending::Execute { .. } => skipped += 1,
                            Pending::Query { .. } | Pending::Sync => break,
                        }
                    }
                    ServerMsg::Ready {
                        skipped,
                        code: self.last_error,
                    }
                }
                t => ServerMsg::Other(t),
            }
        };
        Ok(Decoded::Frame { frame: msg, used })
    }

    /// The last SQLSTATE an `ErrorResponse` carried (for statements skipped after it).
    pub fn last_error(&self) -> &[u8; 5] {
        &self.last_error
    }

    /// An outcome for the statement at the front, if it is still owed one.
    fn outcome<'a>(&mut self, result: Result<(), &'a [u8]>, rows: u64) -> ServerMsg<'a> {
        let tag = if result.is_ok() { b'C' } else { b'E' };
        match self.front() {
            Some(Pending::Query {
                kind,
                answered: false,
            }) => {
                self.ring[usize::from(self.head)] = Pending::Query {
                    kind,
                    answered: true,
                };
                ServerMsg::Done(Outcome {
                    kind: kind_of(kind),
                    result,
                    rows,
                })
            }
            Some(Pending::Execute { kind }) => {
                self.pop();
                ServerMsg::Done(Outcome {
                    kind: kind_of(kind),
                    result,
                    rows,
                })
            }
            _ => ServerMsg::Other(tag),
        }
    }
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

/// Encodes an `ErrorResponse` (severity `ERROR`, SQLSTATE `code`, `message`) into `out`, for
/// local replies; returns its length.
pub fn encode_error(out: &mut Vec<u8>, code: &[u8; 5], message: &[u8]) -> usize {
    let message = &message[..message.len().min(4096)];
    // S, V, C and M fields, each NUL-terminated, and the final NUL.
    let body = 7 + 7 + 7 + (1 + message.len() + 1) + 1;
    out.push(b'E');
    out.extend_from_slice(&((body + 4) as u32).to_be_bytes());
    out.extend_from_slice(b"SERROR\0VERROR\0C");
    out.extend_from_slice(code);
    out.extend_from_slice(b"\0M");
    out.extend_from_slice(message);
    out.extend_from_slice(&[0, 0]);
    HEADER_LEN + body
}
