//! The Hessian2 reader (<http://hessian.caucho.com/doc/hessian-serialization.html>): strings
//! borrowed or raw, every other value skipped by its grammar with lengths, counts and nesting
//! checked, and the attachments map it validates and walks.

use core::fmt;

use super::Error;

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
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
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
    pub(super) fn new(buf: &'a [u8], base: usize, max_depth: usize) -> Self {
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
    pub(super) fn offset(&self) -> usize {
        self.base + self.pos
    }
    #[inline]
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
    #[inline]
    pub(super) fn remaining(&self) -> usize {
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
    pub(super) fn int(&mut self) -> Result<i32, Error> {
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
    pub(super) fn string_with(&mut self, f: impl FnMut(&'a [u8])) -> Result<HStr<'a>, Error> {
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
    pub(super) fn string(&mut self) -> Result<HStr<'a>, Error> {
        self.string_with(|_| {})
    }

    #[inline]
    pub(super) fn nullable_string(&mut self) -> Result<Option<HStr<'a>>, Error> {
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
    pub(super) fn skip_value(&mut self, depth: usize) -> Result<(), Error> {
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
    pub(super) fn attachments(&mut self) -> Result<Option<Attachments<'a>>, Error> {
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
    pub(super) fn detail_message(&mut self) -> Result<Option<HStr<'a>>, Error> {
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
