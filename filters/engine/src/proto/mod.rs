//! Per-protocol glue between a codec and the [`Tracker`]: which frames are requests, what their
//! id and label are, and how a response ends.

use crate::config::{FilterConfig, Protocol};
use crate::fasthash::FxBuild;
use crate::metrics::{LabelSet, MetricSink, Metrics};
use crate::observe::Tracker;
use meltemi_codec::{Decoded, Limits};
use std::collections::HashMap;
use std::fmt;

mod dubbo;
mod kafka;
mod redis;
mod thrift;
mod zookeeper;

pub(crate) use dubbo::account_request as dubbo_request;
pub(crate) use thrift::account_request as thrift_request;

/// A frame that broke its protocol's rules: the codec's own message (allocated only on this
/// error path, once per connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure(pub String);

impl fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DecodeFailure {
    pub(crate) fn from<E: fmt::Display>(e: E) -> Self {
        DecodeFailure(e.to_string())
    }
}

/// The protocol state of one connection.
#[derive(Debug)]
pub(crate) enum Wire {
    /// No decoding.
    Raw,
    /// Redis: replies come back in request order.
    Redis,
    /// Kafka: by correlation id.
    Kafka,
    /// ZooKeeper: by xid, with the handshake phase per direction.
    ZooKeeper(meltemi_codec::zookeeper::Connection),
    /// Thrift: by sequence id.
    Thrift,
    /// Dubbo: by request id.
    Dubbo,
}

/// Configured method names to label indexes (`other` is `len()`). Keys are bytes so a lookup
/// needs no UTF-8 check; hashed with [`FxBuild`] (the keys come from the configuration).
#[derive(Debug, Default)]
pub(crate) struct MethodIndex(HashMap<Box<[u8]>, u16, FxBuild>);

/// Longest `service:method` key looked up without allocating.
const KEY_ON_STACK: usize = 256;

impl MethodIndex {
    pub(crate) fn new(methods: &[String]) -> Self {
        MethodIndex(
            methods
                .iter()
                .enumerate()
                .map(|(i, m)| (m.as_bytes().into(), i as u16))
                .collect(),
        )
    }

    /// The label of `service:method`, else of `method`, else `other`.
    pub(crate) fn label(&self, service: Option<&str>, method: &str) -> u16 {
        let other = self.0.len() as u16;
        if self.0.is_empty() {
            return other;
        }
        if let Some(svc) = service {
            let n = svc.len() + 1 + method.len();
            let hit = if n <= KEY_ON_STACK {
                let mut key = [0u8; KEY_ON_STACK];
                key[..svc.len()].copy_from_slice(svc.as_bytes());
                key[svc.len()] = b':';
                key[svc.len() + 1..n].copy_from_slice(method.as_bytes());
                self.0.get(&key[..n])
            } else {
                // Rare (a very long name): bounded by the frame size.
                self.0.get(
                    [svc.as_bytes(), b":", method.as_bytes()]
                        .concat()
                        .as_slice(),
                )
            };
            if let Some(&i) = hit {
                return i;
            }
        }
        self.0.get(method.as_bytes()).copied().unwrap_or(other)
    }
}

/// The label set of configured methods, with dots (stat-name separators) written as `_`.
fn method_labels(config: &FilterConfig, reply_codes: Vec<String>) -> LabelSet {
    let mut names: Vec<String> = config.methods.iter().map(|m| m.replace('.', "_")).collect();
    names.push("other".into());
    LabelSet {
        family: "method",
        names,
        versions: 0,
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
            Protocol::Redis => (Wire::Redis, Tracker::ordered()),
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

    /// Decodes and accounts for one request frame at the start of `buf`.
    pub(crate) fn request<S: MetricSink>(
        &mut self,
        buf: &[u8],
        cx: &mut Ctx<'_, S>,
    ) -> Result<Decoded<()>, DecodeFailure> {
        match self {
            Wire::Raw => Ok(Decoded::Frame {
                frame: (),
                used: buf.len(),
            }),
            Wire::Redis => redis::request(buf, cx),
            Wire::Kafka => kafka::request(buf, cx),
            Wire::ZooKeeper(c) => zookeeper::request(c, buf, cx),
            Wire::Thrift => thrift::request(buf, cx),
            Wire::Dubbo => dubbo::request(buf, cx),
        }
    }

    /// Decodes and accounts for one response frame at the start of `buf`.
    pub(crate) fn response<S: MetricSink>(
        &mut self,
        buf: &[u8],
        cx: &mut Ctx<'_, S>,
    ) -> Result<Decoded<()>, DecodeFailure> {
        match self {
            Wire::Raw => Ok(Decoded::Frame {
                frame: (),
                used: buf.len(),
            }),
            Wire::Redis => redis::response(buf, cx),
            Wire::Kafka => kafka::response(buf, cx),
            Wire::ZooKeeper(c) => zookeeper::response(c, buf, cx),
            Wire::Thrift => thrift::response(buf, cx),
            Wire::Dubbo => dubbo::response(buf, cx),
        }
    }
}

/// The per-label metric set of a protocol.
pub(crate) fn labels(config: &FilterConfig) -> LabelSet {
    match config.protocol {
        Protocol::Redis => redis::labels(),
        Protocol::Kafka => kafka::labels(),
        Protocol::ZooKeeper => zookeeper::labels(),
        Protocol::Thrift => method_labels(config, thrift::reply_codes()),
        Protocol::Dubbo => method_labels(config, dubbo::reply_codes()),
        Protocol::Raw => LabelSet {
            family: "method",
            names: Vec::new(),
            versions: 0,
            reply_codes: Vec::new(),
        },
    }
}
