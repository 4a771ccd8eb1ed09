//! A tiny streaming RESP value counter, private to the adapter.
//!
//! SEAM: this exists only until `meltemi_codec::redis::decode_request` lands. The adapter needs
//! exactly one thing from it: "feed these bytes (in any split), tell me how many whole top-level
//! values ended inside them". When the codec is ready, replace [`RespCounter`] behind the same
//! [`ValueCounter`] trait: keep a module-owned buffer for a partial frame (copy only the
//! straddling part, per STYLE "Adapters"), call `decode_request` on it until `NeedMore`, and
//! count the frames. Nothing else in the crate depends on how values are found.
//!
//! It walks bytes once with no buffering (the network filter is a pass-through and never holds
//! Envoy's data), understands RESP2/RESP3 type prefixes and inline commands, and stops counting
//! (rather than guessing) on the first structural error.

/// Counts whole top-level values in a byte stream delivered in arbitrary pieces.
pub trait ValueCounter {
    /// Feeds the next bytes of the stream; returns how many top-level values completed in them.
    fn feed(&mut self, bytes: &[u8]) -> u64;
    /// True once the stream was found not to be RESP; no further values are counted.
    fn broken(&self) -> bool;
}

/// Nesting deeper than this is treated as broken structure (commands are flat arrays).
const MAX_DEPTH: usize = 32;
/// Longest header line (`*<n>\r\n`, `$<n>\r\n`, simple strings) or inline command we walk.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the first byte of a value.
    Type,
    /// Inside a header line whose type byte was `kind`; `value`/`neg`/`digits` parse its integer.
    Line {
        kind: u8,
        value: i64,
        neg: bool,
        digits: u32,
        len: usize,
    },
    /// Skipping an inline command (a top-level line not starting with a type byte).
    Inline { len: usize },
    /// Skipping `remaining` bytes of a bulk payload, including its trailing CRLF.
    Bulk { remaining: u64 },
    /// Not RESP: counting stopped.
    Broken,
}

/// The private streaming counter (see the module docs for the seam).
#[derive(Debug, Clone)]
pub struct RespCounter {
    state: State,
    /// Elements still expected by each open aggregate, innermost last.
    stack: Vec<u64>,
}

impl Default for RespCounter {
    fn default() -> Self {
        RespCounter {
            state: State::Type,
            stack: Vec::new(),
        }
    }
}

impl RespCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// One value ended: close every aggregate it completes; count a finished top-level value.
    fn value_done(&mut self) -> u64 {
        loop {
            match self.stack.last_mut() {
                None => return 1,
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        return 0;
                    }
                    self.stack.pop();
                }
            }
        }
    }

    /// A header line ended; returns completed top-level values.
    fn line_done(&mut self, kind: u8, value: i64, digits: u32) -> u64 {
        match kind {
            // Aggregates: array, set, push, map (2 elements per entry), attribute (skipped as map).
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                if digits == 0 {
                    self.state = State::Broken;
                    return 0;
                }
                let n = if kind == b'%' || kind == b'|' {
                    value.saturating_mul(2)
                } else {
                    value
                };
                self.state = State::Type;
                if n <= 0 {
                    // Empty or null aggregate: a complete value already.
                    return self.value_done();
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.state = State::Broken;
                    return 0;
                }
                self.stack.push(n as u64);
                0
            }
            // Length-prefixed: bulk string, bulk error, verbatim string.
            b'$' | b'!' | b'=' => {
                if digits == 0 {
                    self.state = State::Broken;
                    return 0;
                }
                if value < 0 {
                    self.state = State::Type;
                    return self.value_done();
                }
                self.state = State::Bulk {
                    remaining: value as u64 + 2,
                };
                0
            }
            // Single-line values.
            _ => {
                self.state = State::Type;
                self.value_done()
            }
        }
    }
}

