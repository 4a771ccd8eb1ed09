//! Walking a RESP value too big to hold: chunk by chunk, keeping only a few counters.
//!
//! RESP frames carry no total length (an array's elements each carry their own), so a filter
//! that will not hold a big value (a `SET` of a 50 MiB blob, an `LRANGE` of a million items)
//! finds its end by walking it as it passes: [`Skipper::feed`] takes each chunk and says where
//! the value ended. The state is the open aggregates' counts of values still owed (at most
//! `max_depth`), the bytes left of the current blob, and a partial length line: nothing of the
//! value is copied. Read the head of the value first with [`request_head`] / [`reply_head`].
//!
//! The walk checks structure as far as framing needs (type bytes, lengths, counts, depth,
//! `max_frame`); it does not check what a whole decode checks inside scalars (booleans, nulls,
//! verbatim prefixes). RESP3 streamed strings and aggregates (`$?`, `*?`) are refused: no server
//! sends them today.

use super::{Command, Error};
use crate::{Decoded, Limits, Need};

/// Deepest nesting a skipper can follow (the codec's default `max_depth`).
const MAX_STACK: usize = 32;

/// A number line may be this long (sign, 19 digits); longer is [`Error::BadInteger`].
const MAX_DIGITS: u8 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// `+ - : _ # , (`: skip to the line end.
    Simple,
    /// `$ ! =`: a blob length.
    Blob,
    /// `* ~ >` (one value per count) or `% |` (two).
    Aggregate { per: u8, attribute: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the type byte of a value.
    Type,
    /// In a header line.
    Line {
        line: Line,
        value: u64,
        digits: u8,
        negative: bool,
    },
    /// In a blob: bytes left, its CRLF included.
    Blob(u64),
    /// An inline request: to its `\n`.
    Inline,
}

/// Walks one RESP value across chunks (see the module docs).
#[derive(Debug, Clone)]
pub struct Skipper {
    /// Values still owed per open level; level 0 is the frame itself (owes one).
    owed: [u64; MAX_STACK + 1],
    depth: usize,
    state: State,
    /// Bytes walked so far (from the frame's start).
    walked: u64,
    max_frame: u64,
    max_depth: usize,
    done: bool,
}

impl Skipper {
    fn new(limits: &Limits, state: State) -> Self {
        let mut owed = [0; MAX_STACK + 1];
        owed[0] = 1;
        Skipper {
            owed,
            depth: 1,
            state,
            walked: 0,
            max_frame: limits.max_frame as u64,
            max_depth: limits.max_depth.min(MAX_STACK),
            done: false,
        }
    }

    /// A walker for one client request (multibulk, or inline when it does not start with `*`).
    pub fn request(first: u8, limits: &Limits) -> Self {
        let state = if first == b'*' {
            State::Type
        } else {
            State::Inline
        };
        Skipper::new(limits, state)
    }

    /// A walker for one server reply (any RESP2/RESP3 value).
    pub fn reply(limits: &Limits) -> Self {
        Skipper::new(limits, State::Type)
    }

    /// Bytes walked so far.
    pub fn walked(&self) -> u64 {
        self.walked
    }

