//! Per-protocol glue between a codec and the [`Tracker`]: which frames are requests, what their
//! id and label are, and how a response ends. Each protocol implements [`Observe`] once, in its
//! own file; [`step`] is the one driver they all share, and the `table!` below is the only list
//! of them (a new protocol adds a [`Protocol`] variant, its file and one line there).

use crate::fasthash::{FxBuild, FxHasher};
use crate::framer::{FrameDecoder, Step};
use crate::metrics::{LabelSet, MetricSink, Metrics};
use crate::observe::Tracker;
use crate::protocol::Protocol;
use meltemi_codec::{Decoded, Limits};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hasher;

pub(crate) use crate::failure::DecodeFailure;

mod dubbo;
mod kafka;
mod raw;
mod redis;
mod sql;
mod tars;
mod thrift;
mod zookeeper;

pub(crate) use dubbo::Dubbo;
pub(crate) use thrift::Thrift;

/// What a protocol implements to be observed: how its codec decodes each direction (a whole
/// frame, or in head mode the first bytes of one too big to hold, see `framer`), how a decoded
/// frame is accounted for (calls on the [`Tracker`] in [`Ctx`]), its closed label set, and how
/// answers find their request.
pub(crate) trait Observe {
    /// Per-connection decoding state: ZooKeeper's handshake phase, Redis's walks; `()` for most.
    type Conn: fmt::Debug + Default;
    /// A decoded client frame.
    type Request<'a>;
    /// A decoded server frame.
    type Response<'a>;
    /// The codec's error.
    type Error: fmt::Display;
    /// Answers come back in request order (Redis) rather than by request id.
    const ORDERED: bool = false;

    /// The label set of the per-label stats and the Istio reply codes (`methods`: the
    /// configured method names, for the protocols that label by method).
    fn labels(methods: &[String]) -> LabelSet;

    /// Decodes the client frame at the start of `buf` (`head`: only its first bytes are given;
    /// `used` is then the whole frame's length).
    fn decode_request<'a>(
        conn: &mut Self::Conn,
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
    ) -> Result<Decoded<Self::Request<'a>>, Self::Error>;

    /// Decodes the server frame at the start of `buf`, as [`Observe::decode_request`];
    /// `tracker` holds what the requests in flight kept for their answers.
    fn decode_response<'a>(
        conn: &mut Self::Conn,
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
        tracker: &Tracker,
    ) -> Result<Decoded<Self::Response<'a>>, Self::Error>;

    /// Accounts for one client frame (routing calls it too, with the frame it decoded).
    fn request<S: MetricSink>(frame: &Self::Request<'_>, cx: &mut Ctx<'_, S>);

    /// Accounts for one server frame.
    fn response<S: MetricSink>(frame: Self::Response<'_>, cx: &mut Ctx<'_, S>);

    /// Head mode: accounts for a frame too big to hold from its first bytes. By default the
    /// head decodes like a frame and the rest is passed by length ([`Step::Skip`]); a protocol
    /// whose frames carry no length walks them itself ([`Step::Stream`], [`Observe::stream`]).
    #[inline]
    fn head<S: MetricSink>(
        conn: &mut Self::Conn,
        buf: &[u8],
        request: bool,
        cx: &mut Ctx<'_, S>,
    ) -> Result<Step, DecodeFailure> {
        step::<Self, S>(conn, buf, request, true, cx)
    }

    /// Head mode, after [`Step::Stream`]: the next bytes of the frame being walked; `Some(used)`
    /// when it ends `used` bytes into `data`.
    fn stream(
        _conn: &mut Self::Conn,
        _data: &[u8],
        _request: bool,
    ) -> Result<Option<usize>, DecodeFailure> {
        Ok(Some(0))
    }
}

/// The one driver of every protocol: decodes the frame at the start of `buf` (a client frame
/// when `request`; `head`: only its first bytes), accounts for it, and tells the framer how
/// to go on.
#[inline]
pub(crate) fn step<P: Observe + ?Sized, S: MetricSink>(
    conn: &mut P::Conn,
    buf: &[u8],
    request: bool,
    head: bool,
    cx: &mut Ctx<'_, S>,
) -> Result<Step, DecodeFailure> {
    let used = if request {
        match P::decode_request(conn, buf, head, cx.limits).map_err(DecodeFailure::from)? {
            Decoded::NeedMore(n) => return Ok(Step::Need(n)),
            Decoded::Frame { frame, used } => {
                P::request(&frame, cx);
                used
            }
        }
    } else {
        let d = P::decode_response(conn, buf, head, cx.limits, cx.tracker);
        match d.map_err(DecodeFailure::from)? {
            Decoded::NeedMore(n) => return Ok(Step::Need(n)),
            Decoded::Frame { frame, used } => {
                P::response(frame, cx);
                used
            }
        }
    };
    // A head decode reports the whole frame's length: the rest is passed by.
    Ok(if used > buf.len() {
        Step::Skip(used)
    } else {
        Step::Frame(used)
    })
}

