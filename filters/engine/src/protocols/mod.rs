//! Per-protocol glue between a codec and the [`Tracker`]: which frames are requests, what their
//! id and label are, and how a response ends.

pub(crate) use crate::failure::DecodeFailure;
use crate::fasthash::{FxBuild, FxHasher};
use crate::framer::{FrameDecoder, Step};
use crate::metrics::{LabelSet, MetricSink, Metrics};
use crate::observe::Tracker;
use crate::protocol::Protocol;
use meltemi_codec::{Decoded, Limits};
use std::collections::HashMap;
use std::hash::Hasher;

mod dubbo;
mod kafka;
mod redis;
mod thrift;
mod zookeeper;

pub(crate) use dubbo::account_request as dubbo_request;
pub(crate) use thrift::account_request as thrift_request;

/// The protocol state of one connection.
#[derive(Debug)]
pub(crate) enum Wire {
    /// No decoding.
    Raw,
    /// Redis: replies come back in request order. The walks of a request and of a reply too
    /// big to hold (head mode), boxed: most connections never need one.
    Redis {
        down: Option<Box<meltemi_codec::redis::Skipper>>,
        up: Option<Box<meltemi_codec::redis::Skipper>>,
    },
    /// Kafka: by correlation id.
    Kafka,
    /// ZooKeeper: by xid, with the handshake phase per direction.
    ZooKeeper(meltemi_codec::zookeeper::Connection),
    /// Thrift: by sequence id.
    Thrift,
    /// Dubbo: by request id.
    Dubbo,
}

/// Configured method names to label indexes (`other` is `len()`). A configured name is looked
/// up as `method` or as `service:method` without building that string: it is filed under the
/// Fx hash of each (before, after) split at one of its `:` (and of the whole name as a method),
/// and a hit is confirmed by comparing bytes. The keys come from the configuration, so the
/// cheap hash is safe (see `fasthash`).
/// One way to spell a configured name: (service part, method part, label).
type Entry = (Box<str>, Box<str>, u16);

#[derive(Debug, Default)]
pub(crate) struct MethodIndex {
    /// Pair hash -> (service part, method part, label); the service part is empty for a bare
    /// method entry.
    by_hash: HashMap<u64, Vec<Entry>, FxBuild>,
    len: u16,
}

/// The hash of a (service, method) lookup; `None` for a bare method.
fn pair_hash(service: Option<&str>, method: &str) -> u64 {
    let mut h = FxHasher::default();
    match service {
        Some(s) => {
            h.write_u8(1);
            h.write(s.as_bytes());
        }
        None => h.write_u8(0),
    }
    h.write(method.as_bytes());
    h.finish()
}

impl MethodIndex {
    pub(crate) fn new(methods: &[String]) -> Self {
        let mut by_hash: HashMap<u64, Vec<Entry>, FxBuild> = HashMap::default();
        for (i, m) in methods.iter().enumerate() {
            let label = i as u16;
            let mut file = |svc: Option<&str>, method: &str| {
                by_hash.entry(pair_hash(svc, method)).or_default().push((
                    svc.unwrap_or("").into(),
                    method.into(),
                    label,
                ))
            };
            file(None, m);
            for (at, _) in m.match_indices(':') {
                file(Some(&m[..at]), &m[at + 1..]);
            }
        }
        MethodIndex {
            by_hash,
            len: methods.len() as u16,
        }
    }

    fn find(&self, service: Option<&str>, method: &str) -> Option<u16> {
        // A name configured twice resolves to its last entry (as when this was a map of names).
        self.by_hash
            .get(&pair_hash(service, method))?
            .iter()
            .filter(|(s, m, _)| **m == *method && **s == *service.unwrap_or(""))
            .map(|e| e.2)
            .max()
    }

    /// The label of `service:method`, else of `method`, else `other`.
    pub(crate) fn label(&self, service: Option<&str>, method: &str) -> u16 {
        if self.len == 0 {
            return 0;
        }
        service
            .and_then(|svc| self.find(Some(svc), method))
            .or_else(|| self.find(None, method))
            .unwrap_or(self.len)
    }
}

/// The label set of configured methods, with dots (stat-name separators) written as `_`.
fn method_labels(methods: &[String], reply_codes: Vec<String>) -> LabelSet {
    let mut names: Vec<String> = methods.iter().map(|m| m.replace('.', "_")).collect();
    names.push("other".into());
    LabelSet {
        family: "method",
        names,
        versions: 0,
        exceptions: true,
        reply_codes,
    }
}

/// Everything a protocol handler needs for one frame.
pub(crate) struct Ctx<'a, S> {
    pub(crate) metrics: &'a Metrics,
    pub(crate) limits: &'a Limits,
    pub(crate) methods: &'a MethodIndex,
    pub(crate) tracker: &'a mut Tracker,
    pub(crate) sink: &'a mut S,
    pub(crate) now_ns: u64,
}

impl Wire {
    /// The state and pairing discipline of a new connection.
    pub(crate) fn new(p: Protocol) -> (Wire, Tracker) {
        match p {
            Protocol::Raw => (Wire::Raw, Tracker::ordered()),
            Protocol::Redis => (
                Wire::Redis {
                    down: None,
                    up: None,
                },
                Tracker::ordered(),
            ),
            Protocol::Kafka => (Wire::Kafka, Tracker::by_id()),
            Protocol::ZooKeeper => (
                Wire::ZooKeeper(meltemi_codec::zookeeper::Connection::new()),
                Tracker::by_id(),
            ),
            Protocol::Thrift => (Wire::Thrift, Tracker::by_id()),
            Protocol::Dubbo => (Wire::Dubbo, Tracker::by_id()),
        }
    }

