//! Redis: RESP2 and RESP3 (<https://redis.io/docs/latest/develop/reference/protocol-spec/>),
//! inline commands and pipelines.
//!
//! Requests ([`decode_request`]) follow what `redis-server` accepts (`processMultibulkBuffer` and
//! `processInlineBuffer` in `networking.c`): a buffer starting with `*` is a multibulk array of
//! bulk strings, anything else is an inline command ended by `\n`. The view gives the command
//! (a closed [`Command`] set, case-insensitive), its raw name, the first key (from the server's
//! own key specs, see `commands.rs`) and the argument count, all borrowed.
//!
//! Replies ([`decode_response`]) are any RESP2/RESP3 value: simple strings, errors (with
//! `MOVED`/`ASK` redirections parsed), integers, bulk and streamed strings, nulls, booleans,
//! doubles, big numbers, verbatim strings, arrays, maps, sets, pushes, attributes and streamed
//! aggregates (`*?` ... `.`). Aggregates are walked without recursion and without allocation;
//! their element bytes are handed back untouched.
//!
//! RESP has no frame length, so "need more" is a lower bound: every value still owed takes at
//! least 3 bytes (`_\r\n`), every request argument at least 6 (`$0\r\n\r\n`). A bound above
//! `max_frame` is an error at once.

use crate::{Decoded, Limits, Need};
use core::fmt;

pub mod catalog;
mod commands;
pub use commands::Command;
mod skip;
use commands::TABLE;
pub use skip::{reply_head, request_head, Skipper};

/// Where a command's first key sits (from the `COMMAND` key specs of Redis 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySpec {
    /// No key.
    None,
    /// `argv[i]`.
    At(u8),
    /// `argv[i]` is the number of keys; the first key follows it (EVAL, FCALL, ZUNION, ...).
    NumKeys(u8),
    /// The first key follows the `STREAMS` keyword, searched from `argv[i]` (XREAD, XREADGROUP).
    Streams(u8),
}

/// Longest inline request line Redis accepts without a newline (`PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;
/// Hard cap on aggregate nesting, whatever [`Limits::max_depth`] says (the walk keeps one
/// counter per level on the stack).
pub const MAX_STACK_DEPTH: usize = 64;
/// Smallest encoding of one RESP value (`_\r\n`, `+\r\n`).
const MIN_VALUE: usize = 3;
/// Smallest encoding of one request argument (`$0\r\n\r\n`).
const MIN_ARG: usize = 6;

// ---------------------------------------------------------------------------------------------
// Commands

const HSIZE: usize = 1024;

