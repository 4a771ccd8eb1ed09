//! One connection's state machine.

use crate::config::FilterConfig;
use crate::metrics::{MetricSink, Metrics};

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
}

impl Engine {
    /// Compiles a validated configuration.
    pub fn new(config: FilterConfig) -> Engine {
        let metrics = Metrics::new(&config);
        Engine { config, metrics }
    }
}

/// Per-connection engine state. It holds no reference to the [`Engine`]; every call takes it, so
/// adapters can keep the engine behind whatever shared pointer their host allows.
#[derive(Debug)]
pub struct Session {
    open: bool,
}

impl Session {
    /// A new connection: counts it.
    pub fn new(engine: &Engine, sink: &mut impl MetricSink) -> Self {
        sink.inc(engine.metrics.core.cx_total, 1);
        sink.gauge_add(engine.metrics.core.cx_active, 1);
        Session { open: true }
    }

    /// Bytes from the client, as the host holds them (`data` may be only the new part).
    pub fn on_downstream(
        &mut self,
        engine: &Engine,
        data: &[u8],
        sink: &mut impl MetricSink,
    ) -> Verdict {
        sink.inc(engine.metrics.core.downstream_rx_bytes, data.len() as u64);
        if let Some(marker) = &engine.config.panic_on {
            if data.windows(marker.len()).any(|w| w == marker.as_slice()) {
                panic!("meltemi: panic_on marker seen (test-only fault injection)");
            }
        }
        Verdict::Continue
    }

    /// Bytes from the server.
    pub fn on_upstream(
        &mut self,
        engine: &Engine,
        data: &[u8],
        sink: &mut impl MetricSink,
    ) -> Verdict {
        sink.inc(engine.metrics.core.upstream_rx_bytes, data.len() as u64);
        Verdict::Continue
    }

    /// The connection closed (either side). Idempotent.
    pub fn on_close(&mut self, engine: &Engine, sink: &mut impl MetricSink) {
        if std::mem::take(&mut self.open) {
            sink.gauge_add(engine.metrics.core.cx_active, -1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;
    use crate::metrics::MetricId;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake(HashMap<u32, i64>);
    impl MetricSink for Fake {
        fn inc(&mut self, id: MetricId, d: u64) {
            *self.0.entry(id.0).or_default() += d as i64;
        }
        fn gauge_add(&mut self, id: MetricId, d: i64) {
            *self.0.entry(id.0).or_default() += d;
        }
        fn record(&mut self, _: MetricId, _: u64) {}
    }

    #[test]
    fn counts_bytes_and_connections() {
        let e = Engine::new(FilterConfig::new(Protocol::Raw, "t"));
        let m = &e.metrics;
        let mut sink = Fake::default();
        let mut s = Session::new(&e, &mut sink);
        assert_eq!(s.on_downstream(&e, b"hello", &mut sink), Verdict::Continue);
        s.on_upstream(&e, b"hi", &mut sink);
        s.on_close(&e, &mut sink);
        s.on_close(&e, &mut sink);
        assert_eq!(sink.0[&m.core.downstream_rx_bytes.0], 5);
        assert_eq!(sink.0[&m.core.upstream_rx_bytes.0], 2);
        assert_eq!(sink.0[&m.core.cx_total.0], 1);
        assert_eq!(sink.0[&m.core.cx_active.0], 0);
        assert_eq!(m.defs()[m.core.cx_total.0 as usize].name, "raw.t.cx_total");
    }

    #[test]
    fn bad_stat_prefix_is_refused_with_field() {
        let cfg = FilterConfig::new(Protocol::Redis, "a b");
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.field, "stat_prefix");
    }

    #[test]
    #[should_panic(expected = "panic_on marker")]
    fn panic_marker_panics() {
        let mut cfg = FilterConfig::new(Protocol::Raw, "t");
        cfg.panic_on = Some(b"BOOM".to_vec());
        let e = Engine::new(cfg);
        let mut sink = Fake::default();
        let mut s = Session::new(&e, &mut sink);
        s.on_downstream(&e, b"xxBOOMxx", &mut sink);
    }
}
