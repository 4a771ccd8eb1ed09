//! The compact protocol (`thrift-compact-protocol.md`): field headers with id deltas, varints,
//! zigzag integers, value sizes and skipping.

use super::reader::{Proto, Reader, Stop, R};
use super::Error;

pub(super) struct Cpt;

// Compact types: 1/2 bool true/false, 3 byte, 4 i16, 5 i32, 6 i64, 7 double, 8 binary,
// 9 list, 10 set, 11 map, 12 struct, 13 uuid.
#[inline]
fn cpt_min(ty: u8) -> Option<usize> {
    Some(match ty {
        1..=6 | 8..=12 => 1,
        7 => 8,
        13 => 16,
        _ => return None,
    })
}

impl Cpt {
    fn check_type(ty: u8, at: usize) -> R<usize> {
        cpt_min(ty).ok_or(Stop::Bad(Error::BadType { offset: at, ty }))
    }

    /// Skips an element value (in a container, a bool takes one byte).
    fn skip_elem(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()> {
        match ty {
            1..=3 => r.skip(1),
            _ => Cpt::skip(r, ty, depth),
        }
    }

    fn size(r: &mut Reader<'_>) -> R<usize> {
        let at = r.pos;
        let n = r.varint32()?;
        if n > i32::MAX as u32 {
            return Err(Stop::Bad(Error::NegativeSize { offset: at }));
        }
        Ok(n as usize)
    }
}

impl Proto for Cpt {
    const STRING: u8 = 8;
    const I32: u8 = 5;

    #[inline]
    fn field(r: &mut Reader<'_>, last: &mut i16) -> R<Option<(u8, i16)>> {
        let at = r.pos;
        let b = r.field_byte()?;
        if b == 0 {
            return Ok(None);
        }
        let ty = b & 0x0f;
        let delta = b >> 4;
        let id = if delta == 0 {
            let v = r.varint(3)?;
            let v = u16::try_from(v).map_err(|_| Stop::Bad(Error::BadVarint { offset: at + 1 }))?;
            ((v >> 1) as i16) ^ -((v & 1) as i16)
        } else {
            last.wrapping_add(i16::from(delta))
        };
        Cpt::check_type(ty, at)?;
        *last = id;
        Ok(Some((ty, id)))
    }

    fn skip(r: &mut Reader<'_>, ty: u8, depth: usize) -> R<()> {
        let at = r.pos;
        match ty {
            1 | 2 => Ok(()), // a bool field's value is in its type
            3 => r.skip(1),
            4 => r.varint(3).map(|_| ()),
            5 => r.varint(5).map(|_| ()),
            6 => r.varint(10).map(|_| ()),
            7 => r.skip(8),
            8 => {
                let n = Cpt::size(r)?;
                r.skip(n)
            }
            9 | 10 => {
                let depth = r.enter(depth, at)?;
                let h = r.u8()?;
                let et = h & 0x0f;
                let n = if h >> 4 == 15 {
                    Cpt::size(r)?
                } else {
                    usize::from(h >> 4)
                };
                if n == 0 {
                    return Ok(());
                }
                let e = Cpt::check_type(et, at)?;
                r.fits(n, e)?;
                match et {
                    1..=3 => r.skip(n),
                    7 => r.skip(n * 8),
                    13 => r.skip(n * 16),
                    _ => {
                        for _ in 0..n {
                            Cpt::skip_elem(r, et, depth)?;
                        }
                        Ok(())
                    }
                }
            }
            11 => {
                let depth = r.enter(depth, at)?;
                let n = Cpt::size(r)?;
                if n == 0 {
                    return Ok(());
                }
                let kv_at = r.pos;
                let kv = r.u8()?;
                let (kt, vt) = (kv >> 4, kv & 0x0f);
                let k = Cpt::check_type(kt, kv_at)?;
                let v = Cpt::check_type(vt, kv_at)?;
                r.fits(n, k + v)?;
                for _ in 0..n {
                    Cpt::skip_elem(r, kt, depth)?;
                    Cpt::skip_elem(r, vt, depth)?;
                }
                Ok(())
            }
            12 => {
                let depth = r.enter(depth, at)?;
                r.open += 1;
                let mut last = 0;
                while let Some((t, _)) = Cpt::field(r, &mut last)? {
                    // Scalars and strings inline; only containers recurse.
                    match t {
                        1 | 2 => {}
                        3 => r.skip(1)?,
                        4..=6 => {
                            r.varint([3, 5, 10][usize::from(t - 4)])?;
                        }
                        7 => r.skip(8)?,
                        8 => {
                            let n = Cpt::size(r)?;
                            r.skip(n)?;
                        }
                        _ => Cpt::skip(r, t, depth)?,
                    }
                }
                r.open -= 1;
                Ok(())
            }
            13 => r.skip(16),
            _ => Err(Stop::Bad(Error::BadType { offset: at, ty })),
        }
    }

    #[inline]
    fn string<'a>(r: &mut Reader<'a>) -> R<&'a [u8]> {
        let n = Cpt::size(r)?;
        r.take(n)
    }

    #[inline]
    fn i32(r: &mut Reader<'_>) -> R<i32> {
        let v = r.varint32()?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
}
