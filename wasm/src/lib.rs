//! Meltemi's proxy-wasm network filter (`wasm32-wasip1`), for any Istio >= 1.20 sidecar.
//!
//! Glue only: it reads the plugin configuration into the engine's [`FilterConfig`], defines the
//! engine's metrics on the host, and feeds each connection's bytes to an engine [`Session`].
//! It only observes and applies coarse policy (closing a connection): a proxy-wasm network filter
//! cannot answer a client itself or route single requests (see `docs/design.md`), which is the
//! dynamic module's job.
//!
//! Every host call goes through the `Result`-returning functions of `proxy_wasm::hostcalls`,
//! never the SDK's unwrapping trait helpers: a panic traps the VM and with it every connection
//! on that worker.
#![forbid(unsafe_code)]

use meltemi_engine::batch::Event;
use meltemi_engine::{Batch, Engine, FilterConfig, HeldBudget, MetricKind, Session, Verdict};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, RootContext, StreamContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MetricType, PeerType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// How long counter and gauge sums may be held under steady load.
const HOLD_NS: u64 = 250_000_000;

/// A connection with no request in flight writes the held sums unless the last write is more
/// recent than this (with many connections each answered request leaves one idle: writing at
/// every one of them would cost the crossings the holding saves); the tick writes the rest.
const IDLE_GAP_NS: u64 = 20_000_000;

/// The root's tick: bounds how stale a held sum can get on an otherwise quiet worker.
const TICK: Duration = Duration::from_millis(100);

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The compiled engine plus the host's handle for every engine metric.
#[derive(Debug)]
struct Compiled {
    engine: Engine,
    /// Host metric id per engine [`MetricId`].
    handles: Vec<u32>,
}

#[derive(Debug, Default)]
struct Root {
    compiled: Option<Rc<Compiled>>,
    /// This VM's (one worker's) held metric sums, shared by its connections.
    held: Rc<RefCell<Held>>,
    /// Bytes this VM's connections hold for unfinished frames (`workerHeldBudgetBytes`): the
    /// VM's memory never grows past it from client input.
    budget: Rc<RefCell<HeldBudget>>,
}

/// Counter and gauge sums of every connection of this VM not yet written to the host: each
/// host call is a crossing out of v8 (the `.wasm`'s main cost), so sums are written when a
/// connection has no request in flight (a finished client sees exact counts at once), when it
/// closes, every [`HOLD_NS`] under steady load, and on the root's tick. Histogram values and
/// log lines are written in the hook that made them.
#[derive(Debug, Default)]
struct Held {
    batch: Batch,
    last_flush_ns: u64,
}

impl Held {
    /// Writes what cannot wait, and the sums too when `now` says so (`closing`: always).
    fn settle(&mut self, handles: &[u32], now: u64, idle: bool, closing: bool) {
        let since = now.saturating_sub(self.last_flush_ns);
        if closing || self.batch.spilled() || since >= HOLD_NS || (idle && since >= IDLE_GAP_NS) {
            flush(&mut self.batch, handles);
            self.last_flush_ns = now;
        } else {
            self.batch.drain_records(|e| apply(e, handles));
        }
    }
}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

