//! Routing's view of Dubbo and Thrift frames: one request's attributes and decision, what a
//! locally generated error reply needs, and the frame boundaries of the response stream.

use super::{Attributes, Decision, Request, RouteTable, SplitMix64, Target};
use crate::config::Protocol;
use crate::proto::DecodeFailure;
use meltemi_codec::{dubbo, thrift, Decoded, Limits};

/// Which protocol a routed connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcProtocol {
    /// Thrift (framed or THeader; unframed streams pass untouched, see docs/routing.md).
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

/// Tracks frame boundaries of a response stream (upstream -> client) from length prefixes
/// only: Thrift framed/THeader (4-byte length), Dubbo (16-byte header, body length at 12).
#[derive(Debug, Clone, Default)]
pub struct Boundary {
    /// Bytes left of the current frame's body.
    left: u64,
    /// Bytes of a header that straddles chunks.
    hdr: [u8; 16],
    hdr_len: usize,
    /// A stream the tracker cannot frame (unframed Thrift): never at a boundary again.
    lost: bool,
}

impl Boundary {
    /// True between two whole frames.
    #[inline]
    pub fn at_boundary(&self) -> bool {
        !self.lost && self.left == 0 && self.hdr_len == 0
    }

    /// Consumes `data`, the next bytes of the stream.
    pub fn feed(&mut self, proto: RpcProtocol, mut data: &[u8]) {
        let hlen = match proto {
            RpcProtocol::Thrift => 4,
            RpcProtocol::Dubbo => 16,
        };
        while !data.is_empty() && !self.lost {
            if self.left > 0 {
                let n = (self.left.min(data.len() as u64)) as usize;
                self.left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (hlen - self.hdr_len).min(data.len());
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[..n]);
            self.hdr_len += n;
            data = &data[n..];
            if self.hdr_len < hlen {
                return;
            }
            self.hdr_len = 0;
            self.left = match proto {
                RpcProtocol::Thrift => {
                    let w =
                        u32::from_be_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
                    if w & 0x8000_0000 != 0 {
                        // Unframed strict binary: no length to follow.
                        self.lost = true;
                        return;
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
        }
    }
}

/// Counts whole response frames in the bytes an upstream sends back to the bridge.
#[derive(Debug, Clone, Default)]
pub struct ResponseCounter {
    boundary: Boundary,
    /// Whole response frames seen (Dubbo: provider heartbeats excluded is not attempted;
    /// the bridge's connections carry one request at a time).
    pub frames: u64,
}

impl ResponseCounter {
    /// Feeds upstream bytes; returns how many frames completed in them.
    pub fn feed(&mut self, proto: RpcProtocol, data: &[u8]) -> u64 {
        // Frame by frame, so a chunk holding several frames counts each.
        let hlen = match proto {
            RpcProtocol::Thrift => 4,
            RpcProtocol::Dubbo => 16,
        };
        let before = self.frames;
        let mut rest = data;
        while !rest.is_empty() {
            // Feed at most up to the end of the current frame.
            let step = if self.boundary.left > 0 {
                (self.boundary.left.min(rest.len() as u64)) as usize
            } else {
                (hlen - self.boundary.hdr_len).min(rest.len())
            };
            self.boundary.feed(proto, &rest[..step]);
            rest = &rest[step..];
            if self.boundary.lost {
                break;
            }
            if self.boundary.at_boundary() {
                self.frames += 1;
            }
        }
        self.frames - before
    }

    /// The stream could not be framed.
    pub fn broken(&self) -> bool {
        self.boundary.lost
    }
}