const fn fold_hash(name: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5 ^ (name.len() as u32);
    let mut i = 0;
    while i < name.len() {
        h = (h ^ name[i].to_ascii_lowercase() as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    ((h ^ (h >> 13)) as usize) & (HSIZE - 1)
}

/// Open-addressing index into [`TABLE`], built at compile time.
static INDEX: [u16; HSIZE] = {
    let mut t = [u16::MAX; HSIZE];
    let mut i = 0;
    while i < TABLE.len() {
        let mut h = fold_hash(TABLE[i].0.as_bytes());
        while t[h] != u16::MAX {
            h = (h + 1) & (HSIZE - 1);
        }
        t[h] = i as u16;
        i += 1;
    }
    t
};

/// Longest command name in the table (`georadiusbymember_ro`).
const MAX_NAME: usize = 20;

impl Command {
    /// Looks a command name up, ignoring ASCII case. Unknown names give [`Command::Unknown`].
    #[inline]
    pub fn from_name(name: &[u8]) -> Command {
        if name.is_empty() || name.len() > MAX_NAME {
            return Command::Unknown;
        }
        let mut h = fold_hash(name);
        loop {
            let i = INDEX[h];
            if i == u16::MAX {
                return Command::Unknown;
            }
            let e = &TABLE[i as usize];
            if e.0.as_bytes().eq_ignore_ascii_case(name) {
                return e.1;
            }
            h = (h + 1) & (HSIZE - 1);
        }
    }

    /// The lowercase name, as Redis's own `INFO commandstats` spells it; `"unknown"` for
    /// [`Command::Unknown`]. Safe as a metric label.
    #[inline]
    pub fn as_str(&self) -> &'static str {
        match TABLE.get(*self as usize) {
            Some(e) => e.0,
            None => "unknown",
        }
    }

    #[inline]
    fn key_spec(self) -> KeySpec {
        match TABLE.get(self as usize) {
            Some(e) => e.2,
            None => KeySpec::None,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Broken RESP structure. Each variant names the rule and the byte offset (from the start of
/// the frame) where it broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The type byte is not one RESP2/RESP3 defines.
    UnknownType {
        /// Offset of the type byte.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// A length, count or integer is not a decimal number that fits in 64 bits.
    BadInteger {
        /// Offset of the offending byte.
        offset: usize,
    },
    /// A negative length or count (only `-1`, RESP2's null, is allowed, and only for `$`/`*`
    /// in replies).
    BadLength {
        /// Offset of the type byte.
        offset: usize,
    },
    /// A line does not end with `\r\n`, or a simple line holds a bare `\r` or `\n`.
    BadLineEnd {
        /// Offset where `\r\n` was expected.
        offset: usize,
    },
    /// A boolean is neither `#t` nor `#f`, or a null (`_`) carries data.
    BadScalar {
        /// Offset of the offending byte.
        offset: usize,
    },
    /// A verbatim string is shorter than 4 bytes or lacks the `xxx:` format prefix.
    BadVerbatim {
        /// Offset of the type byte.
        offset: usize,
    },
    /// A chunk of a streamed string (`$?`) does not start with `;`.
    BadChunk {
        /// Offset of the chunk.
        offset: usize,
    },
    /// An end marker `.` outside a streamed aggregate, or a chunk `;` outside a streamed string.
    Unexpected {
        /// Offset of the marker.
        offset: usize,
    },
    /// A request argument is not a bulk string (`redis-server`: "expected '$'").
    ExpectedBulk {
        /// Offset of the argument.
        offset: usize,
        /// The byte found instead of `$`.
        byte: u8,
    },
    /// An inline request has no newline within [`INLINE_MAX`] bytes.
    InlineTooLong {
        /// Offset of the request.
        offset: usize,
    },
    /// An inline request has an unterminated quote, or a closing quote glued to more text.
    UnbalancedQuotes {
        /// Offset of the quote problem.
        offset: usize,
    },
    /// The frame needs at least `need` bytes, more than `max`.
    FrameTooLarge {
        /// Offset of the length or count that made it too large.
        offset: usize,
        /// Lower bound of the frame size.
        need: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Aggregates nest deeper than allowed.
    TooDeep {
        /// Offset of the aggregate that went too deep.
        offset: usize,
        /// The depth allowed.
        max: usize,
    },
}

impl Error {
    /// Byte offset (from the start of the frame) where the rule broke.
    pub fn offset(&self) -> usize {
        match *self {
            Error::UnknownType { offset, .. }
            | Error::BadInteger { offset }
            | Error::BadLength { offset }
            | Error::BadLineEnd { offset }
            | Error::BadScalar { offset }
            | Error::BadVerbatim { offset }
            | Error::BadChunk { offset }
            | Error::Unexpected { offset }
            | Error::ExpectedBulk { offset, .. }
            | Error::InlineTooLong { offset }
            | Error::UnbalancedQuotes { offset }
            | Error::FrameTooLarge { offset, .. }
            | Error::TooDeep { offset, .. } => offset,
        }
    }

    /// The rule that broke, in a few words.
    pub fn rule(&self) -> &'static str {
        match self {
            Error::UnknownType { .. } => "unknown RESP type byte",
            Error::BadInteger { .. } => "not a 64-bit decimal integer",
            Error::BadLength { .. } => "negative length or count",
            Error::BadLineEnd { .. } => "line does not end with CRLF",
            Error::BadScalar { .. } => "bad boolean or null",
            Error::BadVerbatim { .. } => "verbatim string without format prefix",
            Error::BadChunk { .. } => "streamed string chunk without ';'",
            Error::Unexpected { .. } => "end or chunk marker outside a streamed value",
            Error::ExpectedBulk { .. } => "request argument is not a bulk string",
            Error::InlineTooLong { .. } => "inline request longer than 64 KiB",
            Error::UnbalancedQuotes { .. } => "unbalanced quotes in inline request",
            Error::FrameTooLarge { .. } => "frame larger than max_frame",
            Error::TooDeep { .. } => "aggregates nest deeper than max_depth",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis: {} at byte {}", self.rule(), self.offset())?;
        match *self {
            Error::UnknownType { byte, .. } | Error::ExpectedBulk { byte, .. } => {
                write!(f, " (found 0x{byte:02x})")
            }
            Error::FrameTooLarge { need, max, .. } => write!(f, " (at least {need} > {max})"),
            Error::TooDeep { max, .. } => write!(f, " (max {max})"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

/// Why a parse step stopped: not enough bytes (total needed), or broken structure.
#[derive(Debug)]
enum Stop {
    Need(usize),
    Bad(Error),
}

impl From<Error> for Stop {
    #[inline]
    fn from(e: Error) -> Self {
        Stop::Bad(e)
    }
}

type R<T> = Result<T, Stop>;

#[inline]
fn finish<F>(r: R<(F, usize)>, len: usize) -> Result<Decoded<F>, Error> {
    match r {
        Ok((frame, used)) => Ok(Decoded::Frame { frame, used }),
        Err(Stop::Need(n)) => {
            debug_assert!(n > len);
            Ok(Decoded::NeedMore(Need::AtLeast(n.max(len + 1))))
        }
        Err(Stop::Bad(e)) => Err(e),
    }
}

#[inline]
fn too_large(offset: usize, need: usize, limits: &Limits) -> Result<(), Stop> {
    if need > limits.max_frame {
        Err(Stop::Bad(Error::FrameTooLarge {
            offset,
            need,
            max: limits.max_frame,
        }))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Lines and numbers

/// Parses a decimal line starting at `p` (just after the type byte) up to and including its
/// `\r\n`: an optional sign (`+` only when `plus`), 1..=19 digits. Returns the value and the
/// offset after `\r\n`. `tail` is the lower bound of bytes still owed after this line.
#[inline(always)]
fn int_line(buf: &[u8], start: usize, plus: bool, tail: usize) -> R<(i64, usize)> {
    let mut p = start;
    let neg = match buf.get(p) {
        None => return Err(Stop::Need(p + 3 + tail)),
        Some(b'-') => {
            p += 1;
            true
        }
        Some(b'+') if plus => {
            p += 1;
            false
        }
        Some(_) => false,
    };
    let digits = p;
    let mut v: u64 = 0;
    loop {
        match buf.get(p) {
            None => {
                let min = if p == digits { p + 3 } else { p + 2 };
                return Err(Stop::Need(min + tail));
            }
            Some(&b) if b.is_ascii_digit() => {
                if p - digits == 19 {
                    return Err(Error::BadInteger { offset: p }.into());
                }
                v = v * 10 + u64::from(b - b'0');
                p += 1;
            }
            Some(b'\r') if p > digits => break,
            Some(_) => return Err(Error::BadInteger { offset: p }.into()),
        }
    }
    match buf.get(p + 1) {
        None => return Err(Stop::Need(p + 2 + tail)),
        Some(b'\n') => {}
        Some(_) => return Err(Error::BadLineEnd { offset: p }.into()),
    }
    let val = if neg {
        if v > 1 << 63 {
            return Err(Error::BadInteger { offset: start }.into());
        }
        (v as i64).wrapping_neg()
    } else {
        if v > i64::MAX as u64 {
            return Err(Error::BadInteger { offset: start }.into());
        }
        v as i64
    };
    Ok((val, p + 2))
}

/// Finds the `\r\n` ending a simple line that starts at `start`; the line may hold neither
/// `\r` nor `\n`. Returns (end of text, offset after `\r\n`).
#[inline]
fn simple_line(buf: &[u8], start: usize, tail: usize) -> R<(usize, usize)> {
    let rest = buf.get(start..).unwrap_or(&[]);
    match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        None => Err(Stop::Need(buf.len().max(start) + 2 + tail)),
        Some(i) => {
            let cr = start + i;
            if buf[cr] != b'\r' {
                return Err(Error::BadLineEnd { offset: cr }.into());
            }
            match buf.get(cr + 1) {
                None => Err(Stop::Need(cr + 2 + tail)),
                Some(b'\n') => Ok((cr, cr + 2)),
                Some(_) => Err(Error::BadLineEnd { offset: cr }.into()),
            }
        }
    }
}

/// `len` bytes of data at `q` followed by `\r\n`; `hdr` is the offset of the type byte.
#[inline(always)]
fn blob(buf: &[u8], hdr: usize, q: usize, len: i64, tail: usize, limits: &Limits) -> R<usize> {
    if len < 0 {
        return Err(Error::BadLength { offset: hdr }.into());
    }
    // A length beyond usize (32-bit targets such as wasm32) must not truncate: saturate, then
    // refuse as too large.
    let end = q.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    let total = end.saturating_add(2).saturating_add(tail);
    too_large(hdr, total, limits)?;
    if end + 2 > buf.len() {
        return Err(Stop::Need(total));
    }
    if buf[end] != b'\r' || buf[end + 1] != b'\n' {
        return Err(Error::BadLineEnd { offset: end }.into());
    }
    Ok(end + 2)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// How a request was written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// `*N\r\n` followed by N bulk strings (what every client library sends).
    Multibulk,
    /// A text line split on spaces, with `"..."`/`'...'` quoting (`redis-cli` over telnet,
    /// health checks, replication pings).
    Inline,
}

impl Form {
    /// `"multibulk"` or `"inline"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Form::Multibulk => "multibulk",
            Form::Inline => "inline",
        }
    }
}

/// One client request, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The command ([`Command::Unknown`] for names not in the table, and for empty requests).
    pub command: Command,
    /// The name as sent (any case); empty for an empty request.
    pub name: &'a [u8],
    /// The first key, as the server's key specs place it; `None` for keyless commands or when
    /// the arguments stop before it. Inline quoted keys come without their quotes, escapes
    /// left as sent.
    pub key: Option<&'a [u8]>,
    /// Number of arguments including the name. 0 for an empty request (`*0`, `*-1`, a blank
    /// inline line), which the server ignores without replying.
    pub argc: usize,
    /// Multibulk or inline.
    pub form: Form,
    /// Multibulk: the argument bytes after `*N\r\n`. Inline: the line without `\r\n`.
    body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The arguments, name first, borrowed. Inline quoted arguments come without their outer
    /// quotes, escapes left as sent.
    pub fn args(&self) -> Args<'a> {
        Args {
            body: self.body,
            pos: 0,
            left: self.argc,
            form: self.form,
        }
    }

    /// `true` for a request the server ignores without a reply (no arguments).
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }
}

/// Iterator over a request's arguments (see [`Request::args`]).
#[derive(Debug, Clone)]
pub struct Args<'a> {
    body: &'a [u8],
    pos: usize,
    left: usize,
    form: Form,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match self.form {
            Form::Multibulk => {
                // Already validated by decode: `$<len>\r\n<data>\r\n`.
                let (len, q) = int_line(self.body, self.pos + 1, false, 0).ok()?;
                let end = q + len as usize;
                self.pos = end + 2;
                self.body.get(q..end)
            }
            Form::Inline => match next_token(self.body, self.pos) {
                Ok(Some((tok, next))) => {
                    self.pos = next;
                    Some(tok)
                }
                _ => None,
            },
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Tracks which argument is the first key while arguments go by.
#[derive(Clone, Copy)]
struct KeyFinder {
    want: usize,
    spec: KeySpec,
}

impl KeyFinder {
    const DONE: usize = usize::MAX;

    #[inline(always)]
    fn new(cmd: Command) -> Self {
        let spec = cmd.key_spec();
        let want = match spec {
            KeySpec::None => Self::DONE,
            KeySpec::At(i) | KeySpec::NumKeys(i) | KeySpec::Streams(i) => i as usize,
        };
        KeyFinder { want, spec }
    }

    /// Argument `i` went by; returns it if it is the first key.
    #[inline(always)]
    fn see<'a>(&mut self, i: usize, arg: &'a [u8]) -> Option<&'a [u8]> {
        if i != self.want {
            return None;
        }
        self.see_slow(i, arg)
    }

    #[inline]
    fn see_slow<'a>(&mut self, i: usize, arg: &'a [u8]) -> Option<&'a [u8]> {
        match self.spec {
            KeySpec::At(_) => {
                self.want = Self::DONE;
                Some(arg)
            }
            KeySpec::NumKeys(_) => {
                match parse_u64(arg) {
                    Some(n) if n > 0 => {
                        self.spec = KeySpec::At(0);
                        self.want = i + 1;
                    }
                    _ => self.want = Self::DONE,
                }
                None
            }
            KeySpec::Streams(_) => {
                if arg.eq_ignore_ascii_case(b"STREAMS") {
                    self.spec = KeySpec::At(0);
                }
                self.want = i + 1;
                None
            }
            KeySpec::None => None,
        }
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

/// Decodes one client request (multibulk or inline) from the start of `buf`.
#[inline]
pub fn decode_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    let r = match buf.first() {
        None => Err(Stop::Need(1)),
        Some(b'*') => multibulk(buf, limits),
        Some(_) => inline(buf, limits),
    };
    finish(r, buf.len())
}

#[inline(always)]
fn multibulk<'a>(buf: &'a [u8], limits: &Limits) -> R<(Request<'a>, usize)> {
    let (n, mut p) = int_line(buf, 1, false, 0)?;
    if n <= 0 {
        // redis-server skips `*0`/`*-1` and waits for the next request.
        return Ok((
            Request {
                command: Command::Unknown,
                name: &[],
                key: None,
                argc: 0,
                form: Form::Multibulk,
                body: &[],
            },
            p,
        ));
    }
    if n > i64::from(i32::MAX) {
        return Err(Error::BadInteger { offset: 1 }.into());
    }
    let argc = n as usize;
    let start = p;
    too_large(0, p.saturating_add(argc.saturating_mul(MIN_ARG)), limits)?;
    let mut command = Command::Unknown;
    let mut name: &[u8] = &[];
    let mut key = None;
    let mut finder = KeyFinder {
        want: KeyFinder::DONE,
        spec: KeySpec::None,
    };
    for i in 0..argc {
        let tail = (argc - i - 1) * MIN_ARG;
        match buf.get(p) {
            Some(b'$') => {}
            Some(&byte) => return Err(Error::ExpectedBulk { offset: p, byte }.into()),
            None => return Err(Stop::Need(p + MIN_ARG + tail)),
        }
        let (len, q) = int_line(buf, p + 1, false, 2 + tail)?;
        let next = blob(buf, p, q, len, tail, limits)?;
        let arg = &buf[q..next - 2];
        if i == 0 {
            name = arg;
            command = Command::from_name(arg);
            finder = KeyFinder::new(command);
        } else if let Some(k) = finder.see(i, arg) {
            key = Some(k);
        }
        p = next;
    }
    Ok((
        Request {
            command,
            name,
            key,
            argc,
            form: Form::Multibulk,
            body: &buf[start..p],
        },
        p,
    ))
}

/// `isspace` of the C locale, which `sdssplitargs` uses between arguments.
#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The next inline argument of `line` from `pos`, after `sdssplitargs` (sds.c): whitespace
/// separates, `"..."` (with `\` escapes) and `'...'` (with `\'`) quote, a closing quote must be
/// followed by whitespace or the end, and a NUL ends the line. Returns the raw argument
/// (outer quotes removed when the whole argument is one quoted string) and the next position.
fn next_token(line: &[u8], mut pos: usize) -> Result<Option<(&[u8], usize)>, Error> {
    while pos < line.len() && is_space(line[pos]) {
        pos += 1;
    }
    if pos >= line.len() || line[pos] == 0 {
        return Ok(None);
    }
    let start = pos;
    let mut quoted_parts = 0usize;
    let mut plain = false;
    while let Some(&b) = line.get(pos) {
        match b {
            b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
            b'"' | b'\'' => {
                quoted_parts += 1;
                let q = b;
                pos += 1;
                loop {
                    match line.get(pos) {
                        None | Some(0) => return Err(Error::UnbalancedQuotes { offset: start }),
                        Some(b'\\') if q == b'"' && line.get(pos + 1).is_some_and(|&c| c != 0) => {
                            pos += 2
                        }
                        Some(b'\\') if q == b'\'' && line.get(pos + 1) == Some(&b'\'') => pos += 2,
                        Some(&c) if c == q => {
                            pos += 1;
                            match line.get(pos) {
                                None | Some(0) => {}
                                Some(&c) if is_space(c) => {}
                                Some(_) => return Err(Error::UnbalancedQuotes { offset: pos }),
                            }
                            break;
                        }
                        Some(_) => pos += 1,
                    }
                }
                // A closing quote ends the argument.
                break;
            }
            _ => {
                plain = true;
                pos += 1;
            }
        }
    }
    let tok = if quoted_parts == 1 && !plain {
        &line[start + 1..pos - 1]
    } else {
        &line[start..pos]
    };
    Ok(Some((tok, pos)))
}

#[cold]
fn inline<'a>(buf: &'a [u8], limits: &Limits) -> R<(Request<'a>, usize)> {
    let scan = &buf[..buf.len().min(INLINE_MAX + 1)];
    let Some(nl) = scan.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX {
            return Err(Error::InlineTooLong { offset: 0 }.into());
        }
        too_large(0, buf.len() + 1, limits)?;
        return Err(Stop::Need(buf.len() + 1));
    };
    too_large(0, nl + 1, limits)?;
    let mut line = &buf[..nl];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    let mut command = Command::Unknown;
    let mut name: &[u8] = &[];
    let mut key = None;
    let mut finder = KeyFinder {
        want: KeyFinder::DONE,
        spec: KeySpec::None,
    };
    let mut argc = 0;
    let mut pos = 0;
    while let Some((tok, next)) = next_token(line, pos)? {
        if argc == 0 {
            name = tok;
            command = Command::from_name(tok);
            finder = KeyFinder::new(command);
        } else if let Some(k) = finder.see(argc, tok) {
            key = Some(k);
        }
        argc += 1;
        pos = next;
    }
    Ok((
        Request {
            command,
            name,
            key,
            argc,
            form: Form::Inline,
            body: line,
        },
        nl + 1,
    ))
}

// ---------------------------------------------------------------------------------------------
// Replies

/// The kind of a reply, as a closed set for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplyType {
    /// `+`
    Simple,
    /// `-` or `!`
    Error,
    /// `:`
    Integer,
    /// `$`, including streamed `$?`
    Bulk,
    /// `_`, `$-1`, `*-1`
    Null,
    /// `#`
    Boolean,
    /// `,`
    Double,
    /// `(`
    BigNumber,
    /// `=`
    Verbatim,
    /// `*`
    Array,
    /// `%`
    Map,
    /// `~`
    Set,
    /// `>`
    Push,
}