    /// Takes the next bytes of the value; `Some(used)` when it ended `used` bytes into `data`
    /// (the bytes after it belong to the next frame). After that the skipper is spent.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, Error> {
        let mut i = 0;
        while i < data.len() && !self.done {
            let at = (self.walked + i as u64) as usize;
            match self.state {
                State::Type => {
                    let line = match data[i] {
                        b'$' | b'!' | b'=' => Line::Blob,
                        b'*' | b'~' | b'>' => Line::Aggregate {
                            per: 1,
                            attribute: false,
                        },
                        b'%' => Line::Aggregate {
                            per: 2,
                            attribute: false,
                        },
                        b'|' => Line::Aggregate {
                            per: 2,
                            attribute: true,
                        },
                        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Line::Simple,
                        byte => return Err(Error::UnknownType { offset: at, byte }),
                    };
                    self.state = State::Line {
                        line,
                        value: 0,
                        digits: 0,
                        negative: false,
                    };
                    i += 1;
                }
                State::Line {
                    line: Line::Simple, ..
                }
                | State::Inline => match data[i..].iter().position(|&b| b == b'\n') {
                    Some(n) => {
                        i += n + 1;
                        self.value_done();
                    }
                    None => i = data.len(),
                },
                State::Line {
                    line,
                    ref mut value,
                    ref mut digits,
                    ref mut negative,
                } => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' if *digits < MAX_DIGITS => {
                            *value = value
                                .checked_mul(10)
                                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                                .ok_or(Error::BadInteger { offset: at })?;
                            *digits += 1;
                        }
                        b'-' if *digits == 0 && !*negative => *negative = true,
                        b'\r' if *digits > 0 => {}
                        b'\n' if *digits > 0 => {
                            let (n, neg) = (*value, *negative);
                            self.line_done(line, n, neg, at)?;
                        }
                        // `$?` / `*?`: streamed values are not walked.
                        b'?' => return Err(Error::Unexpected { offset: at }),
                        _ => return Err(Error::BadInteger { offset: at }),
                    }
                }
                State::Blob(left) => {
                    let n = left.min((data.len() - i) as u64);
                    i += n as usize;
                    if left == n {
                        self.value_done();
                    } else {
                        self.state = State::Blob(left - n);
                    }
                }
            }
        }
        self.walked += i as u64;
        if self.walked > self.max_frame {
            return Err(Error::FrameTooLarge {
                offset: 0,
                need: self.walked as usize,
                max: self.max_frame as usize,
            });
        }
        Ok(self.done.then_some(i))
    }

    fn line_done(&mut self, line: Line, n: u64, negative: bool, at: usize) -> Result<(), Error> {
        if negative && n != 1 {
            return Err(Error::BadLength { offset: at });
        }
        match line {
            Line::Simple => self.value_done(),
            Line::Blob if negative => self.value_done(),
            Line::Blob => {
                self.check_len(n.saturating_add(2), at)?;
                self.state = State::Blob(n + 2);
            }
            Line::Aggregate { per, attribute } => {
                let count = n.saturating_mul(u64::from(per));
                if attribute {
                    // An attribute map comes before the value it annotates: that value is
                    // still owed after it.
                    self.owed[self.depth - 1] += 1;
                }
                if negative || count == 0 {
                    self.value_done();
                } else {
                    self.check_len(count.saturating_mul(3), at)?;
                    if self.depth > self.max_depth {
                        return Err(Error::TooDeep {
                            offset: at,
                            max: self.max_depth,
                        });
                    }
                    self.owed[self.depth] = count;
                    self.depth += 1;
                    self.state = State::Type;
                }
            }
        }
        Ok(())
    }

    /// A value of at least `len` more bytes must fit under `max_frame`.
    fn check_len(&self, len: u64, at: usize) -> Result<(), Error> {
        let need = (at as u64).saturating_add(len);
        if need > self.max_frame {
            return Err(Error::FrameTooLarge {
                offset: at,
                need: need as usize,
                max: self.max_frame as usize,
            });
        }
        Ok(())
    }

    fn value_done(&mut self) {
        self.state = State::Type;
        while self.depth > 0 {
            let level = self.depth - 1;
            self.owed[level] -= 1;
            if self.owed[level] > 0 {
                return;
            }
            // The aggregate is complete: it is one value of its parent.
            self.depth -= 1;
        }
        self.done = true;
    }
}

/// Reads the command of the request whose first bytes are `buf` (head mode: the request may be
/// much longer). [`Need::AtLeast`] while the command name is cut.
pub fn request_head(buf: &[u8]) -> Result<Decoded<Command>, Error> {
    let more = Decoded::NeedMore(Need::AtLeast(buf.len() + 1));
    match buf.first() {
        None => Ok(more),
        Some(b'*') => {
            // `*<n>\r\n$<len>\r\n<name>\r\n`: the count and the first argument's length line.
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                return Ok(more);
            };
            let rest = &buf[nl + 1..];
            match rest.first() {
                None => return Ok(more),
                Some(b'$') => {}
                Some(&byte) => {
                    return Err(Error::ExpectedBulk {
                        offset: nl + 1,
                        byte,
                    })
                }
            }
            let Some(nl2) = rest.iter().position(|&b| b == b'\n') else {
                return Ok(more);
            };
            let len = std::str::from_utf8(rest[1..nl2].strip_suffix(b"\r").unwrap_or(&[]))
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or(Error::BadInteger { offset: nl + 2 })?;
            let name = rest
                .get(nl2 + 1..)
                .and_then(|r| r.get(..len))
                .map(Command::from_name);
            Ok(match name {
                Some(c) => Decoded::Frame {
                    frame: c,
                    used: buf.len(),
                },
                None => more,
            })
        }
        Some(_) => {
            // Inline: the first token of the line.
            let end = buf
                .iter()
                .position(|&b| b == b' ' || b == b'\t' || b == b'\r' || b == b'\n');
            Ok(match end {
                Some(e) => Decoded::Frame {
                    frame: Command::from_name(&buf[..e]),
                    used: buf.len(),
                },
                None => more,
            })
        }
    }
}

