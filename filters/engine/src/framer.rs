//! Splits one direction of a byte stream into whole frames, holding a bounded number of bytes.
//!
//! The adapters let traffic pass untouched, so the host does not keep bytes for us: the framer
//! decodes straight from each chunk the host hands over and copies only the start of a frame
//! that straddles two chunks. It never re-parses a partial frame before the codec's "need" is
//! met, and holding doubles per attempt, so a frame is re-parsed O(log n) times at most.
//!
//! Memory is bounded by `cap` (the configuration's `maxHeldBytes`), not by the largest frame:
//! a frame that would need more than `cap` bytes held is decoded from its head (the first
//! bytes, where every field that metrics use sits) and the rest of it is counted past without
//! being copied, by length ([`Step::Skip`]) or by a protocol's resumable walk
//! ([`Step::Stream`], RESP, whose frames carry no total length).

use meltemi_codec::{Decoded, Need};

/// What a protocol's decoder made of the bytes at a frame boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A whole frame of this many bytes (at most the bytes given).
    Frame(usize),
    /// Not enough bytes yet.
    Need(Need),
    /// Head mode: the frame was accounted for from its head; it is this many bytes long in
    /// all (more than were given): the rest is passed by.
    Skip(usize),
    /// Head mode: the frame was accounted for and the decoder's own resumable walk has taken
    /// every byte given; later bytes go to [`FrameDecoder::stream`] until it finds the end.
    Stream,
}

impl From<Decoded<()>> for Step {
    #[inline]
    fn from(d: Decoded<()>) -> Step {
        match d {
            Decoded::Frame { used, .. } => Step::Frame(used),
            Decoded::NeedMore(n) => Step::Need(n),
        }
    }
}

/// A protocol's decoder as the framer drives it.
pub(crate) trait FrameDecoder {
    /// The decoder's error.
    type Error;
    /// Decodes (and accounts for) the frame at the start of `buf`.
    fn frame(&mut self, buf: &[u8]) -> Result<Step, Self::Error>;
    /// Head mode: `buf` is the start of a frame that needs more than `cap` bytes held. Account
    /// for it from these bytes and return [`Step::Skip`] or [`Step::Stream`]; or ask for more
    /// with [`Step::Need`] (`last` is false, and at most `cap` bytes will be given); when
    /// `last` is true no more bytes will be held and the decoder must decide or fail.
    fn head(&mut self, buf: &[u8], last: bool) -> Result<Step, Self::Error>;
    /// Head mode, [`Step::Stream`]: the next bytes of the frame; `Some(used)` when the frame
    /// ends `used` bytes into `data`.
    fn stream(&mut self, data: &[u8]) -> Result<Option<usize>, Self::Error>;
}

/// A decoder given as a closure, for streams whose frames are never too big to hold (the
/// routing path's unframed replies, tests).
pub(crate) struct Whole<F>(pub(crate) F);

impl<E, F: FnMut(&[u8]) -> Result<Decoded<()>, E>> FrameDecoder for Whole<F> {
    type Error = E;
    #[inline]
    fn frame(&mut self, buf: &[u8]) -> Result<Step, E> {
        (self.0)(buf).map(Step::from)
    }
    fn head(&mut self, buf: &[u8], _last: bool) -> Result<Step, E> {
        // Never called with an unbounded cap; were it, hold on.
        (self.0)(buf).map(Step::from)
    }
    fn stream(&mut self, _data: &[u8]) -> Result<Option<usize>, E> {
        Ok(None)
    }
}

/// Why the framer stopped: the decoder's error, or a head that does not fit the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError<E> {
    /// The decoder refused the bytes.
    Decode(E),
    /// The decoder asked for more than `cap` bytes in head mode (its fields do not fit).
    HeadTooLarge {
        /// The bytes asked for.
        need: usize,
    },
}

impl<E> From<E> for FrameError<E> {
    fn from(e: E) -> Self {
        FrameError::Decode(e)
    }
}

