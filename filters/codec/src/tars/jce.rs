//! The Tars (JCE) encoding, as far as the packet headers need: a field head, integers of any
//! width, strings, `vector<byte>` (simple lists) and `map<string, string>`; every other value
//! is skipped by its grammar (TarsCpp `tup/Tars.h`, `TarsInputStream::skipField`).
//!
//! A field head is one byte `tag << 4 | type`; a tag of 15 or more is written as `0xf?` and
//! the tag in the next byte. Every length and count is checked against the bytes that remain
//! before it is trusted, and nesting is bounded by the caller's depth limit.

use super::Error;

/// Field types (TarsCpp `TarsHeadeChar` .. `TarsHeadeSimpleList`).
pub(crate) const INT1: u8 = 0;
pub(crate) const INT2: u8 = 1;
pub(crate) const INT4: u8 = 2;
pub(crate) const INT8: u8 = 3;
pub(crate) const FLOAT: u8 = 4;
pub(crate) const DOUBLE: u8 = 5;
pub(crate) const STRING1: u8 = 6;
pub(crate) const STRING4: u8 = 7;
pub(crate) const MAP: u8 = 8;
pub(crate) const LIST: u8 = 9;
pub(crate) const STRUCT_BEGIN: u8 = 10;
pub(crate) const STRUCT_END: u8 = 11;
pub(crate) const ZERO: u8 = 12;
pub(crate) const SIMPLE_LIST: u8 = 13;