impl Context for Root {
    /// The VM is going away (shutdown, configuration change): write what is held.
    fn on_done(&mut self) -> bool {
        self.on_tick();
        true
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            Ok(None) => Vec::new(),
            Err(status) => {
                log(
                    LogLevel::Error,
                    &format!("meltemi: cannot read plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t,
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("meltemi: configuration is not UTF-8: {e}"),
                );
                return false;
            }
        };
        let config = match FilterConfig::from_json(text) {
            Ok(c) => c,
            Err(e) => {
                // Returning false refuses the configuration; Envoy will not start with it.
                log(LogLevel::Error, &format!("meltemi: {e}"));
                return false;
            }
        };
        let engine = Engine::new(config);
        let mut handles = Vec::with_capacity(engine.metrics.defs().len());
        for def in engine.metrics.defs() {
            let kind = match def.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Histogram => MetricType::Histogram,
            };
            match hostcalls::define_metric(kind, &def.name) {
                Ok(id) => handles.push(id),
                Err(status) => {
                    log(
                        LogLevel::Error,
                        &format!("meltemi: cannot define metric {}: {status:?}", def.name),
                    );
                    return false;
                }
            }
        }
        self.compiled = Some(Rc::new(Compiled { engine, handles }));
        if let Err(status) = hostcalls::set_tick_period(TICK) {
            log(
                LogLevel::Warn,
                &format!("meltemi: no tick ({status:?}): held sums wait for traffic"),
            );
        }
        true
    }

    fn on_tick(&mut self) {
        let (Some(c), Ok(mut held)) = (&self.compiled, self.held.try_borrow_mut()) else {
            return;
        };
        flush(&mut held.batch, &c.handles);
        held.last_flush_ns = now_ns();
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        let compiled = self.compiled.clone()?;
        Some(Box::new(Connection::new(
            compiled,
            Rc::clone(&self.held),
            Rc::clone(&self.budget),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::StreamContext)
    }
}

/// Applies a hook's summed metric events through `Result`-returning host calls (one call per
/// touched counter or gauge per hook: each crossing into the host costs); failures are ignored
/// (a metric is never worth a trap).
fn flush(batch: &mut Batch, handles: &[u32]) {
    batch.drain(|e| apply(e, handles));
}

fn apply(e: Event<'_>, handles: &[u32]) {
    match e {
        Event::Add(id, d) => {
            if let Some(&h) = handles.get(id.0 as usize) {
                let _ = hostcalls::increment_metric(h, d);
            }
        }
        Event::Record(id, v) => {
            if let Some(&h) = handles.get(id.0 as usize) {
                let _ = hostcalls::record_metric(h, v);
            }
        }
        Event::Log(line) => log(LogLevel::Info, line),
    }
}

/// Runs `f` with the VM's held batch and the time, then settles it (`f` says whether its
/// connection has no request in flight; `closing` writes everything). Should the batch be
/// borrowed already (no hook re-enters the VM today), `f` gets a batch of its own, written at
/// once: the session is always fed, whatever happens to the metrics.
fn with_batch<R>(
    held: &RefCell<Held>,
    handles: &[u32],
    closing: bool,
    f: impl FnOnce(&mut Batch, u64) -> (R, bool),
) -> R {
    let now = now_ns();
    match held.try_borrow_mut() {
        Ok(mut h) => {
            let (r, idle) = f(&mut h.batch, now);
            h.settle(handles, now, idle, closing);
            r
        }
        Err(_) => {
            let mut own = Batch::default();
            let (r, _) = f(&mut own, now);
            flush(&mut own, handles);
            r
        }
    }
}

/// The host's clock in nanoseconds (wall clock: proxy-wasm offers no monotonic one).
fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One connection.
struct Connection {
    compiled: Rc<Compiled>,
    session: Option<Session>,
    /// The VM's held metric sums (see [`Held`]).
    held: Rc<RefCell<Held>>,
    budget: Rc<RefCell<HeldBudget>>,
    closed: bool,
}

/// Reports what `session` holds to the VM's budget (a budget already borrowed, which no hook
/// does today, is skipped: the next hook settles).
fn settle(
    session: &mut Session,
    engine: &Engine,
    budget: &RefCell<HeldBudget>,
    closing: bool,
    sink: &mut Batch,
) -> Verdict {
    match budget.try_borrow_mut() {
        Ok(mut b) => session.settle_held(engine, &mut b, 0, closing, sink),
        Err(_) => Verdict::Continue,
    }
}

impl Connection {
    fn new(
        compiled: Rc<Compiled>,
        held: Rc<RefCell<Held>>,
        budget: Rc<RefCell<HeldBudget>>,
    ) -> Self {
        Connection {
            compiled,
            session: None,
            held,
            budget,
            closed: false,
        }
    }

    fn apply(&mut self, verdict: Verdict) -> Action {
        match verdict {
            Verdict::Continue => Action::Continue,
            Verdict::Close(reason) => {
                if !self.closed {
                    self.closed = true;
                    log(
                        LogLevel::Warn,
                        &format!("meltemi: closing connection: {reason:?}"),
                    );
                    let _ = hostcalls::close_downstream();
                    let _ = hostcalls::close_upstream();
                }
                Action::Pause
            }
        }
    }

    fn on_data(&mut self, buffer: BufferType, size: usize) -> Action {
        if self.closed || size == 0 {
            return Action::Continue;
        }
        let data = match hostcalls::get_buffer(buffer, 0, size) {
            Ok(Some(b)) => b,
            _ => return Action::Continue,
        };
        let Some(session) = self.session.as_mut() else {
            return Action::Continue;
        };
        let c = &*self.compiled;
        let budget = &*self.budget;
        let v = with_batch(&self.held, &c.handles, false, |sink, now| {
            let mut v = match buffer {
                BufferType::DownstreamData => session.on_downstream(&c.engine, &data, now, sink),
                _ => session.on_upstream(&c.engine, &data, now, sink),
            };
            if v == Verdict::Continue {
                v = settle(session, &c.engine, budget, false, sink);
            }
            (v, session.in_flight() == 0)
        });
        if let (Verdict::Close(_), Some(e)) = (v, session.error()) {
            log(
                LogLevel::Warn,
                &format!(
                    "meltemi: {}: closing connection: {e}",
                    c.engine.config.stat_prefix
                ),
            );
        }
        self.apply(v)
    }

    fn close(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let c = &*self.compiled;
        let budget = &*self.budget;
        with_batch(&self.held, &c.handles, true, |sink, _| {
            settle(session, &c.engine, budget, true, sink);
            session.on_close(&c.engine, sink);
            ((), true)
        });
    }
}

impl Context for Connection {}

impl StreamContext for Connection {
    fn on_new_connection(&mut self) -> Action {
        let c = &*self.compiled;
        let session = with_batch(&self.held, &c.handles, false, |sink, _| {
            (Session::new(&c.engine, sink), false)
        });
        self.session = Some(session);
        Action::Continue
    }

    fn on_downstream_data(&mut self, data_size: usize, _end_of_stream: bool) -> Action {
        self.on_data(BufferType::DownstreamData, data_size)
    }

    fn on_upstream_data(&mut self, data_size: usize, _end_of_stream: bool) -> Action {
        self.on_data(BufferType::UpstreamData, data_size)
    }

    fn on_downstream_close(&mut self, _peer_type: PeerType) {
        self.close();
    }

    fn on_upstream_close(&mut self, _peer_type: PeerType) {
        self.close();
    }
}