    /// True when this connection decodes frames at all.
    pub(crate) fn decodes(&self) -> bool {
        !matches!(self, Wire::Raw)
    }

    /// Decodes and accounts for one frame at the start of `buf` (`request`: a client frame);
    /// `head`: `buf` is only the first bytes of a frame too big to hold (see `framer`).
    pub(crate) fn frame<S: MetricSink>(
        &mut self,
        buf: &[u8],
        request: bool,
        head: bool,
        cx: &mut Ctx<'_, S>,
    ) -> Result<Step, DecodeFailure> {
        let d = match (self, request) {
            (Wire::Raw, _) => Ok(Decoded::Frame {
                frame: (),
                used: buf.len(),
            }),
            (Wire::Redis { down, .. }, true) if head => return redis::head(down, buf, true, cx),
            (Wire::Redis { up, .. }, false) if head => return redis::head(up, buf, false, cx),
            (Wire::Redis { .. }, true) => redis::request(buf, cx),
            (Wire::Redis { .. }, false) => redis::response(buf, cx),
            (Wire::Kafka, true) => kafka::request(buf, head, cx),
            (Wire::Kafka, false) => kafka::response(buf, head, cx),
            (Wire::ZooKeeper(c), true) => zookeeper::request(c, buf, head, cx),
            (Wire::ZooKeeper(c), false) => zookeeper::response(c, buf, head, cx),
            (Wire::Thrift, true) => thrift::request(buf, head, cx),
            (Wire::Thrift, false) => thrift::response(buf, head, cx),
            (Wire::Dubbo, true) => dubbo::request(buf, head, cx),
            (Wire::Dubbo, false) => dubbo::response(buf, head, cx),
        }?;
        Ok(match d {
            // A head decode reports the whole frame's length: the rest is passed by.
            Decoded::Frame { used, .. } if used > buf.len() => Step::Skip(used),
            d => Step::from(d),
        })
    }

    /// Head mode: the next bytes of a frame whose end only a walk finds (RESP).
    pub(crate) fn stream(
        &mut self,
        data: &[u8],
        request: bool,
    ) -> Result<Option<usize>, DecodeFailure> {
        match self {
            Wire::Redis { down, .. } if request => redis::stream(down, data),
            Wire::Redis { up, .. } => redis::stream(up, data),
            _ => Ok(Some(0)),
        }
    }
}

/// One direction of a session's decoding, as the framer drives it.
pub(crate) struct Direction<'w, 'c, S> {
    pub(crate) wire: &'w mut Wire,
    pub(crate) cx: Ctx<'c, S>,
    pub(crate) request: bool,
}

impl<S: MetricSink> FrameDecoder for Direction<'_, '_, S> {
    type Error = DecodeFailure;

    #[inline]
    fn frame(&mut self, buf: &[u8]) -> Result<Step, DecodeFailure> {
        self.wire.frame(buf, self.request, false, &mut self.cx)
    }

    fn head(&mut self, buf: &[u8], _last: bool) -> Result<Step, DecodeFailure> {
        self.wire.frame(buf, self.request, true, &mut self.cx)
    }

    fn stream(&mut self, data: &[u8]) -> Result<Option<usize>, DecodeFailure> {
        self.wire.stream(data, self.request)
    }
}

/// The per-label metric set of a protocol (`methods`: the configured ones, for Dubbo and Thrift).
pub(crate) fn labels(protocol: Protocol, methods: &[String]) -> LabelSet {
    match protocol {
        Protocol::Redis => redis::labels(),
        Protocol::Kafka => kafka::labels(),
        Protocol::ZooKeeper => zookeeper::labels(),
        Protocol::Thrift => method_labels(methods, thrift::reply_codes()),
        Protocol::Dubbo => method_labels(methods, dubbo::reply_codes()),
        Protocol::Raw => LabelSet {
            family: "method",
            names: Vec::new(),
            versions: 0,
            exceptions: false,
            reply_codes: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::MethodIndex;

    #[test]
    fn method_index_matches_whole_names() {
        let names: Vec<String> = ["add", "Calc:sub", "a:b:c", "add"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = MethodIndex::new(&names);
        let other = 4;
        assert_eq!(m.label(None, "add"), 3, "the last of a repeated name");
        assert_eq!(
            m.label(Some("Any"), "add"),
            3,
            "falls back to the bare method"
        );
        assert_eq!(m.label(Some("Calc"), "sub"), 1);
        assert_eq!(m.label(None, "sub"), other);
        assert_eq!(m.label(Some("Calc"), "mul"), other);
        assert_eq!(m.label(Some("a"), "b:c"), 2);
        assert_eq!(m.label(Some("a:b"), "c"), 2);
        assert_eq!(m.label(None, "a:b:c"), 2, "a name is also a bare method");
        assert_eq!(m.label(Some("a"), "b"), other);
        assert_eq!(MethodIndex::new(&[]).label(Some("x"), "y"), 0);
    }
}
