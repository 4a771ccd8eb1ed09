//! Kafka wire protocol: request headers v0-v2, response headers v0-v1, the top-level error code
//! of responses whose body starts with one, the topics of Produce and Fetch requests, and
//! locally generated error responses.
//!
//! Framing (Kafka protocol guide, "Common Request and Response Structure"): every message is an
//! int32 size followed by that many bytes. A request starts with the request header
//! (api key int16, api version int16, correlation id int32, then from v1 the client id as a
//! nullable non-compact string, then from v2 a tagged-field section); a response starts with
//! the correlation id and, from v1, a tagged-field section. Which header version applies is a
//! property of the api key and version ([`request_header_version`],
//! [`response_header_version`]); a response does not say which request it answers, so the
//! caller keeps the api key and version of each request by correlation id and asks
//! [`response_header_version`] before [`decode_response`] ([`peek_correlation_id`] reads the
//! id of a response first).
//!
//! Decoding validates the header only; bodies are left as borrowed bytes and walked on demand
//! ([`Request::topics`], [`Response::error_code`]). Nothing here allocates.

mod api;
mod body;
mod encode;

pub use api::{error_code_offset, request_header_version, response_header_version, ApiKey};
pub use body::{Partitions, TopicEntry, TopicRef, Topics};
pub use encode::{encode_error_response, EncodeError};

use crate::{Decoded, Limits, Need};
use core::fmt;

/// Size of the length prefix that precedes every Kafka message.
pub const SIZE_PREFIX: usize = 4;

/// Why a Kafka frame could not be decoded. Offsets count from the first byte of the frame
/// (the size prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The int32 size prefix is negative.
    NegativeSize {
        /// The size read.
        size: i32,
    },
    /// The frame (size prefix included) is larger than [`Limits::max_frame`].
    FrameTooLarge {
        /// Frame length, prefix included.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field runs past the end of the frame.
    Truncated {
        /// The field.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
    },
    /// A length is invalid: negative where null is not allowed, or a varint longer than 32
    /// bits.
    BadLength {
        /// The field.
        field: &'static str,
        /// Where the length starts.
        offset: usize,
    },
    /// An element count is larger than the bytes left in the frame could hold.
    CountTooLarge {
        /// The array or tagged-field section.
        field: &'static str,
        /// Where the count starts.
        offset: usize,
        /// The count read.
        count: u32,
    },
    /// A string is not valid UTF-8.
    InvalidUtf8 {
        /// The field.
        field: &'static str,
        /// Where the string's bytes start.
        offset: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NegativeSize { size } => write!(f, "kafka: negative frame size {size}"),
            Error::FrameTooLarge { len, max } => {
                write!(f, "kafka: frame of {len} bytes exceeds the limit of {max}")
            }
            Error::Truncated { field, offset } => {
                write!(
                    f,
                    "kafka: {field} at byte {offset} runs past the end of the frame"
                )
            }
            Error::BadLength { field, offset } => {
                write!(f, "kafka: invalid length of {field} at byte {offset}")
            }
            Error::CountTooLarge {
                field,
                offset,
                count,
            } => write!(
                f,
                "kafka: {field} at byte {offset} counts {count} elements, more than the frame holds"
            ),
            Error::InvalidUtf8 { field, offset } => {
                write!(f, "kafka: {field} at byte {offset} is not UTF-8")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The tagged-field section of a flexible header (KIP-482): validated at decode, iterated as
/// `(tag, value)` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaggedFields<'a> {
    count: u32,
    /// The fields after the count varint.
    raw: &'a [u8],
}

impl<'a> TaggedFields<'a> {
    /// Number of tagged fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none (always true for header versions without tagged fields).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded fields (after the count).
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Iterates `(tag, value)` pairs.
    pub fn iter(&self) -> TaggedFieldsIter<'a> {
        TaggedFieldsIter {
            left: self.count,
            rest: self.raw,
        }
    }
}

/// Iterator over a validated [`TaggedFields`] section.
#[derive(Debug, Clone)]
pub struct TaggedFieldsIter<'a> {
    left: u32,
    rest: &'a [u8],
}

impl<'a> Iterator for TaggedFieldsIter<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut r = body::Reader::new(self.rest, 0);
        let tag = r.uvarint("tag").ok()?;
        let size = r.uvarint("tag size").ok()?;
        let value = r.take(size as usize, "tag value").ok()?;
        self.rest = r.rest();
        Some((tag, value))
    }
}

/// A request header (v0, v1 or v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    /// The api key (unknown keys are data).
    pub api_key: ApiKey,
    /// The api version.
    pub api_version: i16,
    /// The correlation id the response will carry.
    pub correlation_id: i32,
    /// The client id; `None` when null or in a v0 header.
    pub client_id: Option<&'a str>,
    /// The header version (0, 1 or 2) from [`request_header_version`].
    pub header_version: u8,
    /// Tagged fields of a v2 header (empty otherwise).
    pub tagged_fields: TaggedFields<'a>,
}

