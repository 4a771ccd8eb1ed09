//! Routing's view of Dubbo and Thrift frames: one request's attributes and decision, what a
//! locally generated error reply needs, and the frame boundaries of the response stream.

use super::{Attributes, Decision, Request, RouteTable, SplitMix64, Target};
use crate::failure::DecodeFailure;
use crate::framer::Framer;
use crate::protocol::Protocol;
use meltemi_codec::{dubbo, thrift, Decoded, Limits};

/// Which protocol a routed connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcProtocol {
    /// Thrift: framed, THeader, or unframed strict binary / compact (`TBufferedTransport`).
    Thrift,
    /// Dubbo 2.
    Dubbo,
}

impl RpcProtocol {
    /// The routed protocol of a listener, if it is one.
    pub fn of(p: Protocol) -> Option<RpcProtocol> {
        match p {
            Protocol::Thrift => Some(RpcProtocol::Thrift),
            Protocol::Dubbo => Some(RpcProtocol::Dubbo),
            _ => None,
        }
    }
}

/// One whole request frame and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Bytes of the frame at the start of the input.
    pub len: usize,
    /// The decision (`Primary` for frames routing does not look at: events, heartbeats,
    /// transformed THeader payloads).
    pub decision: Decision,
    /// Whether the request expects an answer.
    pub two_way: bool,
}

const PRIMARY: Decision = Decision {
    route: None,
    target: Target::Primary,
    cluster: Some(0),
    mirror: None,
    timeout_ms: super::DEFAULT_TIMEOUT_MS,
    retries: 0,
};

struct ThriftAttrs<'a>(Option<thrift::Header<'a>>);

impl Attributes for ThriftAttrs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let v = self.0.as_ref()?.get(key.as_bytes())?;
        std::str::from_utf8(v).ok()
    }
}

struct DubboAttrs<'a>(&'a dubbo::Invocation<'a>);

impl Attributes for DubboAttrs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "version" => self.0.service_version.and_then(|v| v.as_str()),
            _ => self.0.attachments.as_ref()?.get(key)?.as_str(),
        }
    }
}

/// One client frame as routing decoded it, for the observer to account without decoding again.
#[derive(Debug, Clone, Copy)]
pub enum RequestFrame<'a> {
    /// A Thrift frame.
    Thrift(&'a thrift::Frame<'a>),
    /// A Dubbo message.
    Dubbo(&'a dubbo::Message<'a>),
}

/// Decodes the request frame at the start of `buf` and decides where it goes.
pub fn route_request(
    proto: RpcProtocol,
    table: &RouteTable,
    buf: &[u8],
    limits: &Limits,
    rng: &mut SplitMix64,
    take: impl FnOnce(usize) -> bool,
) -> Result<Decoded<Routed>, DecodeFailure> {
    route_request_with(proto, table, buf, |_| {}, limits, rng, take)
}

/// [`route_request`] that also hands the decoded frame to `seen` (before deciding), so the
/// observer shares the one decode (each frame was decoded twice before: once per consumer).
pub fn route_request_with(
    proto: RpcProtocol,
    table: &RouteTable,
    buf: &[u8],
    seen: impl FnOnce(RequestFrame<'_>),
    limits: &Limits,
    rng: &mut SplitMix64,
    take: impl FnOnce(usize) -> bool,
) -> Result<Decoded<Routed>, DecodeFailure> {
    match proto {
        RpcProtocol::Thrift => {
            let (frame, used) =
                match thrift::decode_request(buf, limits).map_err(DecodeFailure::from)? {
                    Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
                    Decoded::Frame { frame, used } => (frame, used),
                };
            seen(RequestFrame::Thrift(&frame));
            let Some(m) = frame.message else {
                return Ok(whole(used, PRIMARY, true));
            };
            let two_way = m.kind != thrift::MessageType::Oneway;
            if !matches!(
                m.kind,
                thrift::MessageType::Call | thrift::MessageType::Oneway
            ) {
                return Ok(whole(used, PRIMARY, two_way));
            }
            let attrs = ThriftAttrs(frame.header);
            let req = Request {
                service: m.service,
                method: m.method,
                attrs: &attrs,
            };
            Ok(whole(used, table.decide(&req, rng, take), two_way))
        }
        RpcProtocol::Dubbo => {
            let (msg, used) = match dubbo::decode(buf, limits).map_err(DecodeFailure::from)? {
                Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
                Decoded::Frame { frame, used } => (frame, used),
            };
            seen(RequestFrame::Dubbo(&msg));
            let dubbo::Message::Request(r) = msg else {
                // A client's answer to a provider heartbeat: it belongs to the primary stream.
                return Ok(whole(used, PRIMARY, false));
            };
            let two_way = r.header.is_two_way();
            let dubbo::RequestPayload::Invocation(inv) = &r.payload else {
                return Ok(whole(used, PRIMARY, two_way));
            };
            let attrs = DubboAttrs(inv);
            let req = Request {
                service: inv.service.as_str(),
                method: inv.method.as_str().unwrap_or(""),
                attrs: &attrs,
            };
            Ok(whole(used, table.decide(&req, rng, take), two_way))
        }
    }
}

fn whole(len: usize, decision: Decision, two_way: bool) -> Decoded<Routed> {
    Decoded::Frame {
        frame: Routed {
            len,
            decision,
            two_way,
        },
        used: len,
    }
}

/// Why the module answers a request with the protocol's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The route's rate limit.
    RateLimited,
    /// The detour's cluster could not be reached (connect failure, reset, circuit breaker).
    Unavailable,
    /// The detour did not answer in time.
    Timeout,
}

