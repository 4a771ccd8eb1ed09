//! Per-connection glue of the network filter, written against [`NetworkHost`] only.
//!
//! A pass-through observer before `tcp_proxy`: it hands each chunk of new bytes to the engine's
//! [`Session`] and maps the engine's metric events onto Envoy stats. It never changes or holds
//! the stream unless the engine asks to close it. `tcp_proxy` consumes the whole read buffer on
//! every `onData` (it asserts so), hence each read hook sees only new bytes.

use crate::clock::now_ns;
use crate::config::{Config, Handle};
use crate::detour::{Detour, Observer, ReadOutcome};
use crate::held;
use crate::host::{CalloutOutcome, Close, Direction, Level, NetworkHost};
use crate::rds::{self, Discovery, RdsSink};
use crate::routing::Routing;
use meltemi_engine::batch::Event;
use meltemi_engine::route::RequestFrame;
use meltemi_engine::{Batch, DecodeFailure, Engine, Session, Verdict};
use std::sync::Arc;

/// What a data hook tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Metric events of one hook, applied to the host after the host's buffers are released (the
/// chunks borrow the host), summed per metric (one ABI call per touched counter per hook).
/// Reused, so steady state allocates nothing.
type Events = Batch;

fn flush(events: &mut Events, config: &Config, host: &mut impl NetworkHost) {
    events.drain(|e| match e {
        Event::Add(id, v) => match config.handle(id) {
            Some(Handle::Counter(c)) => host.increment_counter(c, v as u64),
            Some(Handle::Gauge(g)) => host.gauge_add(g, v),
            _ => {}
        },
        Event::Record(id, v) => {
            if let Some(Handle::Histogram(h)) = config.handle(id) {
                host.record_histogram(h, v);
            }
        }
        Event::Log(line) => host.log(Level::Info, line),
    });
}

/// The observability session as the detour reports to it.
struct Obs<'a> {
    session: &'a mut Session,
    engine: &'a Engine,
    events: &'a mut Events,
    now: u64,
    verdict: Verdict,
}

impl Observer for Obs<'_> {
    fn down(&mut self, data: &[u8]) {
        self.session
            .count_downstream(self.engine, data, self.events);
    }
    fn down_frame(&mut self, frame: RequestFrame<'_>) {
        self.session
            .observe_request(self.engine, frame, self.now, self.events);
    }
    fn down_error(&mut self, e: &DecodeFailure) {
        self.session.request_failed(self.engine, e, self.events);
    }
    fn up(&mut self, data: &[u8]) {
        if self.verdict == Verdict::Continue {
            self.verdict = self
                .session
                .on_upstream(self.engine, data, self.now, self.events);
        }
    }
}

/// Route-discovery updates reported to the connection that polled.
struct HostSink<'a, H: NetworkHost>(&'a mut H);

impl<H: NetworkHost> RdsSink for HostSink<'_, H> {
    fn inc(&mut self, id: crate::host::CounterId) {
        self.0.increment_counter(id, 1);
    }
    fn set_gauge(&mut self, id: crate::host::GaugeId, value: u64) {
        self.0.set_gauge(id, value);
    }
    fn log(&self, level: Level, msg: &str) {
        self.0.log(level, msg);
    }
}

/// One connection's state.
#[derive(Debug)]
pub struct Filter {
    config: Arc<Config>,
    /// The route table this connection routes by: the listener's, or the newest one route
    /// discovery fetched (checked once per read).
    routing: Option<Arc<Routing>>,
    routing_version: u64,
    /// This connection's route-discovery poll in flight (the fallback poller).
    rds_callout: Option<u64>,
    /// No bootstrap extension polls: this connection polls on traffic (read once).
    poll_on_traffic: bool,
    session: Option<Session>,
    detour: Option<Detour>,
    events: Events,
    probes_in_flight: u32,
    logged: bool,
    /// Redis routing: this connection's router state (the module is the terminal filter).
    redis: Option<crate::redis::RedisConn>,
}