/// One request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header.
    pub header: RequestHeader<'a>,
    /// The request body (after the header), undecoded.
    pub body: &'a [u8],
    /// Offset of the body from the start of the frame.
    pub body_offset: usize,
}

impl<'a> Request<'a> {
    /// The topics of a Produce or Fetch request (`None` for other api keys), parsed lazily from
    /// the body. Produce v13+ and Fetch v13+ name topics by id ([`TopicRef::Id`]).
    pub fn topics(&self) -> Option<Topics<'a>> {
        body::topics(self)
    }

    /// The `acks` of a Produce request (`None` for other api keys or a short body). With
    /// `acks == 0` the broker sends no response at all, so neither may a proxy.
    pub fn produce_acks(&self) -> Option<i16> {
        body::produce_acks(self)
    }

    /// Whether the client waits for a response (false only for Produce with `acks == 0`).
    pub fn expects_response(&self) -> bool {
        self.produce_acks() != Some(0)
    }

    /// The response header version of this request's response.
    #[inline]
    pub fn response_header_version(&self) -> u8 {
        response_header_version(self.header.api_key, self.header.api_version)
    }
}

/// One response frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
    /// The header version (0 or 1) the frame was decoded with.
    pub header_version: u8,
    /// Tagged fields of a v1 header (empty otherwise).
    pub tagged_fields: TaggedFields<'a>,
    /// The response body (after the header), undecoded.
    pub body: &'a [u8],
    /// Offset of the body from the start of the frame.
    pub body_offset: usize,
}

impl<'a> Response<'a> {
    /// The top-level error code when the body of this api key and version starts with one
    /// (see [`error_code_offset`]); `None` otherwise or when the body is too short.
    #[inline]
    pub fn error_code(&self, api_key: ApiKey, api_version: i16) -> Option<i16> {
        let off = error_code_offset(api_key, api_version)?;
        let b = self.body.get(off..off + 2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }
}

/// Reads the size prefix: `Ok(Ok(total frame length))`, or `Ok(Err(need))`.
#[inline(always)]
fn frame_len(buf: &[u8], limits: &Limits, min_size: usize) -> Result<Result<usize, Need>, Error> {
    let Some(p) = buf.first_chunk::<4>() else {
        return Ok(Err(Need::AtLeast(SIZE_PREFIX)));
    };
    let size = i32::from_be_bytes(*p);
    if size < 0 {
        return Err(Error::NegativeSize { size });
    }
    let total = SIZE_PREFIX + size as usize;
    if total > limits.max_frame {
        return Err(Error::FrameTooLarge {
            len: total,
            max: limits.max_frame,
        });
    }
    if (size as usize) < min_size {
        return Err(Error::Truncated {
            field: "header",
            offset: total,
        });
    }
    if buf.len() < total {
        return Ok(Err(Need::Exact(total)));
    }
    Ok(Ok(total))
}

/// Decodes one request frame from the start of `buf`.
///
/// Returns the frame and the bytes it used, or [`Need::AtLeast`]`(4)` before the size prefix
/// is in, or [`Need::Exact`] with the total frame length after it. Bytes after the frame are
/// left alone.
#[inline]
pub fn decode_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Request<'a>>, Error> {
    let total = match frame_len(buf, limits, 8)? {
        Ok(t) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    request_in(&buf[..total], total)
}

/// Head mode: decodes the request whose first bytes are `buf` (the frame may be much longer:
/// `used` is its whole length) from those bytes only: the header is read, the body view holds
/// what is at hand (its lazily read fields, such as Produce's `acks`, are `None` when cut).
/// [`Need::AtLeast`] when the header itself is cut.
pub fn decode_request_head<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Decoded<Request<'a>>, Error> {
    let total = match frame_len(buf, limits, 8)? {
        Ok(t) => t,
        Err(Need::Exact(t)) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let at_hand = buf.len().min(total);
    match request_in(&buf[..at_hand], total) {
        Err(Error::Truncated { .. } | Error::CountTooLarge { .. }) if at_hand < total => {
            Ok(Decoded::NeedMore(Need::AtLeast(at_hand + 1)))
        }
        r => r,
    }
}

/// Decodes the request header in `frame` (all of a `total`-byte frame, or its head).
#[inline(always)]
fn request_in(frame: &[u8], total: usize) -> Result<Decoded<Request<'_>>, Error> {
    if frame.len() < 12 {
        return Err(Error::Truncated {
            field: "header",
            offset: frame.len(),
        });
    }
    // The fixed part: api key, api version, correlation id (checked present by frame_len).
    let api_key = ApiKey::from_code(i16::from_be_bytes([frame[4], frame[5]]));
    let api_version = i16::from_be_bytes([frame[6], frame[7]]);
    let correlation_id = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
    let header_version = request_header_version(api_key, api_version);
    let mut pos = 12;
    let mut client_id = None;
    if header_version >= 1 {
        // Client id: a nullable non-compact string even in header v2 (KIP-482 kept it so).
        let Some(l) = frame.get(pos..pos + 2) else {
            return Err(Error::Truncated {
                field: "client_id",
                offset: pos,
            });
        };
        let len = i16::from_be_bytes([l[0], l[1]]);
        if len >= 0 {
            let start = pos + 2;
            let end = start + len as usize;
            let Some(s) = frame.get(start..end) else {
                return Err(Error::Truncated {
                    field: "client_id",
                    offset: pos,
                });
            };
            match core::str::from_utf8(s) {
                Ok(s) => client_id = Some(s),
                Err(_) => {
                    return Err(Error::InvalidUtf8 {
                        field: "client_id",
                        offset: start,
                    })
                }
            }
            pos = end;
        } else if len == -1 {
            pos += 2;
        } else {
            return Err(Error::BadLength {
                field: "client_id",
                offset: pos,
            });
        }
    }
    let mut tagged_fields = TaggedFields::default();
    if header_version >= 2 {
        // Almost always a single 0 byte: no tagged fields.
        if frame.get(pos) == Some(&0) {
            pos += 1;
        } else {
            let (t, end) = body::tagged_fields(frame, pos, 0)?;
            tagged_fields = t;
            pos = end;
        }
    }
    Ok(Decoded::Frame {
        frame: Request {
            header: RequestHeader {
                api_key,
                api_version,
                correlation_id,
                client_id,
                header_version,
                tagged_fields,
            },
            body: &frame[pos..],
            body_offset: pos,
        },
        used: total,
    })
}