impl Failure {
    fn message(self) -> &'static str {
        match self {
            Failure::RateLimited => "meltemi: rate limited",
            Failure::Unavailable => "meltemi: upstream unavailable",
            Failure::Timeout => "meltemi: upstream timeout",
        }
    }
}

/// Encodes the protocol's error answer to the request frame `frame` into `out`; false when
/// the frame is not a request this can answer (then nothing is written).
pub fn encode_failure(
    proto: RpcProtocol,
    frame: &[u8],
    limits: &Limits,
    why: Failure,
    out: &mut Vec<u8>,
) -> bool {
    match proto {
        RpcProtocol::Thrift => {
            let Ok(Decoded::Frame { frame: f, .. }) = thrift::decode_request(frame, limits) else {
                return false;
            };
            let Some(m) = f.message else { return false };
            let kind = match why {
                Failure::RateLimited | Failure::Unavailable => {
                    thrift::AppExceptionType::InternalError
                }
                Failure::Timeout => thrift::AppExceptionType::InternalError,
            };
            thrift::AppExceptionReply {
                transport: f.transport,
                protocol: f.protocol,
                name: m.name,
                seq_id: m.seq_id,
                kind,
                message: why.message(),
            }
            .encode(out);
            true
        }
        RpcProtocol::Dubbo => {
            let Ok(Decoded::Frame { frame: h, .. }) = dubbo::decode_header(frame, limits) else {
                return false;
            };
            let status = match why {
                Failure::RateLimited => dubbo::Status::ServerThreadpoolExhausted,
                Failure::Unavailable => dubbo::Status::ServiceNotFound,
                Failure::Timeout => dubbo::Status::ServerTimeout,
            };
            dubbo::encode_error_response(out, h.request_id, status, why.message());
            true
        }
    }
}

/// Tracks frame boundaries of a response stream (upstream -> client). Framed Thrift, THeader
/// (4-byte length) and Dubbo (16-byte header, body length at 12) are followed from length
/// prefixes only: nothing is copied but a header that straddles chunks. Unframed Thrift
/// (`TBufferedTransport`: strict binary or compact, no length) is found by walking each
/// reply's struct with the codec; a reply cut by a chunk is held (only its bytes so far, by the
/// engine's framer) and decoded again once the codec's lower bound of its length has arrived.
///
/// The transport is fixed by the first reply of the stream (a strict binary version word or
/// the compact protocol id: unframed; anything else: a length) and kept for the connection, as
/// the replies follow the transport of the client's requests. A reply past `Limits::max_frame`,
/// broken structure, or a change of transport loses the stream: never at a boundary again.
#[derive(Debug, Default)]
pub struct Boundary {
    /// Bytes left of the current frame's body.
    left: u64,
    /// Bytes of a header that straddles chunks.
    hdr: [u8; 16],
    hdr_len: usize,
    /// Thrift: the transport the first reply used.
    mode: Mode,
    /// Unframed Thrift: the start of a reply that is not yet whole.
    unframed: Framer,
    limits: Limits,
    /// A stream the tracker cannot frame: never at a boundary again.
    lost: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    /// No reply seen yet.
    #[default]
    Unknown,
    /// Length-prefixed frames (all of Dubbo).
    Framed,
    /// Unframed Thrift in this protocol (`Binary` or `Compact`).
    Unframed(thrift::Protocol),
}

