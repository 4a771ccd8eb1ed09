//! A tiny bounds-checked big-endian cursor shared by the binary codecs.
//!
//! Every read returns `None` when the input is short, so callers turn that into
//! [`crate::Need`] or a typed error; nothing here panics or allocates.

/// A forward-only reader over a byte slice.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Starts at offset 0 of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current offset.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes after the current offset.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Reads `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Skips `n` bytes.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Reads a big-endian `u16`.
    #[inline]
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian `i16`.
    #[inline]
    pub fn i16(&mut self) -> Option<i16> {
        self.u16().map(|v| v as i16)
    }

    /// Reads a big-endian `u32`.
    #[inline]
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian `i32`.
    #[inline]
    pub fn i32(&mut self) -> Option<i32> {
        self.u32().map(|v| v as i32)
    }

    /// Reads a big-endian `u64`.
    #[inline]
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// Reads a big-endian `i64`.
    #[inline]
    pub fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }

    /// Reads an unsigned LEB128 varint of at most 5 bytes (32 bits), as Kafka and Thrift
    /// compact use. `Some(Err(()))` means the varint is longer than 32 bits.
    #[inline]
    pub fn uvarint32(&mut self) -> Option<Result<u32, ()>> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            if i == 4 && b > 0x0f {
                return Some(Err(()));
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(Ok(v));
            }
        }
        Some(Err(()))
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes (64 bits).
    #[inline]
    pub fn uvarint64(&mut self) -> Option<Result<u64, ()>> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 0x01 {
                return Some(Err(()));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(Ok(v));
            }
        }
        Some(Err(()))
    }
}

/// Zig-zag decoding for 32-bit values (Thrift compact, Kafka varints).
#[inline]
pub fn unzigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Zig-zag decoding for 64-bit values.
#[inline]
pub fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_return_none_and_keep_position() {
        let mut c = Cursor::new(&[1, 2, 3]);
        assert_eq!(c.u16(), Some(0x0102));
        assert_eq!(c.u16(), None);
        assert_eq!(c.pos(), 2);
        assert_eq!(c.u8(), Some(3));
        assert_eq!(c.take(usize::MAX), None);
    }

    #[test]
    fn varints() {
        assert_eq!(Cursor::new(&[0x96, 0x01]).uvarint32(), Some(Ok(150)));
        assert_eq!(
            Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).uvarint32(),
            Some(Ok(u32::MAX))
        );
        assert_eq!(
            Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0x1f]).uvarint32(),
            Some(Err(()))
        );
        assert_eq!(Cursor::new(&[0x80]).uvarint32(), None);
        assert_eq!(unzigzag32(3), -2);
        assert_eq!(unzigzag32(4), 2);
        assert_eq!(unzigzag64(1), -1);
    }
}