/// Decodes one response frame whose header has version `response_header_version` (0, or 1 for
/// anything else), as [`response_header_version`] gives it for the request's api key and
/// version.
#[inline]
pub fn decode_response<'a>(
    buf: &'a [u8],
    response_header_version: u8,
    limits: &Limits,
) -> Result<Decoded<Response<'a>>, Error> {
    let total = match frame_len(buf, limits, 4)? {
        Ok(t) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    response_in(&buf[..total], total, response_header_version)
}

/// Head mode for a response (see [`decode_request_head`]): the header from the first bytes,
/// `used` the whole frame's length; error codes read from a cut body are `None`.
pub fn decode_response_head<'a>(
    buf: &'a [u8],
    response_header_version: u8,
    limits: &Limits,
) -> Result<Decoded<Response<'a>>, Error> {
    let total = match frame_len(buf, limits, 4)? {
        Ok(t) => t,
        Err(Need::Exact(t)) => t,
        Err(need) => return Ok(Decoded::NeedMore(need)),
    };
    let at_hand = buf.len().min(total);
    match response_in(&buf[..at_hand], total, response_header_version) {
        Err(Error::Truncated { .. } | Error::CountTooLarge { .. }) if at_hand < total => {
            Ok(Decoded::NeedMore(Need::AtLeast(at_hand + 1)))
        }
        r => r,
    }
}

#[inline(always)]
fn response_in(
    frame: &[u8],
    total: usize,
    response_header_version: u8,
) -> Result<Decoded<Response<'_>>, Error> {
    if frame.len() < 8 {
        return Err(Error::Truncated {
            field: "header",
            offset: frame.len(),
        });
    }
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let mut pos = 8;
    let mut tagged_fields = TaggedFields::default();
    let header_version = if response_header_version >= 1 { 1 } else { 0 };
    if header_version == 1 {
        if frame.get(pos) == Some(&0) {
            pos += 1;
        } else {
            let (t, end) = body::tagged_fields(frame, pos, 0)?;
            tagged_fields = t;
            pos = end;
        }
    }
    Ok(Decoded::Frame {
        frame: Response {
            correlation_id,
            header_version,
            tagged_fields,
            body: &frame[pos..],
            body_offset: pos,
        },
        used: total,
    })
}

/// [`decode_response`] for the response to a request of `api_key` and `api_version`.
#[inline]
pub fn decode_response_to<'a>(
    buf: &'a [u8],
    api_key: ApiKey,
    api_version: i16,
    limits: &Limits,
) -> Result<Decoded<Response<'a>>, Error> {
    decode_response(buf, response_header_version(api_key, api_version), limits)
}

/// The correlation id of the response at the start of `buf`, once its first 8 bytes are in;
/// used to find the request it answers before decoding it.
#[inline]
pub fn peek_correlation_id(buf: &[u8]) -> Option<i32> {
    let b = buf.get(4..8)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The api key, api version and correlation id of the request at the start of `buf`, once its
/// first 12 bytes are in (without validating the rest).
#[inline]
pub fn peek_request(buf: &[u8]) -> Option<(ApiKey, i16, i32)> {
    let b = buf.get(4..12)?;
    Some((
        ApiKey::from_code(i16::from_be_bytes([b[0], b[1]])),
        i16::from_be_bytes([b[2], b[3]]),
        i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}
