//! The HTTP-to-TCP bridge glue (upstream `envoy.upstreams.http.dynamic_modules`), written
//! against [`BridgeHost`] only.
//!
//! One instance per HTTP request routed to a bridged cluster (the network filter's callouts).
//! The request body is a batch of whole protocol frames; it is written to the upstream TCP
//! connection as is. Upstream bytes are collected until as many whole replies as requests have
//! arrived, then answered as one HTTP 200 whose body is the reply bytes. Envoy hands each
//! `encode_data` / `on_upstream_data` only the new bytes (it drains or moves them after the
//! hook), so both sides are fed to the counters exactly once. Redis values are counted with
//! the codec's resumable walker ([`meltemi_codec::redis::Skipper`]): nothing is held for them
//! but the reply itself.

use crate::host::BridgeHost;
use meltemi_codec::redis::Skipper;
use meltemi_codec::{dubbo, thrift, Decoded, Limits};
use meltemi_engine::route::{ResponseCounter, RpcProtocol};
use serde::Deserialize;

/// The bridge's config (`bridge_config`, JSON; empty means Redis). The controller also writes
/// `statPrefix` (the twin cluster's name as a stat piece); accepted, not used yet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default, rename = "statPrefix", alias = "stat_prefix")]
    pub stat_prefix: Option<String>,
}

fn default_protocol() -> String {
    "redis".to_owned()
}

impl BridgeConfig {
    pub fn parse(json: &[u8]) -> Result<BridgeConfig, String> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Ok(BridgeConfig {
                protocol: default_protocol(),
                stat_prefix: None,
            });
        }
        let c: BridgeConfig =
            serde_json::from_slice(json).map_err(|e| format!("invalid JSON bridge config: {e}"))?;
        if !matches!(c.protocol.as_str(), "redis" | "thrift" | "dubbo") {
            return Err(format!(
                "bridge protocol {:?} is not supported (redis, thrift, dubbo)",
                c.protocol
            ));
        }
        Ok(c)
    }
}

/// Thrift/Dubbo framing of one bridged request: requests are whole frames (the filter sends
/// one per callout); replies are framed by their length prefixes.
#[derive(Debug)]
struct Rpc {
    proto: RpcProtocol,
    replies: ResponseCounter,
    /// Dubbo: upstream bytes not yet a whole frame.
    partial: Vec<u8>,
}

/// Dubbo flags of a heartbeat response: response, event, Hessian2.
const DUBBO_HEARTBEAT_RESPONSE: u8 = 0x22;