/// One direction's framing state.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// The start of a frame that arrived incomplete.
    pending: Vec<u8>,
    /// Total bytes (from the start of `pending`) the codec asked for before trying again.
    need: usize,
    /// `need` is only a lower bound (the codec does not know the frame's length yet).
    bound: bool,
    /// The pending frame is in head mode (it needs more than the cap).
    heading: bool,
    /// Bytes of the current frame still to pass by (head mode, known length).
    skip: u64,
    /// The decoder's resumable walk owns the current frame (head mode, RESP).
    streaming: bool,
    /// Frames decoded from their head (too big to hold).
    headed: u64,
}

impl Framer {
    /// Bytes held for an incomplete frame.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Frames decoded from their head so far (too big to hold whole).
    pub(crate) fn headed(&self) -> u64 {
        self.headed
    }

    /// Feeds `data` to a decoder whose frames are held whole, however big (the caller bounds
    /// them: the routing path's unframed replies, by `max_frame` and the worker's budget).
    pub(crate) fn feed<E>(
        &mut self,
        data: &[u8],
        decode: impl FnMut(&[u8]) -> Result<Decoded<()>, E>,
    ) -> Result<(), FrameError<E>> {
        self.feed_capped(data, usize::MAX, &mut Whole(decode))
    }

    /// Feeds `data`, holding at most `cap` bytes (see the module docs). An error stops
    /// framing and is returned (the rest of `data` is not looked at).
    pub(crate) fn feed_capped<D: FrameDecoder>(
        &mut self,
        mut data: &[u8],
        cap: usize,
        d: &mut D,
    ) -> Result<(), FrameError<D::Error>> {
        let cap = cap.max(1);
        loop {
            if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
            }
            if self.streaming && !data.is_empty() {
                match d.stream(data)? {
                    Some(used) => {
                        self.streaming = false;
                        data = &data[used.min(data.len())..];
                    }
                    None => return Ok(()),
                }
            }
            if data.is_empty() {
                return Ok(());
            }
            if !self.pending.is_empty() {
                data = self.finish_pending(data, cap, d)?;
                if !self.pending.is_empty() || self.skip > 0 || self.streaming {
                    // Waiting for more, or passing a frame by: loop handles the rest of data.
                    if data.is_empty() {
                        return Ok(());
                    }
                    continue;
                }
                continue;
            }
            // Decode in place.
            match d.frame(data)? {
                Step::Frame(used) => data = &data[used.clamp(1, data.len())..],
                Step::Need(n) if n.bytes() > cap => {
                    self.heading = true;
                    data = self.head_step(data, data.len() >= cap, cap, d, true)?;
                }
                Step::Need(n) => {
                    self.need = need_bytes(n, data.len());
                    self.bound = matches!(n, Need::AtLeast(_));
                    self.hold(data);
                    return Ok(());
                }
                Step::Skip(total) => {
                    self.skip = (total.saturating_sub(data.len())) as u64;
                    data = &data[total.min(data.len())..];
                }
                Step::Stream => {
                    self.streaming = true;
                    return Ok(());
                }
            }
        }
    }

    /// Tops up the held frame from `data` and decodes it; returns what is left of `data`.
    fn finish_pending<'d, D: FrameDecoder>(
        &mut self,
        mut data: &'d [u8],
        cap: usize,
        d: &mut D,
    ) -> Result<&'d [u8], FrameError<D::Error>> {
        // Take what the codec asked for; when that is only a lower bound, take as much again
        // as is held when it is at hand: a codec that can bound a frame only field by field
        // (unframed Thrift walks a struct) then re-parses a big frame O(log n) times instead
        // of once per field. A known length is taken exactly, so the frames after it are
        // decoded in place, not copied. Never more than `cap` is held.
        let held = self.pending.len();
        let mut want = self.need.saturating_sub(held);
        if self.bound {
            want = want.max(held);
        }
        let take = want.min(data.len()).min(cap.saturating_sub(held));
        self.pending.extend_from_slice(&data[..take]);
        data = &data[take..];
        if self.pending.len() < self.need.min(cap) {
            return Ok(data);
        }
        let full = self.pending.len() >= cap;
        if self.heading {
            let buf = std::mem::take(&mut self.pending);
            let r = self.head_step(&buf, full, cap, d, false).map(|_| ());
            self.recycle(buf);
            r?;
            return Ok(data);
        }
        // Every whole frame now held (bytes past `need` may hold several).
        loop {
            match d.frame(&self.pending)? {
                Step::Frame(used) => {
                    self.pending.drain(..used.clamp(1, self.pending.len()));
                    self.need = self.pending.len() + 1;
                    self.bound = true;
                    if self.pending.is_empty() {
                        break;
                    }
                }
                Step::Need(n) if n.bytes() > cap => {
                    self.heading = true;
                    let buf = std::mem::take(&mut self.pending);
                    let r = self.head_step(&buf, full, cap, d, false).map(|_| ());
                    self.recycle(buf);
                    r?;
                    break;
                }
                Step::Need(n) => {
                    self.need = need_bytes(n, self.pending.len());
                    self.bound = matches!(n, Need::AtLeast(_));
                    break;
                }
                Step::Skip(total) => {
                    let have = self.pending.len();
                    self.pending.clear();
                    self.skip = total.saturating_sub(have) as u64;
                    break;
                }
                Step::Stream => {
                    self.pending.clear();
                    self.streaming = true;
                    break;
                }
            }
        }
        Ok(data)
    }

    /// Runs the head decode on `buf` (the start of a frame too big to hold; in place when
    /// `in_place`, else the held bytes, taken out of `pending`). Returns the unconsumed rest
    /// of `buf` for an in-place call (empty otherwise).
    fn head_step<'b, D: FrameDecoder>(
        &mut self,
        buf: &'b [u8],
        last: bool,
        cap: usize,
        d: &mut D,
        in_place: bool,
    ) -> Result<&'b [u8], FrameError<D::Error>> {
        let step = d.head(&buf[..buf.len().min(cap)], last)?;
        if matches!(step, Step::Skip(_) | Step::Stream) {
            self.headed += 1;
        }
        match step {
            Step::Skip(total) => {
                self.heading = false;
                let seen = buf.len().min(total);
                self.skip = (total - seen) as u64;
                Ok(if in_place { &buf[seen..] } else { &[] })
            }
            Step::Stream => {
                self.heading = false;
                self.streaming = true;
                if in_place && buf.len() > cap {
                    // The walk saw only `cap` bytes: hand it the rest.
                    match d.stream(&buf[cap..])? {
                        Some(used) => {
                            self.streaming = false;
                            return Ok(&buf[cap + used.min(buf.len() - cap)..]);
                        }
                        None => return Ok(&[]),
                    }
                }
                Ok(&[])
            }
            Step::Frame(used) => {
                // The decoder found a whole frame after all (it fits).
                self.heading = false;
                if in_place {
                    Ok(&buf[used.clamp(1, buf.len())..])
                } else {
                    self.pending
                        .extend_from_slice(&buf[used.clamp(1, buf.len())..]);
                    self.need = self.pending.len() + 1;
                    self.bound = true;
                    Ok(&[])
                }
            }
            Step::Need(n) => {
                let need = n.bytes();
                if last || need > cap {
                    return Err(FrameError::HeadTooLarge { need });
                }
                self.need = need_bytes(n, buf.len().min(cap));
                self.bound = true;
                self.hold(&buf[..buf.len().min(cap)]);
                if in_place && buf.len() > cap {
                    // Unreachable: `last` is true whenever `cap` bytes are at hand.
                    return Err(FrameError::HeadTooLarge { need });
                }
                Ok(&[])
            }
        }
    }

    fn hold(&mut self, data: &[u8]) {
        self.pending.clear();
        self.pending.extend_from_slice(data);
    }

    /// Keeps the allocation of a buffer taken out of `pending` (when nothing was held since).
    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.pending.is_empty() {
            buf.clear();
            if buf.capacity() > self.pending.capacity() {
                self.pending = buf;
            }
        }
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
