//! Request/response pairing, latency and outcome: the protocol-independent half of
//! observability. Each protocol module turns frames into [`Tracker`] calls; the tracker turns
//! them into metric events.

use crate::fasthash::IdTable;
use crate::metrics::istio::NoReply;
use crate::metrics::{MetricSink, Metrics};
use std::collections::VecDeque;

/// What a request expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Expects a response.
    Call,
    /// Expects none (Thrift oneway, Dubbo one-way).
    Oneway,
    /// Protocol housekeeping: heartbeats, pings, events (counted apart, still paired).
    Event,
}

/// How a request ended; counted in `response_success|error|exception`, with the meaning of
/// each protocol's native Envoy filter where it has one (`docs/design.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A normal answer.
    Success,
    /// The answer says it failed: Redis `-ERR` (as `redis_proxy`'s `command.<c>.error`), Dubbo
    /// non-OK status (as `dubbo_proxy`'s `response_error`), Kafka error code, ZooKeeper error,
    /// Thrift reply carrying an IDL-declared exception (as `thrift_proxy`'s `response_error`).
    Error,
    /// An exception: Thrift message of type Exception, i.e. a TApplicationException (as
    /// `thrift_proxy`'s `response_exception`); Dubbo OK response carrying an exception (as
    /// `dubbo_proxy`'s `response_business_exception`).
    Exception,
}

impl Outcome {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Exception => "exception",
        }
    }
}

/// How responses find their request.
#[derive(Debug)]
enum Pending {
    /// By the protocol's request id.
    ById(IdTable<Inflight>),
    /// In order (Redis).
    Ordered(VecDeque<Inflight>),
}

#[derive(Debug, Clone, Copy)]
struct Inflight {
    label: u16,
    kind: RequestKind,
    /// Protocol data the response decoder needs (Kafka: api key and version).
    aux: u32,
    start_ns: u64,
}

/// Most requests in flight per connection the tracker remembers; more are counted but not paired
/// (a client that never reads its answers cannot grow our memory).
pub const MAX_INFLIGHT: usize = 4096;

/// One connection's requests in flight.
#[derive(Debug)]
pub struct Tracker {
    pending: Pending,
    /// How requests still in flight at close count in the Istio metrics.
    at_close: NoReply,
}

impl Tracker {
    /// Pairs by request id.
    pub fn by_id() -> Tracker {
        Tracker {
            pending: Pending::ById(IdTable::default()),
            at_close: NoReply::Closed,
        }
    }

    /// Pairs in order.
    pub fn ordered() -> Tracker {
        Tracker {
            pending: Pending::Ordered(VecDeque::new()),
            at_close: NoReply::Closed,
        }
    }

    /// Requests waiting for an answer.
    pub fn in_flight(&self) -> usize {
        match &self.pending {
            Pending::ById(m) => m.len(),
            Pending::Ordered(q) => q.len(),
        }
    }

    /// A request left the client. `label` indexes the protocol's label set.
    pub fn request(
        &mut self,
        m: &Metrics,
        sink: &mut impl MetricSink,
        id: i64,
        label: u16,
        kind: RequestKind,
        now_ns: u64,
    ) {
        self.request_aux(m, sink, id, label, kind, 0, now_ns)
    }

    /// The protocol data stored with the request `id` still in flight (by-id pairing only).
    pub fn aux(&self, id: i64) -> Option<u32> {
        match &self.pending {
            Pending::ById(map) => map.get(id).map(|f| f.aux),
            Pending::Ordered(_) => None,
        }
    }

    /// [`Tracker::request`] keeping `aux` for the response decoder.
    #[allow(clippy::too_many_arguments)]
    pub fn request_aux(
        &mut self,
        m: &Metrics,
        sink: &mut impl MetricSink,
        id: i64,
        label: u16,
        kind: RequestKind,
        aux: u32,
        now_ns: u64,
    ) {
        let o = &m.obs;
        sink.inc(o.request, 1);
        sink.inc(
            match kind {
                RequestKind::Call => o.request_call,
                RequestKind::Oneway => o.request_oneway,
                RequestKind::Event => o.request_event,
            },
            1,
        );
        if let Some(l) = m.label(label) {
            sink.inc(l.total, 1);
        }
        if kind == RequestKind::Oneway {
            if let Some((c, _)) = m.istio().and_then(|t| t.no_reply(label, NoReply::Oneway)) {
                sink.inc(c, 1);
            }
            return;
        }
        let f = Inflight {
            label,
            kind,
            aux,
            start_ns: now_ns,
        };
        let stored = match &mut self.pending {
            Pending::ById(map) => map.insert(id, f, MAX_INFLIGHT),
            Pending::Ordered(q) if q.len() < MAX_INFLIGHT => {
                q.push_back(f);
                true
            }
            _ => false,
        };
        if stored {
            sink.gauge_add(o.request_active, 1);
        }
    }