/// The type byte of the reply whose first bytes are `buf` (head mode): `-`/`!` are errors,
/// `>` a push.
pub fn reply_head(buf: &[u8]) -> Decoded<u8> {
    match buf.first() {
        Some(&b) => Decoded::Frame {
            frame: b,
            used: buf.len(),
        },
        None => Decoded::NeedMore(Need::AtLeast(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(mut s: Skipper, bytes: &[u8], cut: usize) -> Result<Option<usize>, Error> {
        let (a, b) = bytes.split_at(cut);
        match s.feed(a)? {
            Some(u) => Ok(Some(u)),
            None => Ok(s.feed(b)?.map(|u| u + a.len())),
        }
    }

    #[test]
    fn finds_the_end_at_every_cut() {
        let limits = Limits::default();
        let cases: [(&[u8], bool); 6] = [
            (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", true),
            (b"PING\r\n", true),
            (b"*2\r\n*1\r\n:1\r\n%1\r\n+a\r\n$-1\r\n", false),
            (b"|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\n", false),
            (b"*-1\r\n", false),
            (b">2\r\n+message\r\n$3\r\nabc\r\n", false),
        ];
        for (bytes, request) in cases {
            let mut stream = bytes.to_vec();
            stream.extend_from_slice(b"+NEXT\r\n");
            for cut in 0..=stream.len() {
                let s = if request {
                    Skipper::request(bytes[0], &limits)
                } else {
                    Skipper::reply(&limits)
                };
                let got = walk(s, &stream, cut).unwrap();
                assert_eq!(got, Some(bytes.len()), "{bytes:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_huge_blob_is_walked_without_holding_it() {
        let limits = Limits {
            max_frame: 1 << 30,
            max_depth: 32,
        };
        let mut s = Skipper::request(b'*', &limits);
        assert_eq!(
            s.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000000\r\n")
                .unwrap(),
            None
        );
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..95 {
            assert_eq!(s.feed(&chunk).unwrap(), None);
        }
        let mut tail = vec![b'x'; 100_000_000 - 95 * (1 << 20)];
        tail.extend_from_slice(b"\r\n*1");
        assert_eq!(s.feed(&tail).unwrap(), Some(tail.len() - 2));
    }

    #[test]
    fn broken_structure_and_limits_are_errors() {
        let limits = Limits {
            max_frame: 100,
            max_depth: 2,
        };
        assert!(Skipper::reply(&limits).feed(b"?oops\r\n").is_err());
        assert!(Skipper::reply(&limits).feed(b"$-2\r\n").is_err());
        assert!(Skipper::reply(&limits).feed(b"$1000\r\n").is_err());
        assert!(Skipper::reply(&limits).feed(b"$?\r\n").is_err());
        assert!(Skipper::reply(&limits)
            .feed(b"*1\r\n*1\r\n*1\r\n:1\r\n")
            .is_err());
        assert!(Skipper::reply(&limits).feed(b"*1x\r\n").is_err());
    }

    #[test]
    fn heads() {
        assert_eq!(
            request_head(b"*3\r\n$3\r\nset\r\n$1\r\nk"),
            Ok(Decoded::Frame {
                frame: Command::from_name(b"SET"),
                used: 18
            })
        );
        assert!(matches!(
            request_head(b"*3\r\n$3\r\nse"),
            Ok(Decoded::NeedMore(_))
        ));
        assert_eq!(
            request_head(b"GET k").map(|d| d.frame().map(|f| f.0)),
            Ok(Some(Command::from_name(b"GET")))
        );
        assert!(request_head(b"*3\r\n:3\r\n").is_err());
    }
}