impl ValueCounter for RespCounter {
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        let mut done = 0u64;
        let mut i = 0usize;
        while i < bytes.len() {
            match self.state {
                State::Broken => return done,
                State::Type => {
                    let b = bytes[i];
                    i += 1;
                    match b {
                        b'*' | b'~' | b'>' | b'%' | b'|' | b'$' | b'!' | b'=' | b'+' | b'-'
                        | b':' | b'_' | b'#' | b',' | b'(' => {
                            self.state = State::Line {
                                kind: b,
                                value: 0,
                                neg: false,
                                digits: 0,
                                len: 0,
                            };
                        }
                        // Stray line ends between inline commands.
                        b'\r' | b'\n' if self.stack.is_empty() => {}
                        _ if self.stack.is_empty() => self.state = State::Inline { len: 1 },
                        _ => self.state = State::Broken,
                    }
                }
                State::Inline { len } => {
                    // Skip to the end of the line in one scan.
                    match bytes[i..].iter().position(|&b| b == b'\n') {
                        Some(p) => {
                            i += p + 1;
                            self.state = State::Type;
                            done += self.value_done();
                        }
                        None => {
                            let len = len + (bytes.len() - i);
                            i = bytes.len();
                            self.state = if len > MAX_LINE {
                                State::Broken
                            } else {
                                State::Inline { len }
                            };
                        }
                    }
                }
                State::Bulk { remaining } => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    let remaining = remaining - take;
                    if remaining == 0 {
                        self.state = State::Type;
                        done += self.value_done();
                    } else {
                        self.state = State::Bulk { remaining };
                    }
                }
                State::Line {
                    kind,
                    mut value,
                    mut neg,
                    mut digits,
                    mut len,
                } => {
                    let b = bytes[i];
                    i += 1;
                    len += 1;
                    if len > MAX_LINE {
                        self.state = State::Broken;
                        continue;
                    }
                    let numeric =
                        matches!(kind, b'*' | b'~' | b'>' | b'%' | b'|' | b'$' | b'!' | b'=');
                    if b == b'\n' {
                        done += self.line_done(kind, if neg { -value } else { value }, digits);
                        continue;
                    }
                    if numeric {
                        match b {
                            b'-' if digits == 0 && !neg => neg = true,
                            b'0'..=b'9' => {
                                digits += 1;
                                value = match value
                                    .checked_mul(10)
                                    .and_then(|v| v.checked_add(i64::from(b - b'0')))
                                {
                                    Some(v) => v,
                                    None => {
                                        self.state = State::Broken;
                                        continue;
                                    }
                                };
                            }
                            b'\r' => {}
                            _ => {
                                self.state = State::Broken;
                                continue;
                            }
                        }
                    }
                    self.state = State::Line {
                        kind,
                        value,
                        neg,
                        digits,
                        len,
                    };
                }
            }
        }
        done
    }

    fn broken(&self) -> bool {
        self.state == State::Broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n";
    const GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n";

    #[test]
    fn counts_whole_commands() {
        let mut c = RespCounter::new();
        assert_eq!(c.feed(SET), 1);
        assert_eq!(c.feed(GET), 1);
        let both = [SET, GET].concat();
        assert_eq!(RespCounter::new().feed(&both), 2);
    }

    #[test]
    fn every_split_point_counts_the_same() {
        let both = [SET, GET, b"PING\r\n".as_slice()].concat();
        for cut in 0..=both.len() {
            let mut c = RespCounter::new();
            let n = c.feed(&both[..cut]) + c.feed(&both[cut..]);
            assert_eq!(n, 3, "cut at {cut}");
            assert!(!c.broken());
        }
        // Byte by byte.
        let mut c = RespCounter::new();
        let n: u64 = both.iter().map(|b| c.feed(std::slice::from_ref(b))).sum();
        assert_eq!(n, 3);
    }

    #[test]
    fn replies_and_nulls() {
        let mut c = RespCounter::new();
        assert_eq!(
            c.feed(b"+PONG\r\n$-1\r\n*0\r\n:12\r\n*2\r\n*1\r\n+a\r\n$1\r\nb\r\n"),
            5
        );
        assert_eq!(c.feed(b"%1\r\n+k\r\n+v\r\n"), 1);
    }

    #[test]
    fn bulk_payload_may_contain_crlf_and_type_bytes() {
        let mut c = RespCounter::new();
        assert_eq!(c.feed(b"*1\r\n$6\r\n*\r\n$\r\n\r\n"), 1);
        assert!(!c.broken());
    }

    #[test]
    fn garbage_inside_an_aggregate_stops_counting() {
        let mut c = RespCounter::new();
        assert_eq!(c.feed(b"*2\r\nxx\r\n"), 0);
        assert!(c.broken());
        assert_eq!(c.feed(SET), 0);
        let mut c = RespCounter::new();
        assert_eq!(c.feed(b"*x\r\n"), 0);
        assert!(c.broken());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        let mut c = RespCounter::new();
        c.feed(&deep);
        assert!(c.broken());
    }
}