impl Filter {
    pub fn new(config: Arc<Config>) -> Self {
        Filter {
            config,
            routing: None,
            routing_version: 0,
            rds_callout: None,
            poll_on_traffic: false,
            session: None,
            detour: None,
            events: Events::default(),
            probes_in_flight: 0,
            logged: false,
            redis: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn on_new_connection(&mut self, host: &mut impl NetworkHost) -> Flow {
        let config = Arc::clone(&self.config);
        self.session = Some(Session::new(&config.engine, &mut self.events));
        self.routing = match &config.discovery {
            Some(d) => Some(d.current()),
            None => config.routing.clone(),
        };
        self.poll_on_traffic = config.discovery.is_some() && !rds::bootstrap_polling();
        if config.engine.config.redis.is_some() {
            let max = config.engine.config.max_frame_bytes;
            self.redis = Some(crate::redis::RedisConn::new(host, max));
        }
        if let Some(r) = &self.routing {
            self.routing_version = r.version;
            self.detour = Some(Detour::new(&config, r, host.connection_id()));
        }
        flush(&mut self.events, &config, host);
        Flow::Continue
    }

    /// Client bytes arrived; `len` is the size of Envoy's read buffer.
    pub fn on_read(&mut self, host: &mut impl NetworkHost, _len: usize, _end_stream: bool) -> Flow {
        let config = Arc::clone(&self.config);
        if let Some(probe) = &config.probe {
            if contains(&host.chunks(Direction::Downstream), &probe.on) {
                return self.start_probe(host);
            }
        }
        if let (Some(r), Some(router)) = (self.redis.as_mut(), &config.engine.config.redis) {
            // Observability as for a pass-through: the client's commands, then the replies
            // the module wrote.
            let now = now_ns();
            if let Some(session) = self.session.as_mut() {
                for &chunk in host.chunks(Direction::Downstream).iter() {
                    let _ = session.on_downstream(&config.engine, chunk, now, &mut self.events);
                }
            }
            let out = r.on_read(host, router, &config.shards);
            if let Some(session) = self.session.as_mut() {
                let _ = session.on_upstream(&config.engine, &out, now, &mut self.events);
            }
            flush(&mut self.events, &config, host);
            return Flow::Stop;
        }
        if config.routing.is_some() {
            return self.routed(host, true);
        }
        self.feed(host, Direction::Downstream)
    }

    /// The routing paths of a read (`read`) or a write.
    fn routed(&mut self, host: &mut impl NetworkHost, read: bool) -> Flow {
        let config = Arc::clone(&self.config);
        if read {
            if let Some(disc) = &config.discovery {
                self.discover(disc, host);
            }
        }
        let (Some(routing), Some(d), Some(session)) = (
            self.routing.as_ref(),
            self.detour.as_mut(),
            self.session.as_mut(),
        ) else {
            return Flow::Continue;
        };
        let mut obs = Obs {
            session,
            engine: &config.engine,
            events: &mut self.events,
            now: now_ns(),
            verdict: Verdict::Continue,
        };
        let broken = if read {
            match d.on_read(routing, host, &mut obs) {
                ReadOutcome::Continue => None,
                ReadOutcome::Broken(m) => Some(m),
            }
        } else {
            d.on_write(routing, host, &mut obs);
            None
        };
        let mut verdict = obs.verdict;
        if verdict == Verdict::Continue && broken.is_none() {
            let extra = d.buffered();
            verdict = held::with(|b| {
                session.settle_held(&config.engine, b, extra, false, &mut self.events)
            });
        }
        flush(&mut self.events, &config, host);
        let why = match (broken, verdict) {
            (Some(m), _) => m,
            (None, Verdict::Close(_)) => self
                .session
                .as_ref()
                .and_then(|s| s.error())
                .unwrap_or("")
                .to_owned(),
            (None, Verdict::Continue) => return Flow::Continue,
        };
        if !std::mem::replace(&mut self.logged, true) {
            host.log(
                Level::Warn,
                &format!(
                    "meltemi: {}: closing connection {} (routing): {why}",
                    config.engine.config.stat_prefix,
                    host.connection_id(),
                ),
            );
        }
        host.close(Close::NoFlush);
        Flow::Stop
    }

    /// Route discovery on the request path: one atomic load finds whether a newer table is in
    /// use (then the connection takes it); without a bootstrap extension polling, the
    /// connection also polls when the last poll is older than the interval (one more load).
    fn discover(&mut self, disc: &Discovery, host: &mut impl NetworkHost) {
        if disc.version() != self.routing_version {
            let r = disc.current();
            self.routing_version = r.version;
            self.routing = Some(r);
        }
        if self.rds_callout.is_none() && !rds::bootstrap_polling() && disc.claim_poll(now_ns()) {
            let started = disc.with_request(|cluster, headers| {
                host.http_callout(cluster, headers, b"", rds::POLL_TIMEOUT_MS)
            });
            match started {
                Ok(id) => self.rds_callout = Some(id),
                Err(_) => {
                    disc.on_answer(false, None, &[], &mut HostSink(host));
                }
            }
        }
    }

    /// Upstream bytes are about to be written to the client.
    pub fn on_write(
        &mut self,
        host: &mut impl NetworkHost,
        _len: usize,
        _end_stream: bool,
    ) -> Flow {
        if self.redis.is_some() {
            // Only the module's own replies reach here (terminal filter, no upstream).
            return Flow::Continue;
        }
        if self.config.routing.is_some() {
            return self.routed(host, false);
        }
        self.feed(host, Direction::Upstream)
    }

    fn feed(&mut self, host: &mut impl NetworkHost, dir: Direction) -> Flow {
        let config = Arc::clone(&self.config);
        let Some(session) = self.session.as_mut() else {
            return Flow::Continue;
        };
        let now = now_ns();
        let mut verdict = Verdict::Continue;
        for &chunk in host.chunks(dir).iter() {
            verdict = match dir {
                Direction::Downstream => {
                    session.on_downstream(&config.engine, chunk, now, &mut self.events)
                }
                Direction::Upstream => {
                    session.on_upstream(&config.engine, chunk, now, &mut self.events)
                }
            };
            if verdict != Verdict::Continue {
                break;
            }
        }
        if verdict == Verdict::Continue {
            verdict =
                held::with(|b| session.settle_held(&config.engine, b, 0, false, &mut self.events));
        }
        flush(&mut self.events, &config, host);
        match verdict {
            Verdict::Continue => Flow::Continue,
            Verdict::Close(reason) => {
                if !std::mem::replace(&mut self.logged, true) {
                    host.log(
                        Level::Warn,
                        &format!(
                            "meltemi: {}: closing connection {} ({reason:?}): {}",
                            config.engine.config.stat_prefix,
                            host.connection_id(),
                            session.error().unwrap_or("")
                        ),
                    );
                }
                host.close(Close::NoFlush);
                Flow::Stop
            }
        }
    }

    /// Work handed back from another thread (Redis replies from the module's shard readers).
    pub fn on_scheduled(&mut self, host: &mut impl NetworkHost, _event: u64) {
        let config = Arc::clone(&self.config);
        if let Some(r) = self.redis.as_mut() {
            let out = r.on_scheduled(host);
            if let Some(session) = self.session.as_mut() {
                let _ = session.on_upstream(&config.engine, &out, now_ns(), &mut self.events);
            }
            flush(&mut self.events, &config, host);
        }
    }

    /// The connection closed (either side) or the filter is going away.
    pub fn on_close(&mut self, host: &mut impl NetworkHost) {
        let config = Arc::clone(&self.config);
        if let Some(r) = self.redis.as_mut() {
            r.on_close();
        }
        if let Some(d) = self.detour.as_mut() {
            d.on_close();
        }
        if let Some(s) = self.session.as_mut() {
            held::with(|b| s.settle_held(&config.engine, b, 0, true, &mut self.events));
            s.on_close(&config.engine, &mut self.events);
            flush(&mut self.events, &config, host);
        }
    }

    /// The test probe: take the client's bytes out of the stream and ask the bridge instead.
    fn start_probe(&mut self, host: &mut impl NetworkHost) -> Flow {
        let config = Arc::clone(&self.config);
        let Some(probe) = &config.probe else {
            return Flow::Continue;
        };
        let held = host.buffered(Direction::Downstream);
        host.drain(Direction::Downstream, held);
        let headers: [(&str, &[u8]); 4] = [
            (":method", b"POST"),
            (":path", b"/meltemi/probe"),
            ("host", probe.cluster.as_bytes()),
            ("content-type", b"application/octet-stream"),
        ];
        match host.http_callout(&probe.cluster, &headers, &probe.body, probe.timeout_ms) {
            Ok(_) => self.probes_in_flight += 1,
            Err(e) => {
                host.increment_counter(config.metrics.callouts_failed, 1);
                host.log(
                    Level::Warn,
                    &format!(
                        "meltemi: probe callout to {} not started: {e:?}",
                        probe.cluster
                    ),
                );
                host.write_to_client(b"-ERR meltemi probe failed\r\n", false);
            }
        }
        Flow::Stop
    }

    /// A callout finished. `status` is the `:status` of the answer, if any.
    pub fn on_callout_done(
        &mut self,
        host: &mut impl NetworkHost,
        id: u64,
        outcome: CalloutOutcome,
        status: Option<&[u8]>,
        body: &[&[u8]],
    ) {
        let config = Arc::clone(&self.config);
        if self.rds_callout == Some(id) {
            self.rds_callout = None;
            if let Some(disc) = &config.discovery {
                let ok = outcome == CalloutOutcome::Success;
                disc.on_answer(ok, status, body, &mut HostSink(host));
            }
            return;
        }
        if let (Some(d), Some(session)) = (self.detour.as_mut(), self.session.as_mut()) {
            if d.owns(id) {
                let mut obs = Obs {
                    session,
                    engine: &config.engine,
                    events: &mut self.events,
                    now: now_ns(),
                    verdict: Verdict::Continue,
                };
                d.on_callout_done(host, id, outcome, status, body, &mut obs);
                // An answer held for a boundary, or a request given back: the share changes.
                let extra = d.buffered();
                held::with(|b| {
                    session.settle_held(&config.engine, b, extra, false, &mut self.events)
                });
                flush(&mut self.events, &config, host);
                return;
            }
        }
        self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        let m = &self.config.metrics;
        if outcome == CalloutOutcome::Success && status == Some(b"200") {
            host.increment_counter(m.callouts_ok, 1);
            for chunk in body {
                host.write_to_client(chunk, false);
            }
        } else {
            host.increment_counter(m.callouts_failed, 1);
            host.write_to_client(b"-ERR meltemi probe failed\r\n", false);
        }
    }
}

/// True if `needle` occurs in the concatenation of `chunks`.
fn contains(chunks: &[&[u8]], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return false;
    }
    let find = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    match chunks {
        [] => false,
        [one] => find(one),
        // Rare (only with a marker configured and data split across chunks): copy to search
        // across chunk borders.
        many => find(&many.concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeNetworkHost, FakeRegistry};

    fn config(json: &str) -> (Arc<Config>, FakeRegistry) {
        let mut reg = FakeRegistry::default();
        let c = Config::parse(json.as_bytes(), &mut reg).unwrap();
        (Arc::new(c), reg)
    }

    fn counter(reg: &FakeRegistry, h: &FakeNetworkHost, name: &str) -> u64 {
        let i = reg.counters.iter().position(|c| c == name).unwrap();
        h.counters.get(&i).copied().unwrap_or(0)
    }

    fn read(f: &mut Filter, h: &mut FakeNetworkHost, chunks: &[&[u8]]) -> Flow {
        h.downstream = chunks.iter().map(|c| c.to_vec()).collect();
        let len = h.buffered(Direction::Downstream);
        let flow = f.on_read(h, len, false);
        // tcp_proxy consumes everything after a Continue.
        if flow == Flow::Continue {
            h.downstream.clear();
        }
        flow
    }

    #[test]
    fn counts_bytes_and_commands_across_reads_and_chunks() {
        let (cfg, reg) = config(r#"{"protocol":"redis","stat_prefix":"t"}"#);
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        assert_eq!(f.on_new_connection(&mut h), Flow::Continue);
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        assert_eq!(
            read(&mut f, &mut h, &[&set[..10], &set[10..20]]),
            Flow::Continue
        );
        assert_eq!(counter(&reg, &h, "redis.t.request"), 0);
        let get = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(read(&mut f, &mut h, &[&set[20..], get]), Flow::Continue);
        assert_eq!(counter(&reg, &h, "redis.t.command.set.total"), 1);
        assert_eq!(counter(&reg, &h, "redis.t.command.get.total"), 1);
        assert_eq!(
            counter(&reg, &h, "redis.t.downstream_rx_bytes"),
            (set.len() + get.len()) as u64
        );
        h.upstream = vec![b"+OK\r\n$1\r\nv\r\n".to_vec()];
        assert_eq!(f.on_write(&mut h, 12, false), Flow::Continue);
        assert_eq!(counter(&reg, &h, "redis.t.upstream_rx_bytes"), 12);
        assert_eq!(counter(&reg, &h, "redis.t.command.get.success"), 1);
        assert_eq!(counter(&reg, &h, "redis.t.cx_total"), 1);
        f.on_close(&mut h);
        let active = reg
            .gauges
            .iter()
            .position(|g| g == "redis.t.cx_active")
            .unwrap();
        assert_eq!(h.gauges[&active], 0);
        assert!(h.closed.is_none() && h.written_to_client.is_empty());
    }

    #[test]
    fn malformed_stream_is_counted_logged_once_and_closed() {
        let (cfg, reg) = config(r#"{"protocol":"redis","stat_prefix":"t"}"#);
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        assert_eq!(read(&mut f, &mut h, &[b"*2\r\nxx\r\n"]), Flow::Stop);
        assert_eq!(counter(&reg, &h, "redis.t.request_decoding_error"), 1);
        assert_eq!(h.closed, Some(Close::NoFlush));
        assert_eq!(h.logs.borrow().len(), 1);
    }

    #[test]
    fn tcp_protocol_counts_bytes_only() {
        let (cfg, reg) = config(r#"{"protocol":"tcp","stat_prefix":"t"}"#);
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        read(&mut f, &mut h, &[b"*1\r\n$4\r\nPING\r\n"]);
        assert_eq!(counter(&reg, &h, "raw.t.request"), 0);
        assert_eq!(counter(&reg, &h, "raw.t.downstream_rx_bytes"), 14);
    }

    #[test]
    #[should_panic(expected = "panic_on marker")]
    fn panic_marker_panics() {
        let (cfg, _) = config(r#"{"protocol":"redis","panic_on":"MELTEMI-PANIC"}"#);
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        read(&mut f, &mut h, &[b"xxMELTEMI-PANICyy"]);
    }

    #[test]
    fn probe_drains_calls_out_and_answers_the_client() {
        let (cfg, reg) = config(
            r#"{"protocol":"redis","stat_prefix":"t","probe":{"on":"MELTEMI-PROBE","cluster":"bridge"}}"#,
        );
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        assert_eq!(read(&mut f, &mut h, &[b"MELTEMI-PROBE\r\n"]), Flow::Stop);
        assert!(
            h.downstream.is_empty(),
            "probe bytes never reach the upstream"
        );
        let c = &h.callouts[0];
        assert_eq!(c.cluster, "bridge");
        assert_eq!(c.body, b"*1\r\n$4\r\nPING\r\n");
        assert!(c.headers.iter().any(|(k, v)| k == "host" && v == b"bridge"));
        f.on_callout_done(
            &mut h,
            1,
            CalloutOutcome::Success,
            Some(b"200"),
            &[b"+PO", b"NG\r\n"],
        );
        assert_eq!(h.written_to_client, b"+PONG\r\n");
        assert_eq!(counter(&reg, &h, "redis.t.callouts_ok"), 1);
        f.on_callout_done(&mut h, 2, CalloutOutcome::Success, Some(b"503"), &[]);
        assert_eq!(counter(&reg, &h, "redis.t.callouts_failed"), 1);
        assert!(h.closed.is_none());
    }

    #[test]
    fn probe_that_cannot_start_answers_an_error() {
        let (cfg, reg) = config(
            r#"{"protocol":"redis","stat_prefix":"t","probe":{"on":"P!","cluster":"nope"}}"#,
        );
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost {
            fail_callout: Some(crate::host::CalloutError::ClusterNotFound),
            ..Default::default()
        };
        f.on_new_connection(&mut h);
        assert_eq!(read(&mut f, &mut h, &[b"P!"]), Flow::Stop);
        assert_eq!(counter(&reg, &h, "redis.t.callouts_failed"), 1);
        assert!(h.written_to_client.starts_with(b"-ERR"));
        assert!(h.logs.borrow()[0].1.contains("ClusterNotFound"));
        assert_ne!(h.closed, Some(Close::NoFlush));
    }
}
