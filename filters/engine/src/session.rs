//! One connection's state machine.

use crate::config::{FilterConfig, OnDecodeError};
use crate::framer::Framer;
use crate::metrics::{MetricSink, Metrics};
use crate::observe::Tracker;
use crate::proto::{self, Ctx, DecodeFailure, Wire};
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
}

/// The compiled configuration shared (read-only) by every connection of a filter instance.
#[derive(Debug)]
pub struct Engine {
    /// The validated configuration.
    pub config: FilterConfig,
    /// The metric table built from it.
    pub metrics: Metrics,
    limits: Limits,
    methods: proto::MethodIndex,
}

impl Engine {
    /// Compiles a validated configuration.
    pub fn new(config: FilterConfig) -> Engine {
        let metrics = Metrics::new(&config, &proto::labels(&config));
        let limits = Limits {
            max_frame: config.max_frame_bytes,
            ..Limits::default()
        };
        let methods = proto::MethodIndex::new(&config.methods);
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
            (Wire::Thrift, RequestFrame::Thrift(f)) => proto::thrift_request(f, &mut cx),
            (Wire::Dubbo, RequestFrame::Dubbo(m)) => proto::dubbo_request(m, &mut cx),
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
        let mut cx = Ctx {
            metrics: &engine.metrics,
            limits: &engine.limits,
            methods: &engine.methods,
            tracker,
            sink,
            now_ns,
        };
        let r = if request {
            down.feed(data, |buf| wire.request(buf, &mut cx))
        } else {
            up.feed(data, |buf| wire.response(buf, &mut cx))
        };
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

    /// The connection closed (either side). Idempotent.
    pub fn on_close(&mut self, engine: &Engine, sink: &mut impl MetricSink) {
        if std::mem::take(&mut self.open) {
            sink.gauge_add(engine.metrics.core.cx_active, -1);
            self.tracker.close(&engine.metrics, sink);
        }
    }
}
