//! On-demand walks over request bodies: the topics (and their partitions) of Produce and Fetch.
//!
//! Field layouts from apache/kafka `ProduceRequest.json` (v0-13) and `FetchRequest.json`
//! (v0-18): Produce v3+ adds the transactional id; v9+ and Fetch v12+ are flexible (compact
//! strings and arrays, a tagged-field section closing every struct); Produce v13+ and Fetch
//! v13+ name topics by a 16-byte topic id instead of by name.

use super::{ApiKey, Error, Request, TaggedFields};

/// A bounds-checked reader over part of a frame; errors carry offsets from the frame start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the frame.
    base: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        match self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
        {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Error::Truncated {
                field,
                offset: self.offset(),
            }),
        }
    }

    #[inline]
    pub(crate) fn skip(&mut self, n: usize, field: &'static str) -> Result<(), Error> {
        self.take(n, field).map(|_| ())
    }

    #[inline]
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, Error> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    #[inline]
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, Error> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub(crate) fn uuid(&mut self, field: &'static str) -> Result<[u8; 16], Error> {
        let b = self.take(16, field)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(b);
        Ok(id)
    }

    /// An unsigned varint of at most 32 bits.
    #[inline]
    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32, Error> {
        let start = self.offset();
        let mut v: u32 = 0;
        for i in 0..5 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(Error::Truncated {
                    field,
                    offset: start,
                });
            };
            self.pos += 1;
            if i == 4 && b > 0x0f {
                return Err(Error::BadLength {
                    field,
                    offset: start,
                });
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::BadLength {
            field,
            offset: start,
        })
    }

    /// A nullable string: int16 length (-1 null) or, flexible, uvarint length+1 (0 null).
    pub(crate) fn nullable_string(
        &mut self,
        flexible: bool,
        field: &'static str,
    ) -> Result<Option<&'a str>, Error> {
        let at = self.offset();
        let len = if flexible {
            match self.uvarint(field)? {
                0 => return Ok(None),
                n => (n - 1) as usize,
            }
        } else {
            match self.i16(field)? {
                -1 => return Ok(None),
                n if n < 0 => return Err(Error::BadLength { field, offset: at }),
                n => n as usize,
            }
        };
        let start = self.offset();
        let s = self.take(len, field)?;
        match core::str::from_utf8(s) {
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(Error::InvalidUtf8 {
                field,
                offset: start,
            }),
        }
    }

    /// A non-nullable string.
    pub(crate) fn string(&mut self, flexible: bool, field: &'static str) -> Result<&'a str, Error> {
        let at = self.offset();
        self.nullable_string(flexible, field)?
            .ok_or(Error::BadLength { field, offset: at })
    }

    /// Skips nullable bytes (or records): int32 length (-1 null) or uvarint length+1.
    pub(crate) fn skip_nullable_bytes(
        &mut self,
        flexible: bool,
        field: &'static str,
    ) -> Result<(), Error> {
        let at = self.offset();
        let len = if flexible {
            match self.uvarint(field)? {
                0 => return Ok(()),
                n => (n - 1) as usize,
            }
        } else {
            match self.i32(field)? {
                -1 => return Ok(()),
                n if n < 0 => return Err(Error::BadLength { field, offset: at }),
                n => n as usize,
            }
        };
        self.skip(len, field)
    }

    /// An array count (null counts as 0), checked against the bytes left: every element takes
    /// at least `min_elem` bytes.
    pub(crate) fn array_len(
        &mut self,
        flexible: bool,
        min_elem: usize,
        field: &'static str,
    ) -> Result<u32, Error> {
        let at = self.offset();
        let n = if flexible {
            match self.uvarint(field)? {
                0 => 0,
                n => n - 1,
            }
        } else {
            match self.i32(field)? {
                -1 => 0,
                n if n < 0 => return Err(Error::BadLength { field, offset: at }),
                n => n as u32,
            }
        };
        if (n as usize).saturating_mul(min_elem) > self.remaining() {
            return Err(Error::CountTooLarge {
                field,
                offset: at,
                count: n,
            });
        }
        Ok(n)
    }

    /// Skips a tagged-field section.
    #[inline]
    pub(crate) fn skip_tagged(&mut self) -> Result<(), Error> {
        if self.buf.get(self.pos) == Some(&0) {
            self.pos += 1;
            return Ok(());
        }
        let (_, end) = tagged_fields(self.buf, self.pos, self.base)?;
        self.pos = end;
        Ok(())
    }
}