/// The pairing discipline of `P`'s connections.
fn tracker<P: Observe>() -> Tracker {
    if P::ORDERED {
        Tracker::ordered()
    } else {
        Tracker::by_id()
    }
}

/// The table of protocols: each [`Protocol`] variant with the type that implements [`Observe`]
/// for it. It writes [`Wire`] (one variant per protocol, holding its `Conn`) and the dispatch
/// from a [`Protocol`] or a [`Wire`] to that type, so no other list of protocols exists here.
macro_rules! table {
    ($($name:ident => $ty:ty),* $(,)?) => {
        /// The protocol state of one connection.
        #[derive(Debug)]
        pub(crate) enum Wire {
            $(
                #[doc = concat!("`", stringify!($ty), "`'s connection state.")]
                $name(<$ty as Observe>::Conn),
            )*
        }

        impl Wire {
            /// The state and pairing discipline of a new connection.
            pub(crate) fn new(p: Protocol) -> (Wire, Tracker) {
                match p {
                    $(Protocol::$name => (Wire::$name(Default::default()), tracker::<$ty>()),)*
                }
            }

            /// Decodes and accounts for one frame at the start of `buf` (`request`: a client
            /// frame); `head`: `buf` is only the first bytes of a frame too big to hold (see
            /// `framer`).
            #[inline]
            pub(crate) fn frame<S: MetricSink>(
                &mut self,
                buf: &[u8],
                request: bool,
                head: bool,
                cx: &mut Ctx<'_, S>,
            ) -> Result<Step, DecodeFailure> {
                match self {
                    $(Wire::$name(c) if head => <$ty>::head(c, buf, request, cx),
                      Wire::$name(c) => step::<$ty, S>(c, buf, request, false, cx),)*
                }
            }

            /// Head mode: the next bytes of a frame whose end only a walk finds (RESP).
            pub(crate) fn stream(
                &mut self,
                data: &[u8],
                request: bool,
            ) -> Result<Option<usize>, DecodeFailure> {
                match self {
                    $(Wire::$name(c) => <$ty>::stream(c, data, request),)*
                }
            }
        }

        /// The per-label metric set of a protocol (`methods`: the configured ones, for Dubbo
        /// and Thrift).
        pub(crate) fn labels(protocol: Protocol, methods: &[String]) -> LabelSet {
            match protocol {
                $(Protocol::$name => <$ty>::labels(methods),)*
            }
        }
    };
}

table! {
    Redis => redis::Redis,
    Dubbo => dubbo::Dubbo,
    Thrift => thrift::Thrift,
    Kafka => kafka::Kafka,
    ZooKeeper => zookeeper::ZooKeeper,
    Tars => tars::Tars,
    MySql => sql::MySql,
    Postgres => sql::Postgres,
    Raw => raw::Raw,
}

impl Wire {
    /// True when this connection decodes frames at all.
    pub(crate) fn decodes(&self) -> bool {
        !matches!(self, Wire::Raw(_))
    }
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
pub(crate) fn method_labels(methods: &[String], reply_codes: Vec<String>) -> LabelSet {
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

/// A metric sink for the protocols' session tests: every counter and gauge by id.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestSink(pub(crate) HashMap<u32, i64>);

#[cfg(test)]
impl MetricSink for TestSink {
    fn inc(&mut self, id: crate::MetricId, d: u64) {
        *self.0.entry(id.0).or_default() += d as i64;
    }
    fn gauge_add(&mut self, id: crate::MetricId, d: i64) {
        *self.0.entry(id.0).or_default() += d;
    }
    fn record(&mut self, _: crate::MetricId, _: u64) {}
}

#[cfg(test)]
impl TestSink {
    /// The value of the stat named `name` (its full name) in `e`'s table.
    pub(crate) fn get(&self, e: &crate::Engine, name: &str) -> i64 {
        let i = e
            .metrics
            .defs()
            .iter()
            .position(|d| d.name == name)
            .unwrap_or_else(|| panic!("no stat {name}"));
        self.0.get(&(i as u32)).copied().unwrap_or(0)
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
