//! The binary protocol (`thrift-binary-protocol.md`): field headers, value sizes and skipping.

use super::reader::{Proto, Reader, Stop, R};
use super::Error;

pub(super) struct Bin;

/// Smallest encoding of a binary-protocol value of type `ty`, or `None` for an unknown type.
#[inline]
fn bin_min(ty: u8) -> Option<usize> {
    Some(match ty {
        2 | 3 => 1,   // bool, byte
        4 | 10 => 8,  // double, i64
        6 => 2,       // i16
        8 => 4,       // i32
        11 => 4,      // string/binary: length
        12 => 1,      // struct: STOP
        13 => 6,      // map: key type, value type, size
        14 | 15 => 5, // set, list: element type, size
        16 => 16,     // uuid
        _ => return None,
    })
}

/// Fixed width of a binary-protocol scalar, for skipping a whole container at once.
#[inline]
fn bin_fixed(ty: u8) -> Option<usize> {
    match ty {
        2 | 3 | 4 | 6 | 8 | 10 | 16 => bin_min(ty),
        _ => None,
    }
}

impl Bin {
    fn size(r: &mut Reader<'_>) -> R<usize> {
        let at = r.pos;
        let n = r.be32()?;
        usize::try_from(n).map_err(|_| Stop::Bad(Error::NegativeSize { offset: at }))
    }

    fn check_type(ty: u8, at: usize) -> R<usize> {
        bin_min(ty).ok_or(Stop::Bad(Error::BadType { offset: at, ty }))
    }
}

impl Proto for Bin {
    const STRING: u8 = 11;
    const I32: u8 = 8;

    #[inline]
    fn field(r: &mut Reader<'_>, _last: &mut i16) -> R<Option<(u8, i16)>> {
        let ty = r.field_byte()?;
        if ty == 0 {
            return Ok(None);
        }
        let id = r.be16()?;
        Ok(Some((ty, id)))
    }

    fn skip(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()> {
        let at = r.pos;
        match ty {
            11 => {
                let n = Bin::size(r)?;
                r.skip(n)
            }
            12 => {
                let depth = r.enter(depth, at)?;
                r.open += 1;
                loop {
                    let t_at = r.pos;
                    let t = r.field_byte()?;
                    if t == 0 {
                        break;
                    }
                    r.skip(2)?;
                    // Scalars and strings inline; only containers recurse.
                    if let Some(w) = bin_fixed(t) {
                        r.skip(w)?;
                    } else if t == 11 {
                        let n = Bin::size(r)?;
                        r.skip(n)?;
                    } else {
                        Bin::check_type(t, t_at)?;
                        Bin::skip(r, t, depth)?;
                    }
                }
                r.open -= 1;
                Ok(())
            }
            13 => {
                let depth = r.enter(depth, at)?;
                let kt = r.u8()?;
                let vt = r.u8()?;
                let n = Bin::size(r)?;
                if n == 0 {
                    return Ok(());
                }
                let k = Bin::check_type(kt, at)?;
                let v = Bin::check_type(vt, at + 1)?;
                r.fits(n, k + v)?;
                if let (Some(k), Some(v)) = (bin_fixed(kt), bin_fixed(vt)) {
                    return r.skip(n * (k + v));
                }
                for _ in 0..n {
                    Bin::skip(r, kt, depth)?;
                    Bin::skip(r, vt, depth)?;
                }
                Ok(())
            }
            14 | 15 => {
                let depth = r.enter(depth, at)?;
                let et = r.u8()?;
                let n = Bin::size(r)?;
                if n == 0 {
                    return Ok(());
                }
                let e = Bin::check_type(et, at)?;
                r.fits(n, e)?;
                if let Some(e) = bin_fixed(et) {
                    return r.skip(n * e);
                }
                for _ in 0..n {
                    Bin::skip(r, et, depth)?;
                }
                Ok(())
            }
            _ => {
                let n = Bin::check_type(ty, at)?;
                r.skip(n)
            }
        }
    }

    #[inline]
    fn string<'a>(r: &mut Reader<'a>) -> R<&'a [u8]> {
        let n = Bin::size(r)?;
        r.take(n)
    }

    #[inline]
    fn i32(r: &mut Reader<'_>) -> R<i32> {
        r.be32()
    }
}