#[derive(Debug)]
/// A bounds-checked reader over one packet; offsets in errors count from the frame start
/// (`base` is where `buf` starts in the frame).
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) base: usize,
    pub(crate) max_depth: usize,
    /// Head mode: `buf` is cut short of the packet, so a length past its end is a cut, not
    /// a broken length.
    pub(crate) cut: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize, max_depth: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            max_depth,
            cut: false,
        }
    }

    #[inline]
    pub(crate) fn at_end(&self) -> bool {
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
    fn take(&mut self, n: usize, at: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(self.truncated(at))?;
        let s = self.buf.get(self.pos..end).ok_or(self.truncated(at))?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn u8(&mut self, at: usize) -> Result<u8, Error> {
        let b = *self.buf.get(self.pos).ok_or(self.truncated(at))?;
        self.pos += 1;
        Ok(b)
    }

    /// A field head: (tag, type, offset of the head).
    #[inline]
    pub(crate) fn head(&mut self) -> Result<(u8, u8, usize), Error> {
        let at = self.pos;
        let b = self.u8(at)?;
        let ty = b & 0x0f;
        let mut tag = b >> 4;
        if tag == 15 {
            tag = self.u8(at)?;
        }
        Ok((tag, ty, at))
    }

    /// An integer of any width (Tars writes the narrowest that holds the value; 0 is `ZERO`).
    pub(crate) fn int_of(&mut self, ty: u8, at: usize) -> Result<i64, Error> {
        Ok(match ty {
            ZERO => 0,
            INT1 => i64::from(self.u8(at)? as i8),
            INT2 => {
                let b = self.take(2, at)?;
                i64::from(i16::from_be_bytes([b[0], b[1]]))
            }
            INT4 => {
                let b = self.take(4, at)?;
                i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            INT8 => {
                let b = self.take(8, at)?;
                i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            _ => return Err(self.wrong_type(ty, at)),
        })
    }

    /// A length larger than what remains: broken, unless the packet is cut there.
    #[inline]
    fn too_long(&self, at: usize) -> Error {
        if self.cut {
            self.truncated(at)
        } else {
            Error::BadLength {
                offset: self.base + at,
            }
        }
    }

    fn wrong_type(&self, ty: u8, at: usize) -> Error {
        let offset = self.base + at;
        if ty > SIMPLE_LIST {
            Error::BadType { offset, ty }
        } else {
            Error::WrongType { offset, ty }
        }
    }

    /// A length or count: an integer field (its tag is 0 by the grammar, not checked, as
    /// TarsCpp does not) that must be >= 0 and no larger than the bytes that remain times
    /// `unit` (the least bytes one element takes).
    fn count(&mut self) -> Result<usize, Error> {
        let (_, ty, at) = self.head()?;
        let n = self.int_of(ty, at)?;
        if n < 0 {
            return Err(Error::BadLength {
                offset: self.base + at,
            });
        }
        if n as u64 > self.remaining() as u64 {
            return Err(self.too_long(at));
        }
        Ok(n as usize)
    }

    /// The bytes of a string value of type `ty`.
    pub(crate) fn string_of(&mut self, ty: u8, at: usize) -> Result<&'a [u8], Error> {
        let len = match ty {
            STRING1 => usize::from(self.u8(at)?),
            STRING4 => {
                let b = self.take(4, at)?;
                let n = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if n < 0 {
                    return Err(Error::BadLength {
                        offset: self.base + at,
                    });
                }
                if n as usize > self.remaining() {
                    return Err(self.too_long(at));
                }
                n as usize
            }
            _ => return Err(self.wrong_type(ty, at)),
        };
        self.take(len, at)
    }

    /// The bytes of a `vector<byte>`: a simple list (`SIMPLE_LIST`, an `INT1` head, a count),
    /// or a plain list of `INT1`/`ZERO` elements (older writers), borrowed only in the first form.
    pub(crate) fn bytes_of(&mut self, ty: u8, at: usize) -> Result<&'a [u8], Error> {
        match ty {
            SIMPLE_LIST => {
                let (_, elem, eat) = self.head()?;
                if elem != INT1 {
                    return Err(self.wrong_type(elem, eat));
                }
                let n = self.count()?;
                self.take(n, at)
            }
            LIST => {
                let start = self.pos;
                self.skip_of(ty, at, 0)?;
                Ok(&self.buf[start..self.pos])
            }
            _ => Err(self.wrong_type(ty, at)),
        }
    }

    /// A `map<string, string>`: validated, returned as its entries' raw bytes and count.
    pub(crate) fn str_map_of(&mut self, ty: u8, at: usize) -> Result<(&'a [u8], u32), Error> {
        if ty != MAP {
            return Err(self.wrong_type(ty, at));
        }
        let n = self.count()?;
        // Each entry takes at least four bytes (two heads, two one-byte lengths).
        if n > self.remaining() / 4 {
            return Err(self.too_long(at));
        }
        let start = self.pos;
        for _ in 0..n {
            for _ in 0..2 {
                let (_, ty, at) = self.head()?;
                self.string_of(ty, at)?;
            }
        }
        Ok((&self.buf[start..self.pos], n as u32))
    }

    /// Skips one value of type `ty` whose head was at `at`.
    pub(crate) fn skip_of(&mut self, ty: u8, at: usize, depth: usize) -> Result<(), Error> {
        match ty {
            ZERO => {}
            INT1 => {
                self.take(1, at)?;
            }
            INT2 => {
                self.take(2, at)?;
            }
            INT4 | FLOAT => {
                self.take(4, at)?;
            }
            INT8 | DOUBLE => {
                self.take(8, at)?;
            }
            STRING1 | STRING4 => {
                self.string_of(ty, at)?;
            }
            SIMPLE_LIST => {
                self.bytes_of(ty, at)?;
            }
            MAP | LIST => {
                let d = self.enter(depth, at)?;
                let n = self.count()?;
                let items = if ty == MAP { n.checked_mul(2) } else { Some(n) };
                // Every value takes at least its one-byte head.
                let items = items
                    .filter(|i| *i <= self.remaining())
                    .ok_or(self.too_long(at))?;
                for _ in 0..items {
                    let (_, ty, at) = self.head()?;
                    self.skip_of(ty, at, d)?;
                }
            }
            STRUCT_BEGIN => {
                let d = self.enter(depth, at)?;
                loop {
                    let (_, ty, at) = self.head()?;
                    if ty == STRUCT_END {
                        break;
                    }
                    self.skip_of(ty, at, d)?;
                }
            }
            _ => {
                return Err(Error::BadType {
                    offset: self.base + at,
                    ty,
                })
            }
        }
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
}

/// The entries of a `map<string, string>` (the packet's `context` and `status`), borrowed
/// and validated: iterating never fails.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct StrMap<'a> {
    raw: &'a [u8],
    len: u32,
}

impl core::fmt::Debug for StrMap<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

impl<'a> StrMap<'a> {
    pub(crate) fn new(raw: &'a [u8], len: u32) -> Self {
        StrMap { raw, len }
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the map is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries' encoded bytes.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The entries in wire order, as raw key and value bytes.
    pub fn iter(&self) -> StrMapIter<'a> {
        StrMapIter {
            r: Reader::new(self.raw, 0, 0),
            left: self.len,
        }
    }

    /// The value of `key` (the first entry with that key), as bytes.
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// The value of `key`, when it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| core::str::from_utf8(v).ok())
    }
}

/// Iterator over a [`StrMap`].
#[derive(Debug)]
pub struct StrMapIter<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for StrMapIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut one = || {
            let (_, ty, at) = self.r.head().ok()?;
            self.r.string_of(ty, at).ok()
        };
        let k = one()?;
        let v = one()?;
        Some((k, v))
    }
}