    /// An answer arrived; `code` indexes the protocol's reply codes (the Istio `response_code`).
    /// Unmatched answers are counted as such.
    #[allow(clippy::too_many_arguments)]
    pub fn response(
        &mut self,
        m: &Metrics,
        sink: &mut impl MetricSink,
        id: i64,
        outcome: Outcome,
        code: u16,
        now_ns: u64,
    ) {
        let o = &m.obs;
        sink.inc(o.response, 1);
        let f = match &mut self.pending {
            Pending::ById(map) => map.remove(id),
            Pending::Ordered(q) => q.pop_front(),
        };
        let Some(f) = f else {
            sink.inc(o.response_unmatched, 1);
            return;
        };
        sink.gauge_add(o.request_active, -1);
        sink.inc(
            match outcome {
                Outcome::Success => o.response_success,
                Outcome::Error => o.response_error,
                Outcome::Exception => o.response_exception,
            },
            1,
        );
        let us = now_ns.saturating_sub(f.start_ns) / 1_000;
        if let Some(log) = m.access_log() {
            let label = log
                .labels
                .get(usize::from(f.label))
                .map_or("-", String::as_str);
            sink.access_log(&format!(
                "{}{label} id={id} kind={} outcome={} latency_us={us}",
                log.head,
                match f.kind {
                    RequestKind::Call => "call",
                    RequestKind::Oneway => "oneway",
                    RequestKind::Event => "event",
                },
                outcome.as_str()
            ));
        }
        if f.kind != RequestKind::Event {
            sink.record(o.request_time_us, us);
            if let Some((c, h)) = m.istio().and_then(|t| t.reply(f.label, code)) {
                sink.inc(c, 1);
                sink.record(h, us / 1_000);
            }
        }
        if let Some(l) = m.label(f.label) {
            sink.inc(
                match outcome {
                    Outcome::Success => l.success,
                    Outcome::Error => l.error,
                    Outcome::Exception => l.exception.unwrap_or(l.error),
                },
                1,
            );
            sink.record(l.latency_us, us);
        }
    }

    /// An out-of-band message from the server that answers no request (watch event, push).
    pub fn server_event(&self, m: &Metrics, sink: &mut impl MetricSink) {
        sink.inc(m.obs.server_event, 1);
    }

    /// Decoding stopped on bytes that broke the protocol (from the client when `request`):
    /// requests still in flight at close carry that in their Istio `response_flags`.
    pub fn decode_error(&mut self, request: bool) {
        self.at_close = if request {
            NoReply::DownstreamProtocolError
        } else {
            NoReply::UpstreamProtocolError
        };
    }

    /// The connection closed: whatever is still in flight got no reply.
    pub fn close(&mut self, m: &Metrics, sink: &mut impl MetricSink) {
        let n = self.in_flight() as u64;
        if n > 0 {
            sink.inc(m.obs.request_no_reply, n);
            sink.gauge_add(m.obs.request_active, -(n as i64));
        }
        if let Some(t) = m.istio() {
            let mut count = |f: &Inflight| {
                if f.kind == RequestKind::Event {
                    return;
                }
                if let Some((c, _)) = t.no_reply(f.label, self.at_close) {
                    sink.inc(c, 1);
                }
            };
            match &self.pending {
                Pending::ById(map) => map.values().for_each(&mut count),
                Pending::Ordered(q) => q.iter().for_each(&mut count),
            }
        }
        match &mut self.pending {
            Pending::ById(map) => map.clear(),
            Pending::Ordered(q) => q.clear(),
        }
    }
}