impl ReplyType {
    /// Lowercase label.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReplyType::Simple => "simple",
            ReplyType::Error => "error",
            ReplyType::Integer => "integer",
            ReplyType::Bulk => "bulk",
            ReplyType::Null => "null",
            ReplyType::Boolean => "boolean",
            ReplyType::Double => "double",
            ReplyType::BigNumber => "big_number",
            ReplyType::Verbatim => "verbatim",
            ReplyType::Array => "array",
            ReplyType::Map => "map",
            ReplyType::Set => "set",
            ReplyType::Push => "push",
        }
    }
}

/// A cluster redirection carried by an error reply (`-MOVED 3999 127.0.0.1:6381`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect<'a> {
    /// `MOVED` (slot owner changed for good) or `ASK` (one-shot, during migration).
    pub kind: RedirectKind,
    /// Hash slot, 0..16384.
    pub slot: u16,
    /// Host part; empty when the server hides it (`cluster-preferred-endpoint-type
    /// unknown-endpoint`: "same host you asked").
    pub host: &'a [u8],
    /// Port.
    pub port: u16,
}

/// `MOVED` or `ASK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectKind {
    /// `-MOVED`
    Moved,
    /// `-ASK`
    Ask,
}

impl RedirectKind {
    /// `"moved"` or `"ask"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RedirectKind::Moved => "moved",
            RedirectKind::Ask => "ask",
        }
    }
}

