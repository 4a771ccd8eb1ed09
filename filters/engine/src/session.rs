//! One connection's state machine.

use crate::config::{FilterConfig, OnDecodeError};
use crate::framer::{FrameError, Framer};
use crate::metrics::{MetricSink, Metrics};
use crate::observe::Tracker;
use crate::protocols::{self, Ctx, DecodeFailure, Dubbo, Observe, Thrift, Wire};
use crate::route::RequestFrame;
use meltemi_codec::Limits;

/// What the adapter must do after handing the engine some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the bytes through untouched.
    Continue,
    /// Close this connection.
    Close(CloseReason),
}

/// Why the engine asked to close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A frame broke the protocol's rules.
    DecodeError,
    /// Policy denied the connection.
    Denied,
    /// The worker holds more than its budget (`workerHeldBudgetBytes`).
    BufferOverflow,
}

/// Bytes held across the connections of one worker (one Envoy worker thread, one wasm VM):
/// the adapter keeps one per worker and every [`Session`] reports to it with
/// [`Session::settle_held`], so memory is bounded by configuration whatever clients send.
#[derive(Debug, Default)]
pub struct HeldBudget {
    held: usize,
}

impl HeldBudget {
    /// Bytes held now by the worker's connections.
    pub fn held(&self) -> usize {
        self.held
    }
}

/// The compiled configuration shared (read-only) by every connection of a filter instance.
#[derive(Debug)]
pub struct Engine {
    /// The validated configuration.
    pub config: FilterConfig,
    /// The metric table built from it.
    pub metrics: Metrics,
    limits: Limits,
    methods: protocols::MethodIndex,
}

impl Engine {
    /// Compiles a validated configuration.
    pub fn new(config: FilterConfig) -> Engine {
        let metrics = Metrics::new(config.metric_spec(), &config.labels());
        let limits = Limits {
            max_frame: config.max_frame_bytes,
            ..Limits::default()
        };
        let methods = protocols::MethodIndex::new(&config.methods);
        Engine {
            config,
            metrics,
            limits,
            methods,
        }
    }
}

/// Per-connection engine state. It holds no reference to the [`Engine`]; every call takes it, so
/// adapters can keep the engine behind whatever shared pointer their host allows.
#[derive(Debug)]
pub struct Session {
    open: bool,
    wire: Wire,
    tracker: Tracker,
    down: Framer,
    up: Framer,
    /// Decoding stopped (a decode error with `on_decode_error: passthrough`).
    passthrough: bool,
    error: Option<DecodeFailure>,
    /// What this connection last reported to its worker's [`HeldBudget`].
    reported_held: usize,
}

impl Session {
    /// A new connection: counts it.
    pub fn new(engine: &Engine, sink: &mut impl MetricSink) -> Self {
        sink.inc(engine.metrics.core.cx_total, 1);
        sink.gauge_add(engine.metrics.core.cx_active, 1);
        let (wire, tracker) = Wire::new(engine.config.protocol);
        Session {
            open: true,
            wire,
            tracker,
            down: Framer::default(),
            up: Framer::default(),
            passthrough: false,
            error: None,
            reported_held: 0,
        }
    }

    /// The first decode error of this connection, for the adapter's one log line.
    pub fn error(&self) -> Option<&str> {
        self.error.as_ref().map(|e| e.0.as_str())
    }

    /// Bytes held for frames that straddle chunks (both directions).
    pub fn buffered(&self) -> usize {
        self.down.pending() + self.up.pending()
    }

    /// Frames so far that were too big to hold and were decoded from their first bytes.
    pub fn headed(&self) -> u64 {
        self.down.headed() + self.up.headed()
    }

    /// Requests waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    /// Bytes from the client (only the new ones), at monotonic time `now_ns`.
    pub fn on_downstream(
        &mut self,
        engine: &Engine,
        data: &[u8],
        now_ns: u64,
        sink: &mut impl MetricSink,
    ) -> Verdict {
        self.count_downstream(engine, data, sink);
        self.feed(engine, data, now_ns, sink, true)
    }

    /// Counts client bytes without decoding them: for a routed connection, whose router decodes
    /// each request frame once and hands it to [`Session::observe_request`].
    pub fn count_downstream(&mut self, engine: &Engine, data: &[u8], sink: &mut impl MetricSink) {
        sink.inc(engine.metrics.core.downstream_rx_bytes, data.len() as u64);
        if let Some(marker) = &engine.config.panic_on {
            if data.windows(marker.len()).any(|w| w == marker.as_slice()) {
                panic!("meltemi: panic_on marker seen (test-only fault injection)");
            }
        }
    }

    /// Accounts for one client frame the router already decoded (see
    /// [`crate::route::route_request_with`]). A frame of another protocol than this session's
    /// is ignored.
    pub fn observe_request(
        &mut self,
        engine: &Engine,
        frame: RequestFrame<'_>,
        now_ns: u64,
        sink: &mut impl MetricSink,
    ) {
        if self.passthrough || self.error.is_some() {
            return;
        }
        let mut cx = Ctx {
            metrics: &engine.metrics,
            limits: &engine.limits,
            methods: &engine.methods,
            tracker: &mut self.tracker,
            sink,
            now_ns,
        };
        match (&self.wire, frame) {
            (Wire::Thrift(_), RequestFrame::Thrift(f)) => Thrift::request(f, &mut cx),
            (Wire::Dubbo(_), RequestFrame::Dubbo(m)) => Dubbo::request(m, &mut cx),
            _ => {}
        }
    }