/// Splits Dubbo upstream bytes into whole frames. A provider's own frames that are not answers
/// (a heartbeat or other event request, as Apache Dubbo's `HeartbeatTimerTask` sends on a
/// channel idle for its heartbeat interval; an event response) are kept out of the reply; a
/// two-way heartbeat request is answered upstream like a consumer does (status OK, null body),
/// so the provider does not close the channel. Returns the answer frames found and whether the
/// stream is broken.
fn dubbo_replies(
    partial: &mut Vec<u8>,
    chunk: &[u8],
    out: &mut Vec<u8>,
    heartbeats: &mut Vec<u8>,
) -> (u64, bool) {
    partial.extend_from_slice(chunk);
    let limits = Limits {
        max_frame: usize::MAX,
        ..Limits::default()
    };
    let mut n = 0;
    let mut off = 0;
    let mut broken = false;
    while off < partial.len() {
        match dubbo::decode_header(&partial[off..], &limits) {
            Ok(Decoded::Frame { frame, used }) => {
                let bytes = &partial[off..off + used];
                if frame.is_request() {
                    if frame.is_event() && frame.is_two_way() {
                        heartbeats.extend_from_slice(&[0xDA, 0xBB, DUBBO_HEARTBEAT_RESPONSE, 20]);
                        heartbeats.extend_from_slice(&frame.request_id.to_be_bytes());
                        heartbeats.extend_from_slice(&1u32.to_be_bytes());
                        heartbeats.push(b'N');
                    }
                } else if !frame.is_event() {
                    out.extend_from_slice(bytes);
                    n += 1;
                }
                off += used;
            }
            Ok(Decoded::NeedMore(_)) => break,
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    partial.drain(..off);
    (n, broken)
}

/// How many answers the request frames in `body` expect (one-way calls expect none).
fn expected_replies(proto: RpcProtocol, mut body: &[u8]) -> u64 {
    let limits = Limits::default();
    let mut n = 0;
    while !body.is_empty() {
        let used = match proto {
            RpcProtocol::Thrift => match thrift::decode_request(body, &limits) {
                Ok(Decoded::Frame { frame, used }) => {
                    if frame
                        .message
                        .is_none_or(|m| m.kind != thrift::MessageType::Oneway)
                    {
                        n += 1;
                    }
                    used
                }
                _ => return n + 1,
            },
            RpcProtocol::Dubbo => match dubbo::decode_header(body, &limits) {
                Ok(Decoded::Frame { frame, used }) => {
                    if frame.is_request() && frame.is_two_way() {
                        n += 1;
                    }
                    frame.frame_len().max(used).min(body.len())
                }
                _ => return n + 1,
            },
        };
        body = &body[used.max(1).min(body.len())..];
    }
    n
}

/// Counts the whole RESP values of a stream fed in any split: one [`Skipper`] walks each value
/// across the pieces (nothing is copied). Stops counting, rather than guessing, at the first
/// broken structure.
#[derive(Debug)]
struct RespValues {
    /// Client requests (a value not starting with `*` is an inline command), else replies.
    requests: bool,
    /// The walk of the value in progress.
    walking: Option<Skipper>,
    broken: bool,
}

impl RespValues {
    /// No size limit: a walker holds nothing, and the filter limited the frames it detoured.
    const LIMITS: Limits = Limits {
        max_frame: usize::MAX,
        max_depth: 32,
    };

    fn new(requests: bool) -> Self {
        RespValues {
            requests,
            walking: None,
            broken: false,
        }
    }

    /// Feeds the next bytes of the stream; returns how many values ended in them.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut n = 0;
        while !self.broken && !data.is_empty() {
            let walker = match &mut self.walking {
                Some(w) => w,
                // Line ends between requests are empty inline commands: redis-server skips them.
                None if self.requests && matches!(data[0], b'\r' | b'\n') => {
                    data = &data[1..];
                    continue;
                }
                None if self.requests => self
                    .walking
                    .insert(Skipper::request(data[0], &Self::LIMITS)),
                None => self.walking.insert(Skipper::reply(&Self::LIMITS)),
            };
            match walker.feed(data) {
                Ok(Some(used)) => {
                    n += 1;
                    self.walking = None;
                    data = &data[used..];
                }
                Ok(None) => break,
                Err(_) => self.broken = true,
            }
        }
        n
    }

    /// True once the stream was found not to be RESP; no further values are counted.
    fn broken(&self) -> bool {
        self.broken
    }
}

/// One bridged request.
#[derive(Debug)]
pub struct Bridge {
    rpc: Option<Rpc>,
    requests: RespValues,
    replies: RespValues,
    requests_seen: u64,
    replies_seen: u64,
    response: Vec<u8>,
    answered: bool,
}

impl Default for Bridge {
    /// A Redis bridge.
    fn default() -> Self {
        Bridge {
            rpc: None,
            requests: RespValues::new(true),
            replies: RespValues::new(false),
            requests_seen: 0,
            replies_seen: 0,
            response: Vec::new(),
            answered: false,
        }
    }
}

impl Bridge {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bridge for the configured protocol.
    pub fn with_config(c: &BridgeConfig) -> Self {
        let proto = match c.protocol.as_str() {
            "thrift" => Some(RpcProtocol::Thrift),
            "dubbo" => Some(RpcProtocol::Dubbo),
            _ => None,
        };
        Bridge {
            rpc: proto.map(|proto| Rpc {
                proto,
                replies: ResponseCounter::default(),
                partial: Vec::new(),
            }),
            ..Self::default()
        }
    }

    pub fn on_encode_headers(&mut self, host: &mut impl BridgeHost, end_of_stream: bool) {
        if end_of_stream {
            self.answer(host, 400, b"meltemi bridge: request without body");
        }
    }

    pub fn on_encode_data(&mut self, host: &mut impl BridgeHost, _end_of_stream: bool) {
        // Copy once: the chunks borrow the host, and writing needs it mutably.
        let body: Vec<u8> = host.request_chunks().concat();
        if body.is_empty() {
            return;
        }
        match &self.rpc {
            Some(rpc) => self.requests_seen += expected_replies(rpc.proto, &body),
            None => self.requests_seen += self.requests.feed(&body),
        }
        host.send_upstream(&body, false);
        if self.rpc.is_some() && self.requests_seen == 0 && !self.answered {
            // One-way calls: nothing comes back.
            self.answered = true;
            host.send_response(200, &[("content-type", b"application/octet-stream")], b"");
        }
    }

    pub fn on_encode_trailers(&mut self, _host: &mut impl BridgeHost) {}

    pub fn on_upstream_data(&mut self, host: &mut impl BridgeHost, end_of_stream: bool) {
        let mut heartbeats = Vec::new();
        let mut dubbo_broken = false;
        for chunk in host.response_chunks() {
            match &mut self.rpc {
                Some(rpc) if rpc.proto == RpcProtocol::Dubbo => {
                    let (n, broken) =
                        dubbo_replies(&mut rpc.partial, chunk, &mut self.response, &mut heartbeats);
                    self.replies_seen += n;
                    dubbo_broken |= broken;
                }
                Some(rpc) => {
                    self.replies_seen += rpc.replies.feed(rpc.proto, chunk);
                    self.response.extend_from_slice(chunk);
                }
                None => {
                    self.replies_seen += self.replies.feed(chunk);
                    self.response.extend_from_slice(chunk);
                }
            }
        }
        if !heartbeats.is_empty() && !end_of_stream {
            host.send_upstream(&heartbeats, false);
        }
        let broken = dubbo_broken
            || match &self.rpc {
                Some(rpc) => rpc.replies.broken(),
                None => self.replies.broken(),
            };
        if self.answered {
            return;
        }
        if self.requests_seen > 0 && self.replies_seen >= self.requests_seen {
            let body = std::mem::take(&mut self.response);
            self.answered = true;
            host.send_response(200, &[("content-type", b"application/octet-stream")], &body);
        } else if end_of_stream || broken {
            self.answer(
                host,
                502,
                b"meltemi bridge: upstream closed before a whole reply",
            );
        }
    }

    /// Answers with an error status, once (also used when a hook panicked).
    pub(crate) fn answer(&mut self, host: &mut impl BridgeHost, status: u32, body: &[u8]) {
        if !self.answered {
            self.answered = true;
            host.send_response(status, &[], body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeBridgeHost;

    #[test]
    fn ping_round_trip_split_reply() {
        let mut b = Bridge::new();
        let mut h = FakeBridgeHost::default();
        b.on_encode_headers(&mut h, false);
        h.request = vec![b"*1\r\n$4\r\n".to_vec(), b"PING\r\n".to_vec()];
        b.on_encode_data(&mut h, true);
        assert_eq!(h.sent_upstream, b"*1\r\n$4\r\nPING\r\n");
        assert!(!h.upstream_end_stream);
        h.response = vec![b"+PO".to_vec()];
        b.on_upstream_data(&mut h, false);
        assert!(h.responses.is_empty());
        h.response = vec![b"NG\r\n".to_vec()];
        b.on_upstream_data(&mut h, false);
        assert_eq!(h.responses.len(), 1);
        assert_eq!(h.responses[0].0, 200);
        assert_eq!(h.responses[0].2, b"+PONG\r\n");
    }

    #[test]
    fn waits_for_one_reply_per_pipelined_request() {
        let mut b = Bridge::new();
        let mut h = FakeBridgeHost {
            request: vec![b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n".to_vec()],
            ..Default::default()
        };
        b.on_encode_data(&mut h, true);
        h.response = vec![b"+PONG\r\n".to_vec()];
        b.on_upstream_data(&mut h, false);
        assert!(h.responses.is_empty());
        b.on_upstream_data(&mut h, false);
        assert_eq!(h.responses[0].2, b"+PONG\r\n+PONG\r\n");
    }

    #[test]
    fn early_close_and_empty_request_answer_errors_once() {
        let mut b = Bridge::new();
        let mut h = FakeBridgeHost::default();
        b.on_encode_headers(&mut h, true);
        assert_eq!(h.responses[0].0, 400);
        let mut b = Bridge::new();
        let mut h = FakeBridgeHost {
            request: vec![b"*1\r\n$4\r\nPING\r\n".to_vec()],
            ..Default::default()
        };
        b.on_encode_data(&mut h, true);
        b.on_upstream_data(&mut h, true);
        b.on_upstream_data(&mut h, true);
        assert_eq!(h.responses.len(), 1);
        assert_eq!(h.responses[0].0, 502);
    }

    #[test]
    fn dubbo_provider_heartbeat_is_answered_upstream_and_kept_out_of_the_reply() {
        let frame = |flags: u8, status: u8, id: u64, body: &[u8]| {
            let mut f = vec![0xDA, 0xBB, flags, status];
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(&(body.len() as u32).to_be_bytes());
            f.extend_from_slice(body);
            f
        };
        let mut b = Bridge::with_config(&BridgeConfig {
            protocol: "dubbo".into(),
            stat_prefix: None,
        });
        let request = frame(0xC2, 0, 7, b"\x05hello");
        let mut h = FakeBridgeHost {
            request: vec![request.clone()],
            ..Default::default()
        };
        b.on_encode_data(&mut h, true);
        assert_eq!(h.sent_upstream, request);
        let heartbeat = frame(0xE2, 0, 1 << 40, b"N");
        let answer = frame(0x02, 20, 7, b"\x91\x02v2");
        let both = [heartbeat, answer.clone()].concat();
        // The heartbeat and half the answer, then the rest.
        h.response = vec![both[..20].to_vec(), both[20..30].to_vec()];
        b.on_upstream_data(&mut h, false);
        assert!(h.responses.is_empty());
        assert_eq!(
            h.sent_upstream[request.len()..],
            frame(0x22, 20, 1 << 40, b"N")[..]
        );
        h.response = vec![both[30..].to_vec()];
        b.on_upstream_data(&mut h, false);
        assert_eq!(h.responses.len(), 1);
        assert_eq!((h.responses[0].0, &h.responses[0].2), (200, &answer));
    }

    /// Unframed Thrift (`TBufferedTransport`), binary and compact: each captured call is
    /// answered with its whole reply, however the reply is cut; the oneway `log` at once with
    /// an empty body.
    #[test]
    fn unframed_thrift_replies_are_counted() {
        use crate::host::fake::thrift_capture;
        for case in ["binary-unframed", "compact-unframed"] {
            let calls = thrift_capture(&format!("{case}.c2s.bin"));
            let replies = thrift_capture(&format!("{case}.s2c.bin"));
            assert_eq!((calls.len(), replies.len()), (8, 7), "{case}");
            // Calls 0..4 are answered by replies 0..4; call 4 is the oneway `log`.
            for (call, reply) in calls[..4].iter().zip(&replies[..4]) {
                for cut in [0, 1, reply.len() / 2, reply.len() - 1] {
                    let mut b = Bridge::with_config(&BridgeConfig {
                        protocol: "thrift".into(),
                        stat_prefix: None,
                    });
                    let mut h = FakeBridgeHost {
                        request: vec![call.clone()],
                        ..Default::default()
                    };
                    b.on_encode_data(&mut h, true);
                    h.response = vec![reply[..cut].to_vec()];
                    b.on_upstream_data(&mut h, false);
                    assert!(h.responses.is_empty(), "{case}: cut at {cut}");
                    h.response = vec![reply[cut..].to_vec()];
                    b.on_upstream_data(&mut h, false);
                    assert_eq!(h.responses.len(), 1, "{case}: cut at {cut}");
                    assert_eq!((h.responses[0].0, &h.responses[0].2), (200, reply));
                }
            }
            let mut b = Bridge::with_config(&BridgeConfig {
                protocol: "thrift".into(),
                stat_prefix: None,
            });
            let mut h = FakeBridgeHost {
                request: vec![calls[4].clone()],
                ..Default::default()
            };
            b.on_encode_data(&mut h, true);
            assert_eq!(h.responses.len(), 1, "{case}: oneway");
            assert_eq!((h.responses[0].0, h.responses[0].2.len()), (200, 0));
        }
    }

    // The RESP counting the bridge waits on (these cases were the tests of the adapter's own
    // RESP counter, which the codec's walker replaced).
    const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n";
    const GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n";

    #[test]
    fn resp_counts_whole_commands() {
        let mut c = RespValues::new(true);
        assert_eq!(c.feed(SET), 1);
        assert_eq!(c.feed(GET), 1);
        let both = [SET, GET].concat();
        assert_eq!(RespValues::new(true).feed(&both), 2);
    }

    #[test]
    fn resp_every_split_point_counts_the_same() {
        let both = [SET, GET, b"PING\r\n".as_slice()].concat();
        for cut in 0..=both.len() {
            let mut c = RespValues::new(true);
            let n = c.feed(&both[..cut]) + c.feed(&both[cut..]);
            assert_eq!(n, 3, "cut at {cut}");
            assert!(!c.broken());
        }
        // Byte by byte.
        let mut c = RespValues::new(true);
        let n: u64 = both.iter().map(|b| c.feed(std::slice::from_ref(b))).sum();
        assert_eq!(n, 3);
    }

    #[test]
    fn resp_replies_and_nulls() {
        let mut c = RespValues::new(false);
        assert_eq!(
            c.feed(b"+PONG\r\n$-1\r\n*0\r\n:12\r\n*2\r\n*1\r\n+a\r\n$1\r\nb\r\n"),
            5
        );
        assert_eq!(c.feed(b"%1\r\n+k\r\n+v\r\n"), 1);
    }

    #[test]
    fn resp_bulk_payload_may_contain_crlf_and_type_bytes() {
        let mut c = RespValues::new(true);
        assert_eq!(c.feed(b"*1\r\n$6\r\n*\r\n$\r\n\r\n"), 1);
        assert!(!c.broken());
    }

    #[test]
    fn resp_garbage_inside_an_aggregate_stops_counting() {
        let mut c = RespValues::new(true);
        assert_eq!(c.feed(b"*2\r\nxx\r\n"), 0);
        assert!(c.broken());
        assert_eq!(c.feed(SET), 0);
        let mut c = RespValues::new(true);
        assert_eq!(c.feed(b"*x\r\n"), 0);
        assert!(c.broken());
    }

    #[test]
    fn resp_depth_is_bounded() {
        let deep = b"*1\r\n".repeat(33);
        let mut c = RespValues::new(true);
        c.feed(&deep);
        assert!(c.broken());
    }

    #[test]
    fn config() {
        assert_eq!(BridgeConfig::parse(b"").unwrap().protocol, "redis");
        assert_eq!(
            BridgeConfig::parse(br#"{"protocol":"redis"}"#)
                .unwrap()
                .protocol,
            "redis"
        );
        let c = BridgeConfig::parse(br#"{"protocol":"thrift","statPrefix":"bridge_x"}"#).unwrap();
        assert_eq!(
            (c.protocol.as_str(), c.stat_prefix.as_deref()),
            ("thrift", Some("bridge_x"))
        );
        assert!(BridgeConfig::parse(br#"{"protocol":"thrift","typo":1}"#).is_err());
        assert!(BridgeConfig::parse(br#"{"protocol":"kafka"}"#).is_err());
        assert!(BridgeConfig::parse(b"{").is_err());
    }
}
