//! Locally generated Kafka error responses: the smallest valid response of the request's own
//! api version that carries an error code where the client looks for it.
//!
//! Layouts from apache/kafka `*Response.json` (and the matching `*Request.json` for the lists a
//! response must echo): where the response has a top-level ErrorCode it is set (and lists are
//! empty); where errors exist only per topic, partition, coordinator key or group, the response
//! echoes the request's entries, each with the error. Supported: ApiVersions v0-4 (and any
//! newer version answered as v0, as Kafka does), Metadata v0-13, Produce v0-13, Fetch v0-18,
//! FindCoordinator v0-6, JoinGroup v0-9, Heartbeat v0-4, OffsetCommit v0-9, OffsetFetch v0-9.
//!
//! The response is measured by a dry run first, so the caller's buffer grows once.

use super::body::Reader;
use super::{response_header_version, ApiKey, Error, Request};
use core::fmt;

/// Why an error response could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// No encoder for this api key.
    UnsupportedApi(ApiKey),
    /// No encoder for this version of the api.
    UnsupportedVersion {
        /// The api key.
        api_key: ApiKey,
        /// The version asked for.
        api_version: i16,
    },
    /// The request body the response must echo is malformed.
    Request(Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::UnsupportedApi(k) => {
                write!(
                    f,
                    "kafka: no error response encoder for {} ({})",
                    k.as_str(),
                    k.code()
                )
            }
            EncodeError::UnsupportedVersion {
                api_key,
                api_version,
            } => write!(
                f,
                "kafka: no error response encoder for {} v{api_version}",
                api_key.as_str()
            ),
            EncodeError::Request(e) => write!(f, "kafka: cannot echo the request: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<Error> for EncodeError {
    fn from(e: Error) -> Self {
        EncodeError::Request(e)
    }
}

/// Highest version each encoder knows.
fn max_version(api_key: ApiKey) -> Option<i16> {
    Some(match api_key {
        ApiKey::ApiVersions => i16::MAX,
        ApiKey::Metadata => 13,
        ApiKey::Produce => 13,
        ApiKey::Fetch => 18,
        ApiKey::FindCoordinator => 6,
        ApiKey::JoinGroup => 9,
        ApiKey::Heartbeat => 4,
        ApiKey::OffsetCommit => 9,
        ApiKey::OffsetFetch => 9,
        _ => return None,
    })
}

/// Appends to `out` a whole response frame (size prefix, response header, body) answering
/// `req` with `error_code`, and returns its length.
///
/// Produce requests with `acks == 0` get no response from a broker ([`Request::expects_response`]);
/// the caller should not send this one either.
pub fn encode_error_response(
    req: &Request<'_>,
    error_code: i16,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let h = &req.header;
    let max = max_version(h.api_key).ok_or(EncodeError::UnsupportedApi(h.api_key))?;
    if h.api_version < 0 || h.api_version > max {
        return Err(EncodeError::UnsupportedVersion {
            api_key: h.api_key,
            api_version: h.api_version,
        });
    }
    let mut count = Count(0);
    frame(&mut count, req, error_code)?;
    let n = count.0;
    let size = i32::try_from(n).map_err(|_| {
        EncodeError::Request(Error::FrameTooLarge {
            len: n,
            max: i32::MAX as usize,
        })
    })?;
    out.reserve(4 + n);
    let before = out.len();
    out.extend_from_slice(&size.to_be_bytes());
    frame(out, req, error_code)?;
    debug_assert_eq!(out.len() - before, 4 + n);
    Ok(4 + n)
}

trait Sink {
    fn put(&mut self, b: &[u8]);
}

struct Count(usize);

impl Sink for Count {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

/// A writer for one (flexible or not) message version.
struct W<'s, S: Sink> {
    s: &'s mut S,
    flex: bool,
}

impl<S: Sink> W<'_, S> {
    fn i8(&mut self, v: i8) {
        self.s.put(&v.to_be_bytes());
    }
    fn i16(&mut self, v: i16) {
        self.s.put(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.s.put(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.s.put(&v.to_be_bytes());
    }
    fn uvarint(&mut self, mut v: u32) {
        let mut b = [0u8; 5];
        let mut i = 0;
        while v >= 0x80 {
            b[i] = (v as u8) | 0x80;
            v >>= 7;
            i += 1;
        }
        b[i] = v as u8;
        self.s.put(&b[..=i]);
    }
    fn string(&mut self, v: &str) {
        if self.flex {
            self.uvarint(v.len() as u32 + 1);
        } else {
            self.i16(v.len() as i16);
        }
        self.s.put(v.as_bytes());
    }
    fn null_string(&mut self) {
        if self.flex {
            self.uvarint(0);
        } else {
            self.i16(-1);
        }
    }
    fn nullable_string(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.string(v),
            None => self.null_string(),
        }
    }
    /// Array length (also for nullable bytes, which share the encoding).
    fn len(&mut self, n: u32) {
        if self.flex {
            self.uvarint(n + 1);
        } else {
            self.i32(n as i32);
        }
    }
    /// A null array or null bytes.
    fn null(&mut self) {
        if self.flex {
            self.uvarint(0);
        } else {
            self.i32(-1);
        }
    }
    /// An empty tagged-field section (flexible versions only).
    fn tags(&mut self) {
        if self.flex {
            self.uvarint(0);
        }
    }
}

fn frame<S: Sink>(s: &mut S, req: &Request<'_>, err: i16) -> Result<(), EncodeError> {
    let h = &req.header;
    // ApiVersions newer than we know: answer as v0, which every client can read (KIP-511).
    let v = if h.api_key == ApiKey::ApiVersions && h.api_version > 4 {
        0
    } else {
        h.api_version
    };
    s.put(&h.correlation_id.to_be_bytes());
    if response_header_version(h.api_key, v) >= 1 {
        s.put(&[0]);
    }
    let mut w = W {
        s,
        flex: h.api_key.is_flexible(v),
    };
    let body = Reader::new(req.body, req.body_offset);
    match h.api_key {
        ApiKey::ApiVersions => {
            w.i16(err);
            w.len(0);
            if v >= 1 {
                w.i32(0);
            }
            w.tags();
        }
        ApiKey::Heartbeat => {
            if v >= 1 {
                w.i32(0);
            }
            w.i16(err);
            w.tags();
        }
        ApiKey::JoinGroup => {
            if v >= 2 {
                w.i32(0);
            }
            w.i16(err);
            w.i32(-1); // generation id
            if v >= 7 {
                w.null_string(); // protocol type
                w.null_string(); // protocol name
            } else {
                w.string("");
            }
            w.string(""); // leader
            if v >= 9 {
                w.i8(0); // skip assignment
            }
            w.string(""); // member id
            w.len(0); // members
            w.tags();
        }
        ApiKey::FindCoordinator => find_coordinator(&mut w, body, v, err)?,
        ApiKey::Metadata => metadata(&mut w, body, v, err)?,
        ApiKey::Produce | ApiKey::Fetch => produce_fetch(&mut w, req, v, err)?,
        ApiKey::OffsetCommit => offset_commit(&mut w, body, v, err)?,
        ApiKey::OffsetFetch => offset_fetch(&mut w, body, v, err)?,
        k => return Err(EncodeError::UnsupportedApi(k)),
    }
    Ok(())
}

fn find_coordinator<S: Sink>(
    w: &mut W<'_, S>,
    mut r: Reader<'_>,
    v: i16,
    err: i16,
) -> Result<(), EncodeError> {
    if v >= 1 {
        w.i32(0);
    }
    if v <= 3 {
        w.i16(err);
        if v >= 1 {
            w.null_string();
        }
        w.i32(-1);
        w.string("");
        w.i32(-1);
    } else {
        // Request v4+: KeyType int8, CoordinatorKeys []string; one coordinator per key.
        r.skip(1, "key_type")?;
        let n = r.array_len(true, 1, "coordinator_keys")?;
        w.len(n);
        for _ in 0..n {
            let key = r.string(true, "coordinator_key")?;
            w.string(key);
            w.i32(-1);
            w.string("");
            w.i32(-1);
            w.i16(err);
            w.null_string();
            w.tags();
        }
    }
    w.tags();
    Ok(())
}

fn metadata<S: Sink>(
    w: &mut W<'_, S>,
    mut r: Reader<'_>,
    v: i16,
    err: i16,
) -> Result<(), EncodeError> {
    let flex = w.flex;
    if v >= 3 {
        w.i32(0);
    }
    w.len(0); // brokers
    if v >= 2 {
        w.null_string(); // cluster id
    }
    if v >= 1 {
        w.i32(-1); // controller id
    }
    // Topics: one entry per requested topic, with the error (a null list asks for all topics:
    // answer none).
    let min = if v >= 10 {
        17
    } else if flex {
        1
    } else {
        2
    };
    let n = r.array_len(flex, min, "topics")?;
    w.len(n);
    for _ in 0..n {
        let id = if v >= 10 {
            Some(r.uuid("topic_id")?)
        } else {
            None
        };
        let name = if v >= 10 {
            r.nullable_string(flex, "topic")?
        } else {
            Some(r.string(flex, "topic")?)
        };
        if flex {
            r.skip_tagged()?;
        }
        w.i16(err);
        if v >= 12 {
            w.nullable_string(name);
        } else {
            w.string(name.unwrap_or(""));
        }
        if let Some(id) = id {
            w.s.put(&id);
        }
        if v >= 1 {
            w.i8(0); // is internal
        }
        w.len(0); // partitions
        if v >= 8 {
            w.i32(i32::MIN); // topic authorized operations
        }
        w.tags();
    }
    if (8..=10).contains(&v) {
        w.i32(i32::MIN); // cluster authorized operations
    }
    if v >= 13 {
        w.i16(err);
    }
    w.tags();
    Ok(())
}

fn produce_fetch<S: Sink>(
    w: &mut W<'_, S>,
    req: &Request<'_>,
    v: i16,
    err: i16,
) -> Result<(), EncodeError> {
    let fetch = req.header.api_key == ApiKey::Fetch;
    if fetch {
        if v >= 1 {
            w.i32(0);
        }
        if v >= 7 {
            w.i16(err);
            w.i32(0); // session id
        }
    }
    let topics = req
        .topics()
        .ok_or(EncodeError::UnsupportedApi(req.header.api_key))?;
    // Count first (validates the body), then write.
    let mut n = 0u32;
    for t in topics.clone() {
        t?;
        n += 1;
    }
    w.len(n);
    for t in topics {
        let t = t?;
        match t.topic {
            super::TopicRef::Name(name) => w.string(name),
            super::TopicRef::Id(id) => w.s.put(&id),
        }
        w.len(t.partitions.len() as u32);
        for p in t.partitions {
            w.i32(p);
            w.i16(err);
            if fetch {
                w.i64(-1); // high watermark
                if v >= 4 {
                    w.i64(-1); // last stable offset
                }
                if v >= 5 {
                    w.i64(-1); // log start offset
                }
                if v >= 4 {
                    w.null(); // aborted transactions
                }
                if v >= 11 {
                    w.i32(-1); // preferred read replica
                }
                w.null(); // records
            } else {
                w.i64(-1); // base offset
                if v >= 2 {
                    w.i64(-1); // log append time
                }
                if v >= 5 {
                    w.i64(-1); // log start offset
                }
                if v >= 8 {
                    w.len(0); // record errors
                    w.null_string(); // error message
                }
            }
            w.tags();
        }
        w.tags();
    }
    if !fetch && v >= 1 {
        w.i32(0); // throttle time
    }
    w.tags();
    Ok(())
}

fn offset_commit<S: Sink>(
    w: &mut W<'_, S>,
    mut r: Reader<'_>,
    v: i16,
    err: i16,
) -> Result<(), EncodeError> {
    let flex = w.flex;
    r.string(flex, "group_id")?;
    if v >= 1 {
        r.skip(4, "generation_id")?;
        r.string(flex, "member_id")?;
    }
    if v >= 7 {
        r.nullable_string(flex, "group_instance_id")?;
    }
    if (2..=4).contains(&v) {
        r.skip(8, "retention_time_ms")?;
    }
    if v >= 3 {
        w.i32(0);
    }
    // Partition: index, committed offset, leader epoch (6+), commit timestamp (v1 only),
    // metadata (nullable string), tags (flexible).
    let fixed = 8 + if v >= 6 { 4 } else { 0 } + if v == 1 { 8 } else { 0 };
    // Metadata takes at least 2 bytes (int16 length, or a varint and the tag count).
    let min_part = 4 + fixed + 2;
    let n = r.array_len(flex, 2, "topics")?;
    w.len(n);
    for _ in 0..n {
        w.string(r.string(flex, "topic")?);
        let np = r.array_len(flex, min_part, "partitions")?;
        w.len(np);
        for _ in 0..np {
            w.i32(r.i32("partition")?);
            w.i16(err);
            w.tags();
            r.skip(fixed, "offset fields")?;
            r.nullable_string(flex, "committed_metadata")?;
            if flex {
                r.skip_tagged()?;
            }
        }
        if flex {
            r.skip_tagged()?;
        }
        w.tags();
    }
    w.tags();
    Ok(())
}

fn offset_fetch<S: Sink>(
    w: &mut W<'_, S>,
    mut r: Reader<'_>,
    v: i16,
    err: i16,
) -> Result<(), EncodeError> {
    let flex = w.flex;
    if v >= 3 {
        w.i32(0);
    }
    if v <= 7 {
        // Request: GroupId, Topics (nullable v2+: null asks for all, answered with none)
        // of {Name, PartitionIndexes []int32}.
        r.string(flex, "group_id")?;
        let n = r.array_len(flex, 2, "topics")?;
        w.len(n);
        for _ in 0..n {
            w.string(r.string(flex, "topic")?);
            let np = r.array_len(flex, 4, "partition_indexes")?;
            w.len(np);
            for _ in 0..np {
                w.i32(r.i32("partition")?);
                w.i64(-1); // committed offset
                if v >= 5 {
                    w.i32(-1); // committed leader epoch
                }
                w.null_string(); // metadata
                w.i16(err);
                w.tags();
            }
            if flex {
                r.skip_tagged()?;
            }
            w.tags();
        }
        if v >= 2 {
            w.i16(err);
        }
    } else {
        // Request v8+: Groups of {GroupId, MemberId (9+), MemberEpoch (9+), Topics}: answer
        // each group with the error and no topics.
        let n = r.array_len(true, 2, "groups")?;
        w.len(n);
        for _ in 0..n {
            w.string(r.string(true, "group_id")?);
            if v >= 9 {
                r.nullable_string(true, "member_id")?;
                r.skip(4, "member_epoch")?;
            }
            let nt = r.array_len(true, 2, "topics")?;
            for _ in 0..nt {
                r.string(true, "topic")?;
                let np = r.array_len(true, 4, "partition_indexes")?;
                r.skip(4 * np as usize, "partition_indexes")?;
                r.skip_tagged()?;
            }
            r.skip_tagged()?;
            w.len(0);
            w.i16(err);
            w.tags();
        }
    }
    w.tags();
    Ok(())
}