/// Parses a tagged-field section at `pos` of `frame`: returns it and the offset after it.
/// Every field takes at least two bytes (tag and size), so the count is checked against that.
/// `base` is the frame offset of `frame[0]`, for error offsets.
pub(crate) fn tagged_fields(
    frame: &[u8],
    pos: usize,
    base: usize,
) -> Result<(TaggedFields<'_>, usize), Error> {
    let mut r = Reader::new(frame, base);
    r.pos = pos;
    let count = r.uvarint("tagged_fields")?;
    if (count as usize).saturating_mul(2) > r.remaining() {
        return Err(Error::CountTooLarge {
            field: "tagged_fields",
            offset: base + pos,
            count,
        });
    }
    let start = r.pos;
    for _ in 0..count {
        r.uvarint("tag")?;
        let size = r.uvarint("tag size")?;
        r.skip(size as usize, "tag value")?;
    }
    Ok((
        TaggedFields {
            count,
            raw: &frame[start..r.pos],
        },
        r.pos,
    ))
}

/// How a topic names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRef<'a> {
    /// By name (Produce v0-12, Fetch v0-12).
    Name(&'a str),
    /// By topic id (Produce v13+, Fetch v13+): the 16 bytes of the UUID.
    Id([u8; 16]),
}

/// Which request's partition layout to skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Produce,
    Fetch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    kind: Kind,
    version: i16,
    flexible: bool,
}

impl Layout {
    /// Bytes of one partition entry before its variable part (Produce records) or tags.
    #[inline]
    fn partition_fixed(&self) -> usize {
        match self.kind {
            Kind::Produce => 4,
            Kind::Fetch => {
                let v = self.version;
                4 + if v >= 9 { 4 } else { 0 }
                    + 8
                    + if v >= 12 { 4 } else { 0 }
                    + if v >= 5 { 8 } else { 0 }
                    + 4
            }
        }
    }

    /// Smallest encoding of one partition entry.
    #[inline]
    fn partition_min(&self) -> usize {
        let f = self.partition_fixed();
        match (self.kind, self.flexible) {
            (Kind::Produce, false) => f + 4,
            (Kind::Produce, true) => f + 2,
            (Kind::Fetch, false) => f,
            (Kind::Fetch, true) => f + 1,
        }
    }

    /// Smallest encoding of one topic entry.
    #[inline]
    fn topic_min(&self) -> usize {
        let name = if self.version >= 13 {
            16
        } else if self.flexible {
            1
        } else {
            2
        };
        name + if self.flexible { 2 } else { 4 }
    }

    #[inline]
    fn by_id(&self) -> bool {
        self.version >= 13
    }

    /// Reads one partition entry, returns its index.
    #[inline]
    fn partition(&self, r: &mut Reader<'_>) -> Result<i32, Error> {
        let index = r.i32("partition")?;
        match self.kind {
            Kind::Produce => r.skip_nullable_bytes(self.flexible, "records")?,
            Kind::Fetch => r.skip(self.partition_fixed() - 4, "fetch partition")?,
        }
        if self.flexible {
            r.skip_tagged()?;
        }
        Ok(index)
    }
}