/// An error reply (`-CODE message` or RESP3 blob error `!len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReply<'a> {
    /// The whole text, e.g. `WRONGTYPE Operation against a key ...`.
    pub text: &'a [u8],
    /// `true` for a RESP3 blob error (`!`).
    pub blob: bool,
    /// `MOVED`/`ASK` parsed, when the text is one.
    pub redirect: Option<Redirect<'a>>,
}

impl<'a> ErrorReply<'a> {
    /// The error code: the text up to its first space (`ERR`, `WRONGTYPE`, `MOVED`, ...).
    pub fn code(&self) -> &'a [u8] {
        let t = self.text;
        match t.iter().position(|&b| b == b' ') {
            Some(i) => &t[..i],
            None => t,
        }
    }

    fn parse(text: &'a [u8], blob: bool) -> Self {
        ErrorReply {
            text,
            blob,
            redirect: parse_redirect(text),
        }
    }
}

fn parse_redirect(text: &[u8]) -> Option<Redirect<'_>> {
    let (kind, rest) = if let Some(r) = text.strip_prefix(b"MOVED ") {
        (RedirectKind::Moved, r)
    } else if let Some(r) = text.strip_prefix(b"ASK ") {
        (RedirectKind::Ask, r)
    } else {
        return None;
    };
    let sp = rest.iter().position(|&b| b == b' ')?;
    let slot = parse_u64(&rest[..sp]).filter(|&s| s < 16384)? as u16;
    let addr = &rest[sp + 1..];
    // The port follows the last ':' (IPv6 hosts hold colons too).
    let colon = addr.iter().rposition(|&b| b == b':')?;
    let port = parse_u64(&addr[colon + 1..]).filter(|&p| p <= 65535)? as u16;
    Some(Redirect {
        kind,
        slot,
        host: &addr[..colon],
        port,
    })
}