    /// The router found broken client bytes: counted like a decode error of
    /// [`Session::on_downstream`] (the router closes the connection).
    pub fn request_failed(
        &mut self,
        engine: &Engine,
        e: &DecodeFailure,
        sink: &mut impl MetricSink,
    ) {
        if self.passthrough || self.error.is_some() {
            return;
        }
        sink.inc(engine.metrics.obs.request_decoding_error, 1);
        self.error = Some(e.clone());
    }

    /// Bytes from the server (only the new ones), at monotonic time `now_ns`.
    pub fn on_upstream(
        &mut self,
        engine: &Engine,
        data: &[u8],
        now_ns: u64,
        sink: &mut impl MetricSink,
    ) -> Verdict {
        sink.inc(engine.metrics.core.upstream_rx_bytes, data.len() as u64);
        self.feed(engine, data, now_ns, sink, false)
    }

    fn feed(
        &mut self,
        engine: &Engine,
        data: &[u8],
        now_ns: u64,
        sink: &mut impl MetricSink,
        request: bool,
    ) -> Verdict {
        if self.passthrough || self.error.is_some() || !self.wire.decodes() {
            return Verdict::Continue;
        }
        let Session {
            wire,
            tracker,
            down,
            up,
            ..
        } = self;
        let cx = Ctx {
            metrics: &engine.metrics,
            limits: &engine.limits,
            methods: &engine.methods,
            tracker,
            sink,
            now_ns,
        };
        let cap = engine.config.max_held_bytes;
        let mut d = protocols::Direction { wire, cx, request };
        let framer = if request { down } else { up };
        let r = framer.feed_capped(data, cap, &mut d).map_err(|e| match e {
            FrameError::Decode(e) => e,
            FrameError::HeadTooLarge { need } => DecodeFailure(format!(
                "a frame's head needs {need} bytes, more than maxHeldBytes ({cap})"
            )),
        });
        let tracker = d.cx.tracker;
        let sink = d.cx.sink;
        let Err(e) = r else {
            return Verdict::Continue;
        };
        tracker.decode_error(request);
        let o = &engine.metrics.obs;
        sink.inc(
            if request {
                o.request_decoding_error
            } else {
                o.response_decoding_error
            },
            1,
        );
        self.error = Some(e);
        match engine.config.on_decode_error {
            OnDecodeError::Close => Verdict::Close(CloseReason::DecodeError),
            OnDecodeError::Passthrough => {
                self.passthrough = true;
                Verdict::Continue
            }
        }
    }

    /// Reports what this connection holds now (the engine's unfinished frames plus `extra`,
    /// the adapter's own: detoured requests, answers waiting to be written) to the worker's
    /// `budget`, and the `held_bytes` gauge. When the connection grew and the worker is now
    /// over `workerHeldBudgetBytes`, counts `cx_buffer_overflow` and asks to close it.
    /// `closing`: the connection is gone, its share is given back.
    pub fn settle_held(
        &mut self,
        engine: &Engine,
        budget: &mut HeldBudget,
        extra: usize,
        closing: bool,
        sink: &mut impl MetricSink,
    ) -> Verdict {
        let now = if closing {
            0
        } else {
            self.buffered().saturating_add(extra)
        };
        let before = std::mem::replace(&mut self.reported_held, now);
        if now == before {
            return Verdict::Continue;
        }
        budget.held = budget.held.saturating_sub(before).saturating_add(now);
        sink.gauge_add(engine.metrics.core.held_bytes, now as i64 - before as i64);
        if now > before && budget.held > engine.config.worker_held_budget {
            sink.inc(engine.metrics.core.cx_buffer_overflow, 1);
            if self.error.is_none() {
                self.error = Some(DecodeFailure(format!(
                    "the worker holds {} bytes, over workerHeldBudgetBytes ({}); this connection holds {now}",
                    budget.held, engine.config.worker_held_budget
                )));
            }
            return Verdict::Close(CloseReason::BufferOverflow);
        }
        Verdict::Continue
    }

    /// The connection closed (either side). Idempotent.
    pub fn on_close(&mut self, engine: &Engine, sink: &mut impl MetricSink) {
        if std::mem::take(&mut self.open) {
            sink.gauge_add(engine.metrics.core.cx_active, -1);
            self.tracker.close(&engine.metrics, sink);
        }
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// Per-connection memory: a protocol's state lives inline in `Wire`, so a protocol with a
    /// big state (boxed, like the Redis walks) must not grow every connection. 272 bytes when
    /// the protocol table landed.
    #[test]
    fn a_session_stays_small() {
        let n = std::mem::size_of::<super::Session>();
        assert!(n <= 272, "size_of::<Session>() = {n}");
    }
}
