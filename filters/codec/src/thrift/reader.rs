//! The reader shared by both protocols: a cursor with absolute offsets that turns running out of
//! input into a lower bound (unframed) or an error (framed), and the protocol trait the generic
//! struct walkers call.

use super::Error;

/// Why a read stopped: out of input (with a lower bound of the bytes needed), or broken.
pub(super) enum Stop {
    Short(usize),
    Bad(Error),
}

pub(super) type R<T> = Result<T, Stop>;

/// A cursor over `buf[..end]` with absolute offsets. `streaming` (unframed) turns running out of
/// bytes into a lower bound; otherwise the end is the frame's end and running out is an error.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) streaming: bool,
    /// Structs entered and not yet closed: each still needs at least its `STOP` byte.
    pub(super) open: usize,
    pub(super) max_depth: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(super) fn short(&self, end: Option<usize>) -> Stop {
        if self.streaming {
            Stop::Short(
                end.and_then(|e| e.checked_add(self.open))
                    .unwrap_or(usize::MAX),
            )
        } else {
            Stop::Bad(Error::Truncated { offset: self.pos })
        }
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n);
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.short(end)),
        }
    }

    #[inline]
    pub(super) fn skip(&mut self, n: usize) -> R<()> {
        self.take(n).map(|_| ())
    }

    #[inline]
    pub(super) fn u8(&mut self) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.short(Some(self.pos + 1))),
        }
    }

    /// Reads a field header's first byte: it may be the `STOP` of the innermost open struct,
    /// so that struct's own `STOP` is not counted again in a lower bound.
    #[inline]
    pub(super) fn field_byte(&mut self) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => {
                let end = self.pos + 1;
                Err(if self.streaming {
                    Stop::Short(end + self.open.saturating_sub(1))
                } else {
                    Stop::Bad(Error::Truncated { offset: self.pos })
                })
            }
        }
    }

    #[inline]
    pub(super) fn be16(&mut self) -> R<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    #[inline]
    pub(super) fn be32(&mut self) -> R<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A compact-protocol varint of at most `max` bytes.
    #[inline]
    pub(super) fn varint(&mut self, max: u32) -> R<u64> {
        let at = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0;
        for _ in 0..max {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
        Err(Stop::Bad(Error::BadVarint { offset: at }))
    }

    /// A compact 32-bit varint (sizes, sequence ids).
    #[inline]
    pub(super) fn varint32(&mut self) -> R<u32> {
        let at = self.pos;
        let v = self.varint(5)?;
        u32::try_from(v).map_err(|_| Stop::Bad(Error::BadVarint { offset: at }))
    }

    #[inline]
    pub(super) fn enter(&self, depth: usize, at: usize) -> R<usize> {
        if depth >= self.max_depth {
            Err(Stop::Bad(Error::TooDeep { offset: at }))
        } else {
            Ok(depth + 1)
        }
    }

    /// `count` elements of at least `min` bytes each must fit before any is read.
    #[inline]
    pub(super) fn fits(&self, count: usize, min: usize) -> R<()> {
        let need = count.checked_mul(min).and_then(|n| n.checked_add(self.pos));
        match need {
            Some(n) if n <= self.buf.len() => Ok(()),
            _ => Err(self.short(need)),
        }
    }
}

/// The protocol-specific pieces the generic struct walkers need.
pub(super) trait Proto {
    const STRING: u8;
    const I32: u8;
    /// Reads a field header: `None` at `STOP`, else (type, id). `last` is the previous field id
    /// (compact deltas).
    fn field(r: &mut Reader<'_>, last: &mut i16) -> R<Option<(u8, i16)>>;
    /// Skips a field value of type `ty` at nesting `depth`.
    fn skip(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()>;
    fn string<'a>(r: &mut Reader<'a>) -> R<&'a [u8]>;
    fn i32(r: &mut Reader<'_>) -> R<i32>;
}