/// The topics of a Produce or Fetch request, in request order. Yields an error (once, then
/// stops) if the body is malformed.
#[derive(Debug, Clone)]
pub struct Topics<'a> {
    r: Reader<'a>,
    layout: Layout,
    /// Topics left; `None` until the body prefix is read.
    left: Option<u32>,
    failed: bool,
}

/// One topic of a Produce or Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEntry<'a> {
    /// The topic's name or id.
    pub topic: TopicRef<'a>,
    /// Its partitions.
    pub partitions: Partitions<'a>,
}

/// The partition indexes of one topic entry (already validated by [`Topics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions<'a> {
    r: Reader<'a>,
    layout: Layout,
    left: u32,
}

impl Partitions<'_> {
    /// Number of partitions left.
    pub fn len(&self) -> usize {
        self.left as usize
    }

    /// Whether no partitions are left.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl Iterator for Partitions<'_> {
    type Item = i32;

    fn next(&mut self) -> Option<i32> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.layout.partition(&mut self.r).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

pub(crate) fn topics<'a>(req: &Request<'a>) -> Option<Topics<'a>> {
    let h = &req.header;
    let kind = match h.api_key {
        ApiKey::Produce => Kind::Produce,
        ApiKey::Fetch => Kind::Fetch,
        _ => return None,
    };
    let layout = Layout {
        kind,
        version: h.api_version,
        flexible: h.api_key.is_flexible(h.api_version),
    };
    Some(Topics {
        r: Reader::new(req.body, req.body_offset),
        layout,
        left: None,
        failed: false,
    })
}

pub(crate) fn produce_acks(req: &Request<'_>) -> Option<i16> {
    let h = &req.header;
    if h.api_key != ApiKey::Produce {
        return None;
    }
    let mut r = Reader::new(req.body, req.body_offset);
    if h.api_version >= 3 {
        r.nullable_string(h.api_key.is_flexible(h.api_version), "transactional_id")
            .ok()?;
    }
    r.i16("acks").ok()
}

impl<'a> Topics<'a> {
    fn start(&mut self) -> Result<u32, Error> {
        let l = self.layout;
        let r = &mut self.r;
        match l.kind {
            Kind::Produce => {
                if l.version >= 3 {
                    r.nullable_string(l.flexible, "transactional_id")?;
                }
                r.skip(6, "acks and timeout")?;
            }
            Kind::Fetch => {
                let v = l.version;
                // ReplicaId (0-14), MaxWaitMs, MinBytes, MaxBytes (3+), IsolationLevel (4+),
                // SessionId and SessionEpoch (7+).
                let fixed = if v <= 14 { 4 } else { 0 }
                    + 8
                    + if v >= 3 { 4 } else { 0 }
                    + if v >= 4 { 1 } else { 0 }
                    + if v >= 7 { 8 } else { 0 };
                r.skip(fixed, "fetch fields")?;
            }
        }
        r.array_len(l.flexible, l.topic_min(), "topics")
    }

    fn entry(&mut self) -> Result<TopicEntry<'a>, Error> {
        let l = self.layout;
        let r = &mut self.r;
        let topic = if l.by_id() {
            TopicRef::Id(r.uuid("topic_id")?)
        } else {
            TopicRef::Name(r.string(l.flexible, "topic")?)
        };
        let count = r.array_len(l.flexible, l.partition_min(), "partitions")?;
        let start = *r;
        for _ in 0..count {
            l.partition(r)?;
        }
        if l.flexible {
            r.skip_tagged()?;
        }
        Ok(TopicEntry {
            topic,
            partitions: Partitions {
                r: start,
                layout: l,
                left: count,
            },
        })
    }
}

impl<'a> Iterator for Topics<'a> {
    type Item = Result<TopicEntry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let left = match self.left {
            Some(n) => n,
            None => match self.start() {
                Ok(n) => n,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            },
        };
        if left == 0 {
            self.left = Some(0);
            return None;
        }
        self.left = Some(left - 1);
        match self.entry() {
            Ok(t) => Some(Ok(t)),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