impl Boundary {
    /// A tracker whose unframed replies are bounded by `limits` (the default: the codec's).
    pub fn new(limits: Limits) -> Self {
        Boundary {
            limits,
            ..Boundary::default()
        }
    }

    /// True between two whole frames.
    #[inline]
    pub fn at_boundary(&self) -> bool {
        !self.lost && self.left == 0 && self.hdr_len == 0 && self.unframed.pending() == 0
    }

    /// Bytes held: a partial unframed reply, a header that straddles chunks.
    #[inline]
    pub fn pending(&self) -> usize {
        self.unframed.pending() + self.hdr_len
    }

    /// True once the stream could not be framed.
    #[inline]
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// Consumes `data`, the next bytes of the stream; returns how many frames ended in it.
    pub fn feed(&mut self, proto: RpcProtocol, data: &[u8]) -> u64 {
        let Some(&first) = data.first() else { return 0 };
        if self.lost {
            return 0;
        }
        if self.mode == Mode::Unknown {
            self.mode = match proto {
                // A length below 2^31, or a strict version word / compact protocol id.
                RpcProtocol::Thrift if first & 0x80 != 0 => Mode::Unframed(if first == 0x82 {
                    thrift::Protocol::Compact
                } else {
                    thrift::Protocol::Binary
                }),
                _ => Mode::Framed,
            };
        }
        match self.mode {
            Mode::Unframed(p) => self.feed_unframed(p, data),
            _ => self.feed_framed(proto, data),
        }
    }

    fn feed_unframed(&mut self, protocol: thrift::Protocol, data: &[u8]) -> u64 {
        let limits = self.limits;
        let mut frames = 0;
        let r = self.unframed.feed(data, |buf| {
            // Each reply starts with the version word or protocol id (lax binary would take
            // a length for a name: the transport changed).
            if buf.first().is_some_and(|b| b & 0x80 == 0) {
                return Err(());
            }
            match thrift::decode_unframed(buf, protocol, &limits).map_err(|_| ())? {
                Decoded::Frame { used, .. } => {
                    frames += 1;
                    Ok(Decoded::Frame { frame: (), used })
                }
                Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
            }
        });
        self.lost = r.is_err();
        frames
    }

    fn feed_framed(&mut self, proto: RpcProtocol, mut data: &[u8]) -> u64 {
        let hlen = match proto {
            RpcProtocol::Thrift => 4,
            RpcProtocol::Dubbo => 16,
        };
        let mut frames = 0;
        while !data.is_empty() {
            if self.left > 0 {
                let n = (self.left.min(data.len() as u64)) as usize;
                self.left -= n as u64;
                data = &data[n..];
                frames += u64::from(self.left == 0);
                continue;
            }
            let n = (hlen - self.hdr_len).min(data.len());
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[..n]);
            self.hdr_len += n;
            data = &data[n..];
            if self.hdr_len < hlen {
                break;
            }
            self.hdr_len = 0;
            self.left = match proto {
                RpcProtocol::Thrift => {
                    let w =
                        u32::from_be_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
                    if w & 0x8000_0000 != 0 {
                        // An unframed message on a framed stream: no length to follow.
                        self.lost = true;
                        break;
                    }
                    u64::from(w)
                }
                RpcProtocol::Dubbo => u64::from(u32::from_be_bytes([
                    self.hdr[12],
                    self.hdr[13],
                    self.hdr[14],
                    self.hdr[15],
                ])),
            };
            frames += u64::from(self.left == 0);
        }
        frames
    }
}

/// Counts whole response frames in the bytes an upstream sends back to the bridge.
#[derive(Debug, Default)]
pub struct ResponseCounter {
    boundary: Boundary,
    /// Whole response frames seen (Dubbo: provider heartbeats excluded is not attempted;
    /// the bridge's connections carry one request at a time).
    pub frames: u64,
}

impl ResponseCounter {
    /// Feeds upstream bytes; returns how many frames completed in them.
    pub fn feed(&mut self, proto: RpcProtocol, data: &[u8]) -> u64 {
        let n = self.boundary.feed(proto, data);
        self.frames += n;
        n
    }

    /// The stream could not be framed.
    pub fn broken(&self) -> bool {
        self.boundary.lost
    }
}
