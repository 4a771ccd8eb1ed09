//! Splits one direction of a byte stream into whole frames.
//!
//! The adapters let traffic pass untouched, so the host does not keep bytes for us: the framer
//! decodes straight from each chunk the host hands over and copies only the tail of a frame that
//! straddles two chunks (bounded by the codec's `max_frame`, which the codec checks as soon as a
//! length is known). It never re-parses a partial frame before the codec's "need" is met, and
//! holding doubles per attempt, so a frame is re-parsed O(log n) times at most.

use meltemi_codec::{Decoded, Need};

/// One direction's framing state.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// The start of a frame that arrived incomplete.
    pending: Vec<u8>,
    /// Total bytes (from the start of `pending`) the codec asked for before trying again.
    need: usize,
    /// `need` is only a lower bound (the codec does not know the frame's length yet).
    bound: bool,
}

impl Framer {
    /// Bytes held for an incomplete frame.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Feeds `data`. `decode` is called with a buffer that starts at a frame boundary; it handles
    /// the frame (the frame borrows the buffer) and returns how many bytes it used, or what it
    /// needs. An error stops framing and is returned (the rest of `data` is not looked at).
    pub(crate) fn feed<E>(
        &mut self,
        mut data: &[u8],
        mut decode: impl FnMut(&[u8]) -> Result<Decoded<()>, E>,
    ) -> Result<(), E> {
        // First finish a frame that straddles chunks. Take what the codec asked for; when that
        // is only a lower bound, take as much again as is held when it is at hand: a codec that
        // can bound a frame only field by field (unframed Thrift walks a struct) then re-parses
        // a big frame O(log n) times instead of once per field. A known length is taken
        // exactly, so the frames after it are decoded in place, not copied.
        while !self.pending.is_empty() {
            let held = self.pending.len();
            let mut want = self.need.saturating_sub(held);
            if self.bound {
                want = want.max(held);
            }
            let take = want.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < self.need {
                return Ok(());
            }
            // Every whole frame now held (bytes past `need` may hold several).
            loop {
                match decode(&self.pending)? {
                    Decoded::Frame { used, .. } => {
                        self.pending.drain(..used.min(self.pending.len()));
                        self.need = self.pending.len() + 1;
                        self.bound = true;
                        if self.pending.is_empty() {
                            break;
                        }
                    }
                    Decoded::NeedMore(n) => {
                        self.need = need_bytes(n, self.pending.len());
                        self.bound = matches!(n, Need::AtLeast(_));
                        break;
                    }
                }
            }
            if data.is_empty() {
                return Ok(());
            }
        }
        // Then decode in place.
        while !data.is_empty() {
            match decode(data)? {
                Decoded::Frame { used, .. } => data = &data[used.min(data.len())..],
                Decoded::NeedMore(n) => {
                    self.need = need_bytes(n, data.len());
                    self.bound = matches!(n, Need::AtLeast(_));
                    self.pending.extend_from_slice(data);
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The codec promises `need > held`; guard against a codec bug that would spin.
fn need_bytes(n: Need, held: usize) -> usize {
    n.bytes().max(held + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy codec: one length byte, then that many bytes.
    fn lp(buf: &[u8], out: &mut Vec<Vec<u8>>) -> Result<Decoded<()>, ()> {
        let Some(&n) = buf.first() else {
            return Ok(Decoded::NeedMore(Need::AtLeast(1)));
        };
        if n == 0xff {
            return Err(());
        }
        let total = 1 + n as usize;
        if buf.len() < total {
            return Ok(Decoded::NeedMore(Need::Exact(total)));
        }
        out.push(buf[1..total].to_vec());
        Ok(Decoded::Frame {
            frame: (),
            used: total,
        })
    }

    #[test]
    fn frames_survive_every_split() {
        let stream = [2, b'a', b'b', 0, 3, b'c', b'd', b'e', 1, b'f'];
        let want: Vec<Vec<u8>> = vec![b"ab".to_vec(), vec![], b"cde".to_vec(), b"f".to_vec()];
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let mut f = Framer::default();
                let mut out = Vec::new();
                for part in [&stream[..i], &stream[i..j], &stream[j..]] {
                    f.feed(part, |b| lp(b, &mut out)).unwrap();
                }
                assert_eq!(out, want, "split at {i},{j}");
                assert_eq!(f.pending(), 0);
            }
        }
    }

    #[test]
    fn byte_at_a_time_decodes_each_frame_once() {
        let stream = [3, 1, 2, 3, 2, 4, 5];
        let mut f = Framer::default();
        let mut out = Vec::new();
        let mut calls = 0;
        for b in stream {
            f.feed(&[b], |buf| {
                calls += 1;
                lp(buf, &mut out)
            })
            .unwrap();
        }
        assert_eq!(out, vec![vec![1, 2, 3], vec![4, 5]]);
        // One call per length byte (needs the rest) and one per completed frame.
        assert!(calls <= 5, "{calls} decode calls");
    }

    /// A codec that can only bound a frame one field at a time (as unframed Thrift): a frame
    /// is `n` then `n` one-byte fields, and a partial frame asks for one more byte than it has.
    fn fieldwise(buf: &[u8], calls: &mut usize) -> Result<Decoded<()>, ()> {
        *calls += 1;
        let Some(&n) = buf.first() else {
            return Ok(Decoded::NeedMore(Need::AtLeast(1)));
        };
        let total = 1 + n as usize;
        if buf.len() < total {
            return Ok(Decoded::NeedMore(Need::AtLeast(buf.len() + 1)));
        }
        Ok(Decoded::Frame {
            frame: (),
            used: total,
        })
    }

    #[test]
    fn a_frame_bounded_field_by_field_is_reparsed_logarithmically() {
        // A 201-byte frame whose rest arrives in one read after its first 2 bytes: re-parsed a
        // handful of times, not once per byte.
        let mut stream = vec![200u8];
        stream.extend(std::iter::repeat_n(7u8, 200));
        stream.extend([1, 9]);
        let mut f = Framer::default();
        let mut calls = 0;
        f.feed(&stream[..2], |b| fieldwise(b, &mut calls)).unwrap();
        f.feed(&stream[2..], |b| fieldwise(b, &mut calls)).unwrap();
        assert_eq!(f.pending(), 0);
        assert!(calls <= 12, "{calls} decode calls for 2 frames");
    }

    #[test]
    fn after_a_known_length_straddle_the_next_frames_decode_in_place() {
        let mut f = Framer::default();
        let mut out = Vec::new();
        let mut calls = 0;
        // A 4-byte frame cut after 3 bytes (its length known: exact), then its last byte and
        // two more frames in one read: one decode for the held frame, then in place.
        for part in [&[3u8, 1, 2][..], &[3, 2, 4, 5, 1, 6][..]] {
            f.feed(part, |b| {
                calls += 1;
                lp(b, &mut out)
            })
            .unwrap();
        }
        assert_eq!(out, vec![vec![1, 2, 3], vec![4, 5], vec![6]]);
        assert_eq!(calls, 4, "the held frame twice, then one call per frame");
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn error_stops_framing() {
        let mut f = Framer::default();
        let mut out = Vec::new();
        assert!(f.feed(&[1, 9, 0xff, 1, 2], |b| lp(b, &mut out)).is_err());
        assert_eq!(out, vec![vec![9]]);
    }
}