/// An aggregate's size and its element bytes, forwarded untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate<'a> {
    /// Number of elements (pairs for a map); `None` for a streamed aggregate (`*?` ... `.`).
    pub len: Option<usize>,
    /// The encoded elements (for a streamed aggregate, including the final `.\r\n`).
    pub body: &'a [u8],
}

/// What a reply holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// `+OK`
    Simple(&'a [u8]),
    /// `-ERR ...` or `!len` blob error.
    Error(ErrorReply<'a>),
    /// `:n`
    Integer(i64),
    /// `$len` data.
    Bulk(&'a [u8]),
    /// `$?` streamed string: the raw `;len` chunks including the final `;0\r\n`.
    StreamedBulk {
        /// Number of non-empty chunks.
        chunks: usize,
        /// Total data length over all chunks.
        len: usize,
        /// The chunk bytes as sent.
        raw: &'a [u8],
    },
    /// `_`, `$-1` or `*-1`.
    Null,
    /// `#t` / `#f`
    Boolean(bool),
    /// `,` text (`1.5`, `inf`, `-inf`, `nan`), unparsed.
    Double(&'a [u8]),
    /// `(` digits, unparsed.
    BigNumber(&'a [u8]),
    /// `=len` `fmt:text`.
    Verbatim {
        /// Three-byte format (`txt`, `mkd`).
        format: &'a [u8],
        /// The text after `fmt:`.
        text: &'a [u8],
    },
    /// `*`
    Array(Aggregate<'a>),
    /// `%` (len counts pairs)
    Map(Aggregate<'a>),
    /// `~`
    Set(Aggregate<'a>),
    /// `>` out-of-band push (pub/sub message, client-side caching invalidation).
    Push(Aggregate<'a>),
}

/// One server reply, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The value.
    pub value: Value<'a>,
    /// Raw RESP3 attribute frames (`|n` ...) that preceded the value, if any.
    pub attributes: Option<&'a [u8]>,
}

impl<'a> Reply<'a> {
    /// The kind of reply, for labels.
    pub fn reply_type(&self) -> ReplyType {
        match self.value {
            Value::Simple(_) => ReplyType::Simple,
            Value::Error(_) => ReplyType::Error,
            Value::Integer(_) => ReplyType::Integer,
            Value::Bulk(_) | Value::StreamedBulk { .. } => ReplyType::Bulk,
            Value::Null => ReplyType::Null,
            Value::Boolean(_) => ReplyType::Boolean,
            Value::Double(_) => ReplyType::Double,
            Value::BigNumber(_) => ReplyType::BigNumber,
            Value::Verbatim { .. } => ReplyType::Verbatim,
            Value::Array(_) => ReplyType::Array,
            Value::Map(_) => ReplyType::Map,
            Value::Set(_) => ReplyType::Set,
            Value::Push(_) => ReplyType::Push,
        }
    }

    /// The error, when the reply is one.
    pub fn error(&self) -> Option<&ErrorReply<'a>> {
        match &self.value {
            Value::Error(e) => Some(e),
            _ => None,
        }
    }

    /// `true` for an out-of-band push, which answers no request.
    pub fn is_push(&self) -> bool {
        matches!(self.value, Value::Push(_))
    }
}

/// One decoded RESP item: a scalar, or an aggregate header whose elements follow.
enum Item<'a> {
    Done(Value<'a>),
    /// Aggregate header: type byte and element count (`None` = streamed). Maps and attributes
    /// already count both keys and values.
    Agg(u8, Option<usize>),
    /// `|n`: an attribute of `n` elements; the annotated value follows it.
    Attr(usize),
}

const STREAMED: usize = usize::MAX;

/// Decodes the item whose type byte is at `p`. `tail` is the lower bound of bytes owed after it.
#[inline(always)]
fn item<'a>(buf: &'a [u8], p: usize, tail: usize, limits: &Limits) -> R<(Item<'a>, usize)> {
    let Some(&t) = buf.get(p) else {
        return Err(Stop::Need(p + MIN_VALUE + tail));
    };
    let s = p + 1;
    let v = match t {
        b'$' => {
            if buf.get(s) == Some(&b'?') {
                return streamed_string(buf, p, tail, limits);
            }
            // No `2 + tail` here: `$-1\r\n` (RESP2 null) has no data line.
            let (len, q) = int_line(buf, s, false, tail)?;
            if len == -1 {
                return Ok((Item::Done(Value::Null), q));
            }
            let end = blob(buf, p, q, len, tail, limits)?;
            return Ok((Item::Done(Value::Bulk(&buf[q..end - 2])), end));
        }
        b'+' => {
            let (e, n) = simple_line(buf, s, tail)?;
            return Ok((Item::Done(Value::Simple(&buf[s..e])), n));
        }
        b'-' => {
            let (e, n) = simple_line(buf, s, tail)?;
            return Ok((
                Item::Done(Value::Error(ErrorReply::parse(&buf[s..e], false))),
                n,
            ));
        }
        b':' => {
            let (v, n) = int_line(buf, s, true, tail)?;
            return Ok((Item::Done(Value::Integer(v)), n));
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            if buf.get(s) == Some(&b'?') && t != b'|' {
                match buf.get(s + 1..s + 3) {
                    Some(b"\r\n") => {}
                    Some(_) => return Err(Error::BadLineEnd { offset: s + 1 }.into()),
                    None => {
                        // Header, then at least the end marker `.\r\n`.
                        return Err(Stop::Need(s + 3 + MIN_VALUE + tail));
                    }
                }
                return Ok((Item::Agg(t, None), s + 3));
            }
            let (n, q) = int_line(buf, s, false, tail)?;
            if n < 0 {
                if n == -1 && t == b'*' {
                    return Ok((Item::Done(Value::Null), q));
                }
                return Err(Error::BadLength { offset: p }.into());
            }
            let pairs = matches!(t, b'%' | b'|');
            // Each element takes at least MIN_VALUE bytes: refuse impossible counts before
            // anything trusts them.
            let per = if pairs { 2 * MIN_VALUE } else { MIN_VALUE };
            let min = (n as u64)
                .saturating_mul(per as u64)
                .saturating_add((q + tail) as u64);
            let min = usize::try_from(min).unwrap_or(usize::MAX);
            too_large(p, min, limits)?;
            let n = n as usize;
            let elems = if pairs { 2 * n } else { n };
            if t == b'|' {
                return Ok((Item::Attr(elems), q));
            }
            return Ok((Item::Agg(t, Some(elems)), q));
        }
        b'_' => match buf.get(s..s + 2) {
            Some(b"\r\n") => return Ok((Item::Done(Value::Null), s + 2)),
            Some(_) => return Err(Error::BadScalar { offset: s }.into()),
            None => {
                if buf.get(s).is_some_and(|&b| b != b'\r') {
                    return Err(Error::BadScalar { offset: s }.into());
                }
                return Err(Stop::Need(s + 2 + tail));
            }
        },
        b'#' => {
            let v = match buf.get(s) {
                Some(b't') => true,
                Some(b'f') => false,
                Some(_) => return Err(Error::BadScalar { offset: s }.into()),
                None => return Err(Stop::Need(s + 3 + tail)),
            };
            match buf.get(s + 1..s + 3) {
                Some(b"\r\n") => return Ok((Item::Done(Value::Boolean(v)), s + 3)),
                Some(_) => return Err(Error::BadLineEnd { offset: s + 1 }.into()),
                None => {
                    if buf.get(s + 1).is_some_and(|&b| b != b'\r') {
                        return Err(Error::BadLineEnd { offset: s + 1 }.into());
                    }
                    return Err(Stop::Need(s + 3 + tail));
                }
            }
        }
        b',' => {
            let (e, n) = simple_line(buf, s, tail)?;
            (Value::Double(&buf[s..e]), n)
        }
        b'(' => {
            let (e, n) = simple_line(buf, s, tail)?;
            (Value::BigNumber(&buf[s..e]), n)
        }
        b'!' | b'=' => {
            let (len, q) = int_line(buf, s, false, 2 + tail)?;
            let end = blob(buf, p, q, len, tail, limits)?;
            let data = &buf[q..end - 2];
            if t == b'!' {
                (Value::Error(ErrorReply::parse(data, true)), end)
            } else {
                if data.len() < 4 || data[3] != b':' {
                    return Err(Error::BadVerbatim { offset: p }.into());
                }
                (
                    Value::Verbatim {
                        format: &data[..3],
                        text: &data[4..],
                    },
                    end,
                )
            }
        }
        b'.' | b';' => return Err(Error::Unexpected { offset: p }.into()),
        _ => return Err(Error::UnknownType { offset: p, byte: t }.into()),
    };
    Ok((Item::Done(v.0), v.1))
}

/// `$?\r\n` then `;len\r\n data\r\n` chunks up to `;0\r\n` (RESP3 "streamed strings").
#[cold]
fn streamed_string<'a>(
    buf: &'a [u8],
    p: usize,
    tail: usize,
    limits: &Limits,
) -> R<(Item<'a>, usize)> {
    match buf.get(p + 2..p + 4) {
        Some(b"\r\n") => {}
        Some(_) => return Err(Error::BadLineEnd { offset: p + 2 }.into()),
        None => return Err(Stop::Need(p + 4 + 4 + tail)),
    }
    let start = p + 4;
    let mut c = start;
    let mut chunks = 0;
    let mut len = 0usize;
    loop {
        match buf.get(c) {
            Some(b';') => {}
            Some(_) => return Err(Error::BadChunk { offset: c }.into()),
            None => return Err(Stop::Need(c + 4 + tail)),
        }
        let (n, q) = int_line(buf, c + 1, false, tail)?;
        if n == 0 {
            let raw = &buf[start..q];
            return Ok((Item::Done(Value::StreamedBulk { chunks, len, raw }), q));
        }
        // Each later chunk, at least the terminator `;0\r\n`.
        c = blob(buf, c, q, n, 4 + tail, limits)?;
        chunks += 1;
        len = len.saturating_add(c - q - 2);
    }
}

/// Skips the elements of an aggregate whose header ended at `p`: `count` elements, or up to
/// the end marker when `count == STREAMED`. Walks without recursion: one counter per level.
fn skip_aggregate(buf: &[u8], mut p: usize, count: usize, limits: &Limits) -> R<usize> {
    let max_depth = limits.max_depth.min(MAX_STACK_DEPTH);
    let mut stack = [0usize; MAX_STACK_DEPTH];
    let mut depth = 1;
    stack[0] = count;
    // Lower bound of the bytes owed after the element being parsed (3 per element still due,
    // 3 per streamed level for its `.\r\n`).
    let mut owed = if count == STREAMED {
        MIN_VALUE
    } else {
        count * MIN_VALUE
    };
    loop {
        let top = &mut stack[depth - 1];
        if *top == 0 {
            depth -= 1;
            if depth == 0 {
                return Ok(p);
            }
            continue;
        }
        if *top == STREAMED {
            // The next thing may be this level's own end marker, already counted in `owed`.
            if p >= buf.len() {
                return Err(Stop::Need(p + owed));
            }
            if buf[p] == b'.' {
                match buf.get(p + 1..p + 3) {
                    Some(b"\r\n") => {}
                    Some(_) => return Err(Error::BadLineEnd { offset: p + 1 }.into()),
                    None => return Err(Stop::Need(p + owed)),
                }
                *top = 0;
                owed -= MIN_VALUE;
                p += 3;
                continue;
            }
        } else {
            *top -= 1;
            owed -= MIN_VALUE;
        }
        let (it, q) = item(buf, p, owed, limits)?;
        let children = match it {
            Item::Done(_) => {
                p = q;
                continue;
            }
            Item::Agg(_, None) => STREAMED,
            Item::Agg(_, Some(n)) => n,
            // The attribute's pairs, then the value it annotates.
            Item::Attr(n) => n + 1,
        };
        if children != 0 {
            if depth >= max_depth {
                return Err(Error::TooDeep {
                    offset: p,
                    max: max_depth,
                }
                .into());
            }
            stack[depth] = children;
            depth += 1;
            owed += if children == STREAMED {
                MIN_VALUE
            } else {
                children * MIN_VALUE
            };
        }
        p = q;
    }
}

/// Decodes one server reply (any RESP2/RESP3 value) from the start of `buf`.
#[inline]
pub fn decode_response<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Reply<'a>>, Error> {
    finish(reply(buf, limits), buf.len())
}

#[inline(always)]
fn reply<'a>(buf: &'a [u8], limits: &Limits) -> R<(Reply<'a>, usize)> {
    let mut p = 0;
    let mut attributes = None;
    loop {
        let (it, q) = item(buf, p, 0, limits)?;
        let (t, n) = match it {
            Item::Done(value) => return Ok((Reply { value, attributes }, q)),
            Item::Agg(t, n) => (t, n),
            Item::Attr(n) => {
                if limits.max_depth == 0 {
                    return Err(Error::TooDeep { offset: p, max: 0 }.into());
                }
                // Owe at least the annotated value after the attribute.
                let end = skip_aggregate_owing(buf, q, n, limits)?;
                attributes = Some(&buf[..end]);
                p = end;
                continue;
            }
        };
        if limits.max_depth == 0 {
            return Err(Error::TooDeep { offset: p, max: 0 }.into());
        }
        let end = match n {
            Some(0) => q,
            Some(n) => skip_aggregate(buf, q, n, limits)?,
            None => skip_aggregate(buf, q, STREAMED, limits)?,
        };
        let agg = Aggregate {
            len: n.map(|n| if t == b'%' { n / 2 } else { n }),
            body: &buf[q..end],
        };
        let value = match t {
            b'*' => Value::Array(agg),
            b'%' => Value::Map(agg),
            b'~' => Value::Set(agg),
            _ => Value::Push(agg),
        };
        return Ok((Reply { value, attributes }, end));
    }
}

/// Skips a top-level attribute's `n` elements, keeping the need bound honest about the value
/// that must follow it.
fn skip_aggregate_owing(buf: &[u8], q: usize, n: usize, limits: &Limits) -> R<usize> {
    if n == 0 {
        return Ok(q);
    }
    match skip_aggregate(buf, q, n, limits) {
        Err(Stop::Need(x)) => Err(Stop::Need(x + MIN_VALUE)),
        r => r,
    }
}

// ---------------------------------------------------------------------------------------------
// Encoders

/// Length of [`encode_error`]'s output for `text`.
pub fn error_len(text: &[u8]) -> usize {
    1 + text.len() + 2
}

/// Writes a RESP error reply `-<text>\r\n` (e.g. text `ERR rate limited`). `text` should start
/// with an uppercase error code; any `\r`/`\n` in it become spaces, as `redis-server` does
/// (`addReplyErrorLength`), so the reply stays one line.
pub fn encode_error(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(error_len(text));
    out.push(b'-');
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Length of [`encode_blob_error`]'s output for `text`.
pub fn blob_error_len(text: &[u8]) -> usize {
    1 + decimal_len(text.len()) + 2 + text.len() + 2
}

/// Writes a RESP3 blob error `!<len>\r\n<text>\r\n` (binary-safe, for RESP3 clients).
pub fn encode_blob_error(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(blob_error_len(text));
    out.push(b'!');
    push_decimal(text.len(), out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn decimal_len(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn push_decimal(n: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_name_looks_itself_up() {
        for (i, e) in TABLE.iter().enumerate() {
            assert_eq!(Command::from_name(e.0.as_bytes()) as usize, i, "{}", e.0);
            assert_eq!(Command::from_name(e.0.to_uppercase().as_bytes()), e.1);
            assert_eq!(e.1.as_str(), e.0);
        }
        assert_eq!(Command::from_name(b"nosuch"), Command::Unknown);
        assert_eq!(Command::Unknown.as_str(), "unknown");
    }
}
