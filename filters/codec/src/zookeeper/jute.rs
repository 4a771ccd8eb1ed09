//! Jute primitives (`zookeeper.jute`): ints, longs, buffers, strings and ACL vectors, each read
//! with its field name and offset for errors.

use crate::wire::Cursor;

use super::{Error, ACL_MIN};

#[inline]
pub(super) fn truncated(field: &'static str, offset: usize) -> Error {
    Error::Truncated { field, offset }
}

#[inline]
pub(super) fn int(c: &mut Cursor<'_>, field: &'static str) -> Result<i32, Error> {
    let at = c.pos();
    c.i32().ok_or(truncated(field, at))
}

#[inline]
pub(super) fn long(c: &mut Cursor<'_>, field: &'static str) -> Result<i64, Error> {
    let at = c.pos();
    c.i64().ok_or(truncated(field, at))
}

/// Jute `buffer`: int length (-1 null) then bytes. Null decodes as empty.
#[inline]
pub(super) fn buffer<'a>(c: &mut Cursor<'a>, field: &'static str) -> Result<&'a [u8], Error> {
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
pub(super) fn string<'a>(c: &mut Cursor<'a>, field: &'static str) -> Result<&'a str, Error> {
    let at = c.pos() + 4;
    let b = buffer(c, field)?;
    core::str::from_utf8(b).map_err(|_| Error::InvalidUtf8 { field, offset: at })
}

/// Skips a Jute `vector<ACL>` after checking its count against the bytes that remain.
pub(super) fn skip_acls(c: &mut Cursor<'_>) -> Result<(), Error> {
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
pub(super) fn skip(c: &mut Cursor<'_>, n: usize, field: &'static str) -> Result<(), Error> {
    let at = c.pos();
    c.skip(n).ok_or(truncated(field, at))
}
