//! Route discovery (`routeDiscovery` in the filter config): newer route tables fetched from the
//! controller (`GET <path>` on `<cluster>`, `ETag`/`If-None-Match`) and swapped in without a
//! listener update, so every connection, old and new, routes by the newest table from its next
//! request on and nothing drains.
//!
//! Shape:
//! - one [`Discovery`] per listener config holds the current compiled table as an
//!   `Arc<Routing>` behind a mutex, and its version in an atomic. A connection keeps its own
//!   `Arc` and compares one atomic per read with the version it holds; only when they differ
//!   does it take the mutex to clone the new `Arc` (a table change, not a request, pays).
//! - who polls: the bootstrap extension of the same `.so` (a main-thread timer, so polls go on
//!   while every connection is idle) when one is configured; otherwise the connections
//!   themselves, on traffic, when the last poll is older than the interval (one connection
//!   claims the poll with a compare-and-swap). Both end in [`Discovery::on_answer`].
//! - a table is refused (and the old one stays) when it is not UTF-8 JSON of the schema, fails
//!   the schema's checks or the engine's compilation, or is older than the current one. Refusals count in
//!   `rds.update_rejected` and are logged once per distinct reason.
//! - a table naming another primary cluster than the listener's (a route edit moved the heaviest
//!   destination) is used with the listener's: `tcp_proxy`'s upstream is fixed for the life of a
//!   connection, so requests for the listener's primary stay on the fast path and the table's
//!   primary is reached by detour until a listener update brings it (`docs/routing.md`).
//! - tables are compiled where the answer arrives (main thread or the polling worker), never on
//!   the request path.

use crate::clock::now_ns;
use crate::host::{ConfigStats, CounterId, GaugeId, Level};
use crate::routing::{Routing, StatBook};
use meltemi_engine::route::{Limiters, RouteTable, RpcProtocol};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The route-discovery stats of a listener (`<protocol>.<statPrefix>.rds.*`).
#[derive(Debug, Clone, Copy)]
pub struct RdsMetrics {
    pub update_success: CounterId,
    pub update_rejected: CounterId,
    pub poll_failed: CounterId,
    /// The version of the table in use (gauge).
    pub version: GaugeId,
}

/// Where an update's metrics and log lines go: the connection whose callout answered (the
/// fallback poll) or the listener config itself (the bootstrap extension's poll).
pub trait RdsSink {
    fn inc(&mut self, id: CounterId);
    fn set_gauge(&mut self, id: GaugeId, value: u64);
    fn log(&self, level: Level, msg: &str);
}

/// What one poll answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// A newer table is in use.
    Swapped(u64),
    /// `304`, or the same version again.
    NotModified,
    /// The answer's table was refused; the old one stays.
    Rejected,
    /// No usable answer (transport error, timeout, status other than 200/304).
    PollFailed,
}

/// Callout timeout of a poll.
pub const POLL_TIMEOUT_MS: u64 = 3_000;

/// Route discovery state of one listener config.
#[derive(Debug)]
pub struct Discovery {
    /// Envoy cluster of the controller's route endpoint.
    pub cluster: String,
    /// `GET` path of this listener's table.
    pub path: String,
    /// Poll interval.
    pub interval_ms: u64,
    pub metrics: RdsMetrics,
    stat_prefix: String,
    primary: String,
    proto: RpcProtocol,
    book: StatBook,
    /// Version of `current`, read once per request by every connection.
    version: AtomicU64,
    current: Mutex<Arc<Routing>>,
    /// Monotonic ns before which no poll starts (claimed by compare-and-swap).
    next_poll_ns: AtomicU64,
    /// A bootstrap-extension poll is in flight.
    pub(crate) in_flight: AtomicBool,
    /// At least one poll answered (or failed).
    answered: AtomicBool,
    /// The last problem logged (each distinct problem is logged once).
    last_problem: Mutex<String>,
    /// The listener config's stats, for updates outside a connection; `None` once Envoy
    /// destroys the config.
    config_stats: Mutex<Option<ConfigStats>>,
}

impl Discovery {
    pub fn new(
        cfg: &meltemi_proto::RouteDiscovery,
        stat_prefix: &str,
        initial: Arc<Routing>,
        book: StatBook,
        metrics: RdsMetrics,
    ) -> Discovery {
        let interval = match cfg.refresh_interval_ms {
            0 => meltemi_proto::RouteDiscovery::DEFAULT_REFRESH_MS,
            n => n,
        };
        Discovery {
            cluster: cfg.cluster.clone(),
            path: cfg.path.clone(),
            interval_ms: u64::from(interval),
            metrics,
            stat_prefix: stat_prefix.to_owned(),
            primary: initial.table.primary().to_owned(),
            proto: initial.proto,
            book,
            version: AtomicU64::new(initial.version),
            current: Mutex::new(initial),
            next_poll_ns: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            last_problem: Mutex::new(String::new()),
            config_stats: Mutex::new(None),
        }
    }

    /// Lets updates outside a connection reach the listener's stats.
    pub fn attach(&self, stats: ConfigStats) {
        *lock(&self.config_stats) = Some(stats);
    }

    /// The config is going away: its stats pointer is dropped (under the lock users hold).
    pub fn detach(&self) {
        *lock(&self.config_stats) = None;
    }

    /// Runs `f` with a sink onto the listener config's stats (log only once detached).
    pub fn with_config_sink<R>(&self, f: impl FnOnce(&mut dyn RdsSink) -> R) -> R {
        let guard = lock(&self.config_stats);
        let mut sink = ConfigSink(guard.as_ref());
        f(&mut sink)
    }

    /// The version of the current table (one atomic load: the per-request check).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current table.
    pub fn current(&self) -> Arc<Routing> {
        Arc::clone(&lock(&self.current))
    }

    /// True once a poll answered or failed (the bootstrap extension holds Envoy's start until
    /// then, within a limit).
    pub fn answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }

    /// Claims the next poll if it is due at `now_ns`; at most one caller wins per interval.
    pub fn claim_poll(&self, now_ns: u64) -> bool {
        let next = self.next_poll_ns.load(Ordering::Relaxed);
        now_ns >= next
            && self
                .next_poll_ns
                .compare_exchange(
                    next,
                    now_ns.saturating_add(self.interval_ms.saturating_mul(1_000_000)),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Calls `f` with the poll's cluster and request headers (`If-None-Match` carries the
    /// version held, as the controller's `ETag`).
    pub fn with_request<R>(&self, f: impl FnOnce(&str, &[(&str, &[u8])]) -> R) -> R {
        let etag = format!("\"{}\"", self.version());
        let headers: [(&str, &[u8]); 5] = [
            (":method", b"GET"),
            (":path", self.path.as_bytes()),
            ("host", self.cluster.as_bytes()),
            ("accept", b"application/json"),
            ("if-none-match", etag.as_bytes()),
        ];
        f(&self.cluster, &headers)
    }

    /// A poll's answer: `ok` is false when the callout itself failed; `status` is `:status`.
    pub fn on_answer(
        &self,
        ok: bool,
        status: Option<&[u8]>,
        body: &[&[u8]],
        sink: &mut dyn RdsSink,
    ) -> Update {
        self.answered.store(true, Ordering::Release);
        match (ok, status) {
            (true, Some(b"304")) => Update::NotModified,
            (true, Some(b"200")) => self.offer(&body.concat(), sink),
            _ => {
                sink.inc(self.metrics.poll_failed);
                let status = status.map(String::from_utf8_lossy);
                self.problem(
                    sink,
                    format!(
                        "route discovery GET {} on cluster {} failed ({}); keeping version {}",
                        self.path,
                        self.cluster,
                        match (ok, status) {
                            (false, _) => "no answer".to_owned(),
                            (true, Some(s)) => format!("status {s}"),
                            (true, None) => "no status".to_owned(),
                        },
                        self.version()
                    ),
                );
                Update::PollFailed
            }
        }
    }

    /// Offers a fetched table (the body of a `200`).
    pub fn offer(&self, body: &[u8], sink: &mut dyn RdsSink) -> Update {
        match self.compile(body) {
            Ok(None) => Update::NotModified,
            Ok(Some(mut routing)) => {
                let v = routing.version;
                {
                    let mut cur = lock(&self.current);
                    // Two polls may race (fallback polls from several workers): keep the newest.
                    if v <= cur.version {
                        return Update::NotModified;
                    }
                    // Routes kept by name keep their token buckets (no fresh burst per update).
                    let carried = Limiters::carried(
                        &routing.table,
                        &cur.table,
                        &lock(&cur.limiters),
                        now_ns(),
                    );
                    routing.limiters = Mutex::new(carried);
                    // The retry budget counts the detours of every table still in flight.
                    routing.in_flight = Arc::clone(&cur.in_flight);
                    *cur = Arc::new(routing);
                    self.version.store(v, Ordering::Release);
                }
                sink.inc(self.metrics.update_success);
                sink.set_gauge(self.metrics.version, v);
                sink.log(
                    Level::Info,
                    &format!(
                        "meltemi: {}: route table version {v} in use (from {})",
                        self.stat_prefix, self.path
                    ),
                );
                lock(&self.last_problem).clear();
                Update::Swapped(v)
            }
            Err(why) => {
                sink.inc(self.metrics.update_rejected);
                self.problem(
                    sink,
                    format!(
                        "refusing route table from {}: {why}; keeping version {}",
                        self.path,
                        self.version()
                    ),
                );
                Update::Rejected
            }
        }
    }

    /// Logs `msg` unless it is the problem logged last.
    fn problem(&self, sink: &mut dyn RdsSink, msg: String) {
        let mut last = lock(&self.last_problem);
        if *last != msg {
            sink.log(
                Level::Warn,
                &format!("meltemi: {}: {msg}", self.stat_prefix),
            );
            *last = msg;
        }
    }

    /// Parses, checks and compiles a table. `Ok(None)`: the version held.
    fn compile(&self, body: &[u8]) -> Result<Option<Routing>, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
        let t = meltemi_proto::RouteTable::from_json(text)
            .map_err(|e| format!("not a route table: {e}"))?;
        let held = self.version();
        if t.version == held {
            return Ok(None);
        }
        if t.version < held {
            return Err(format!("version {} is older than {held}", t.version));
        }
        let mut t = t;
        if t.primary_cluster != self.primary {
            // tcp_proxy's cluster is the listener's: keep it, detour the table's primary.
            t.primary_cluster.clone_from(&self.primary);
        }
        if let Err(errs) = meltemi_proto::validate_route_table(&t, &|_| Ok(())) {
            return Err(errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "));
        }
        let raw = meltemi_engine::route::from_proto(&t).map_err(|e| e.to_string())?;
        let table = RouteTable::compile(&raw).map_err(|e| e.to_string())?;
        Ok(Some(self.book.routing(self.proto, table, t.version)))
    }
}

/// [`RdsSink`] onto a listener config's stats.
struct ConfigSink<'a>(Option<&'a ConfigStats>);

impl RdsSink for ConfigSink<'_> {
    fn inc(&mut self, id: CounterId) {
        if let Some(s) = self.0 {
            s.increment_counter(id, 1);
        }
    }
    fn set_gauge(&mut self, id: GaugeId, value: u64) {
        if let Some(s) = self.0 {
            s.set_gauge(id, value);
        }
    }
    fn log(&self, level: Level, msg: &str) {
        crate::host::log(level, msg);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (plain replacements).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ------------------------------------------------------------------------------------------
// Process-wide registry: what the bootstrap extension polls
// ------------------------------------------------------------------------------------------

static REGISTRY: Mutex<Vec<Weak<Discovery>>> = Mutex::new(Vec::new());
static BOOTSTRAP_POLLING: AtomicBool = AtomicBool::new(false);

/// Makes a listener's discovery visible to the bootstrap extension (until it is dropped).
pub fn register(d: &Arc<Discovery>) {
    let mut r = lock(&REGISTRY);
    r.retain(|w| w.strong_count() > 0);
    r.push(Arc::downgrade(d));
}

/// The registered discoveries still alive.
pub fn registered() -> Vec<Arc<Discovery>> {
    let mut r = lock(&REGISTRY);
    r.retain(|w| w.strong_count() > 0);
    r.iter().filter_map(Weak::upgrade).collect()
}

/// The newest table held by a live listener config polling `cluster` + `path` whose primary
/// cluster and protocol are these: a config created later (a listener update) starts from it
/// and defines its stats for it, instead of starting from its placeholder.
pub fn newest_known(
    cluster: &str,
    path: &str,
    primary: &str,
    proto: RpcProtocol,
) -> Option<Arc<Routing>> {
    registered()
        .iter()
        .filter(|d| {
            d.cluster == cluster && d.path == path && d.primary == primary && d.proto == proto
        })
        .map(|d| d.current())
        .max_by_key(|r| r.version)
}

/// Whether a bootstrap extension polls (then connections do not).
pub fn bootstrap_polling() -> bool {
    BOOTSTRAP_POLLING.load(Ordering::Acquire)
}

/// Set by the bootstrap extension's config (true) and its destruction (false).
pub fn set_bootstrap_polling(on: bool) {
    BOOTSTRAP_POLLING.store(on, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::host::fake::FakeRegistry;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Sink {
        counters: BTreeMap<usize, u64>,
        gauges: BTreeMap<usize, u64>,
        logs: std::cell::RefCell<Vec<String>>,
    }
    impl RdsSink for Sink {
        fn inc(&mut self, id: CounterId) {
            *self.counters.entry(id.0).or_default() += 1;
        }
        fn set_gauge(&mut self, id: GaugeId, value: u64) {
            self.gauges.insert(id.0, value);
        }
        fn log(&self, _level: Level, msg: &str) {
            self.logs.borrow_mut().push(msg.to_owned());
        }
    }

    const CFG: &str = r#"{"protocol":"thrift","statPrefix":"calc",
        "routes":{"version":"0","primaryCluster":"outbound|9090||calc"},
        "routeDiscovery":{"cluster":"meltemi-routes","path":"/routes/v1/calc","refreshIntervalMs":1000}}"#;

    fn table(version: u64, cluster: &str) -> String {
        format!(
            r#"{{"version":"{version}","primaryCluster":"outbound|9090||calc","services":[{{"name":"*","routes":[
                {{"name":"all","action":{{"cluster":"{cluster}"}}}}]}}]}}"#
        )
    }

    fn setup() -> (Config, FakeRegistry) {
        let mut reg = FakeRegistry::default();
        let c = Config::parse(CFG.as_bytes(), &mut reg).unwrap();
        (c, reg)
    }

    fn count(reg: &FakeRegistry, s: &Sink, name: &str) -> u64 {
        let i = reg.counters.iter().position(|c| c == name).unwrap();
        s.counters.get(&i).copied().unwrap_or(0)
    }

    #[test]
    fn a_config_created_later_starts_from_the_newest_table_and_defines_its_stats() {
        // Its own path: the registry is process-wide and the tests run in parallel.
        let cfg = CFG.replace("/routes/v1/calc", "/routes/v1/carry");
        let mut reg1 = FakeRegistry::default();
        let c1 = Config::parse(cfg.as_bytes(), &mut reg1).unwrap();
        let d1 = c1.discovery.as_ref().unwrap();
        register(d1);
        let mut s = Sink::default();
        let v5 = table(5, "outbound|9090|v2|calc");
        assert_eq!(d1.offer(v5.as_bytes(), &mut s), Update::Swapped(5));
        // The placeholder knew no route: the first config counts `all` under `other`.
        assert!(!reg1.counters.iter().any(|n| n.contains("route.all.")));

        // A listener update re-creates the config: it starts at version 5 with `all` defined.
        let mut reg2 = FakeRegistry::default();
        let c2 = Config::parse(cfg.as_bytes(), &mut reg2).unwrap();
        let d2 = c2.discovery.as_ref().unwrap();
        assert_eq!(d2.version(), 5);
        let cur = d2.current();
        let id = |name: &str| {
            reg2.counters
                .iter()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("{name} not defined: {:?}", reg2.counters))
        };
        assert_eq!(
            cur.stats(Some(0)).requests.0,
            id("thrift.calc.route.all.requests")
        );
        assert_eq!(
            cur.dest_requests[1].0,
            id("thrift.calc.destination.meltemi-bridge|outbound|9090|v2|calc.requests")
        );
        // A table fetched later keeps the names known at config time; new names go to `other`.
        let renamed =
            table(7, "outbound|9090|v1|calc").replace(r#""name":"all""#, r#""name":"new""#);
        let mut s2 = Sink::default();
        for (body, version, stat) in [
            (
                table(6, "outbound|9090|v1|calc"),
                6,
                "thrift.calc.route.all.requests",
            ),
            (renamed, 7, "thrift.calc.route.other.requests"),
        ] {
            assert_eq!(d2.offer(body.as_bytes(), &mut s2), Update::Swapped(version));
            assert_eq!(d2.current().stats(Some(0)).requests.0, id(stat));
        }

        // Another source, or another primary cluster, starts from its own table.
        for other in [
            cfg.replace("/routes/v1/carry", "/routes/v1/elsewhere"),
            cfg.replace("9090||calc", "1||x"),
        ] {
            let c3 = Config::parse(other.as_bytes(), &mut FakeRegistry::default()).unwrap();
            assert_eq!(c3.discovery.as_ref().unwrap().version(), 0);
        }
    }

    #[test]
    fn a_newer_table_keeps_the_token_buckets_and_retry_budget_counts() {
        let (c, _reg) = setup();
        let d = c.discovery.as_ref().unwrap();
        let mut s = Sink::default();
        let limited = |v: u64, max: u32| {
            table(v, "outbound|9090||calc").replace(
                r#""action""#,
                &format!(
                    r#""rateLimit":{{"tokenBucket":{{"maxTokens":{max},"fillIntervalMs":600000}}}},"action""#
                ),
            )
        };
        assert_eq!(
            d.offer(limited(5, 3).as_bytes(), &mut s),
            Update::Swapped(5)
        );
        let take = |n: usize| {
            let cur = d.current();
            let now = now_ns();
            let mut lim = cur.limiters.lock().unwrap();
            (0..n).filter(|_| lim.take(&cur.table, 0, now)).count()
        };
        assert_eq!(take(2), 2);
        // A detour in flight on version 5 still counts for the retry budget under version 6.
        let slot = crate::routing::InFlight::new(&d.current(), true);
        // Version 6, same route: one token left, not a fresh three.
        assert_eq!(
            d.offer(limited(6, 3).as_bytes(), &mut s),
            Update::Swapped(6)
        );
        assert_eq!(take(5), 1);
        let counts = &d.current().in_flight;
        assert_eq!(
            (
                counts.detours.load(std::sync::atomic::Ordering::Relaxed),
                counts.retries.load(std::sync::atomic::Ordering::Relaxed)
            ),
            (1, 1)
        );
        drop(slot);
        assert_eq!(counts.detours.load(std::sync::atomic::Ordering::Relaxed), 0);
        // A larger bucket keeps what was left (empty) rather than refilling.
        assert_eq!(
            d.offer(limited(7, 10).as_bytes(), &mut s),
            Update::Swapped(7)
        );
        assert_eq!(take(5), 0);
    }

    #[test]
    fn newer_tables_swap_in_and_bad_or_older_ones_are_refused_once_logged() {
        let (c, reg) = setup();
        let d = c.discovery.as_ref().unwrap();
        assert_eq!(d.version(), 0);
        assert_eq!(d.interval_ms, 1000);
        let mut s = Sink::default();
        let v5 = table(5, "outbound|9090|v2|calc");
        assert_eq!(
            d.on_answer(true, Some(b"200"), &[v5.as_bytes()], &mut s),
            Update::Swapped(5)
        );
        assert_eq!(d.version(), 5);
        let cur = d.current();
        assert_eq!(cur.table.routes[0].name, "all");
        assert_eq!(
            cur.table.clusters[1],
            "meltemi-bridge|outbound|9090|v2|calc"
        );
        // Unknown at config time: counted under `other`.
        let other = reg
            .counters
            .iter()
            .position(|n| n == "thrift.calc.route.other.requests")
            .unwrap();
        assert_eq!(cur.stats(Some(0)).requests.0, other);
        assert_eq!(count(&reg, &s, "thrift.calc.rds.update_success"), 1);
        assert_eq!(s.gauges.values().copied().collect::<Vec<_>>(), vec![5]);

        // Same version, 304: nothing happens.
        assert_eq!(
            d.on_answer(true, Some(b"200"), &[v5.as_bytes()], &mut s),
            Update::NotModified
        );
        assert_eq!(
            d.on_answer(true, Some(b"304"), &[], &mut s),
            Update::NotModified
        );

        // Refused, old table kept, each distinct reason logged once.
        let logs_before = s.logs.borrow().len();
        for _ in 0..3 {
            assert_eq!(
                d.on_answer(true, Some(b"200"), &[b"{not json"], &mut s),
                Update::Rejected
            );
        }
        let older = table(3, "outbound|9090|v1|calc");
        assert_eq!(d.offer(older.as_bytes(), &mut s), Update::Rejected);
        let bad_regex = table(7, "c").replace(
            r#""action""#,
            r#""match":{"method":{"regex":"("}},"action""#,
        );
        assert_eq!(d.offer(bad_regex.as_bytes(), &mut s), Update::Rejected);
        assert_eq!(d.offer(&[0xff, 0xfe], &mut s), Update::Rejected);
        assert_eq!(count(&reg, &s, "thrift.calc.rds.update_rejected"), 6);
        let logs = s.logs.borrow()[logs_before..].to_vec();
        assert_eq!(logs.len(), 4, "{logs:#?}");
        assert!(logs[1].contains("older than 5"), "{}", logs[1]);
        assert!(
            logs[2].contains("regex") || logs[2].contains("("),
            "{}",
            logs[2]
        );
        assert_eq!(d.version(), 5);
        assert!(Arc::ptr_eq(&d.current(), &cur));

        // Transport failures and other statuses.
        assert_eq!(d.on_answer(false, None, &[], &mut s), Update::PollFailed);
        assert_eq!(
            d.on_answer(true, Some(b"503"), &[], &mut s),
            Update::PollFailed
        );
        assert_eq!(count(&reg, &s, "thrift.calc.rds.poll_failed"), 2);
    }

    /// A route edit that moves the heaviest destination: the table names another primary. The
    /// listener's (tcp_proxy's) is kept: the table's primary is reached by its bridge twin and
    /// a destination equal to the listener's stays on the fast path.
    #[test]
    fn a_table_with_another_primary_keeps_the_listeners_and_detours_its_own() {
        let (c, _) = setup();
        let d = c.discovery.as_ref().unwrap();
        let mut s = Sink::default();
        let moved = r#"{"version":"8","primaryCluster":"outbound|9090|v2|calc","services":[{"name":"*","routes":[
            {"name":"split","action":{"weightedClusters":[{"cluster":"outbound|9090|v2|calc","weight":90},
            {"cluster":"outbound|9090||calc","weight":10}]}}]}]}"#;
        assert_eq!(d.offer(moved.as_bytes(), &mut s), Update::Swapped(8));
        let cur = d.current();
        assert_eq!(cur.table.primary(), "outbound|9090||calc");
        assert!(cur
            .table
            .clusters
            .contains(&"meltemi-bridge|outbound|9090|v2|calc".to_owned()));
        assert!(!cur
            .table
            .clusters
            .contains(&"outbound|9090|v2|calc".to_owned()));
    }

    #[test]
    fn one_caller_claims_a_due_poll_per_interval() {
        let (c, _) = setup();
        let d = c.discovery.as_ref().unwrap();
        assert!(d.claim_poll(10));
        assert!(!d.claim_poll(11));
        assert!(!d.claim_poll(10 + 999_999_999));
        assert!(d.claim_poll(10 + 1_000_000_000));
        let seen = d.with_request(|cluster, h| {
            (
                cluster.to_owned(),
                h.iter()
                    .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                    .collect::<Vec<_>>(),
            )
        });
        assert_eq!(seen.0, "meltemi-routes");
        assert!(seen.1.contains(&":path=/routes/v1/calc".to_owned()));
        assert!(seen.1.contains(&"if-none-match=\"0\"".to_owned()));
    }

    #[test]
    fn discovery_without_routes_is_refused() {
        let mut reg = FakeRegistry::default();
        let e = Config::parse(
            br#"{"protocol":"redis","routeDiscovery":{"cluster":"c","path":"/p"}}"#,
            &mut reg,
        )
        .unwrap_err();
        assert!(e.to_string().contains("routeDiscovery"), "{e}");
    }

    fn thrift_call(seq: i32) -> Vec<u8> {
        let mut m = 0x8001_0001u32.to_be_bytes().to_vec();
        m.extend_from_slice(&3i32.to_be_bytes());
        m.extend_from_slice(b"get");
        m.extend_from_slice(&seq.to_be_bytes());
        m.push(0);
        let mut f = (m.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&m);
        f
    }

    #[test]
    fn a_live_connection_polls_on_traffic_and_routes_by_the_new_table_on_its_next_request() {
        use crate::filter::{Filter, Flow};
        use crate::host::fake::FakeNetworkHost;
        use crate::host::{CalloutOutcome, Direction, NetworkHost};
        let (c, reg) = setup();
        let c = Arc::new(c);
        let mut f = Filter::new(Arc::clone(&c));
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);

        // First request: the placeholder table sends it to the primary (untouched), and the
        // connection polls (no bootstrap extension in this process).
        h.downstream = vec![thrift_call(1)];
        let n = h.buffered(Direction::Downstream);
        assert_eq!(f.on_read(&mut h, n, false), Flow::Continue);
        assert_eq!(h.downstream, vec![thrift_call(1)]);
        h.downstream.clear();
        assert_eq!(h.callouts.len(), 1);
        let poll = h.callouts[0].clone();
        assert_eq!(poll.cluster, "meltemi-routes");
        assert!(poll
            .headers
            .contains(&(":path".to_owned(), b"/routes/v1/calc".to_vec())));

        // The answer: everything to v2 from now on.
        let t = table(5, "outbound|9090|v2|calc");
        f.on_callout_done(
            &mut h,
            poll.id,
            CalloutOutcome::Success,
            Some(b"200"),
            &[t.as_bytes()],
        );
        let success = reg
            .counters
            .iter()
            .position(|n| n == "thrift.calc.rds.update_success")
            .unwrap();
        assert_eq!(h.counters.get(&success), Some(&1));

        // The same connection's next request takes the detour to v2's bridge twin.
        h.downstream = vec![thrift_call(2)];
        let n = h.buffered(Direction::Downstream);
        f.on_read(&mut h, n, false);
        assert!(h.downstream.is_empty(), "detoured, not sent to the primary");
        let last = h.callouts.last().unwrap();
        assert_eq!(last.cluster, "meltemi-bridge|outbound|9090|v2|calc");
        assert_eq!(last.body, thrift_call(2));
        // No second poll within the interval.
        assert_eq!(
            h.callouts
                .iter()
                .filter(|c| c.cluster == "meltemi-routes")
                .count(),
            1
        );
    }

    #[test]
    fn a_detour_in_flight_keeps_the_table_that_routed_it_across_a_swap() {
        use crate::filter::Filter;
        use crate::host::fake::FakeNetworkHost;
        use crate::host::{CalloutOutcome, Direction, NetworkHost};
        let (c, reg) = setup();
        let d = Arc::clone(c.discovery.as_ref().unwrap());
        let mut s = Sink::default();
        d.offer(table(5, "outbound|9090|v2|calc").as_bytes(), &mut s);
        let mut f = Filter::new(Arc::new(c));
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        h.downstream = vec![thrift_call(1)];
        let n = h.buffered(Direction::Downstream);
        f.on_read(&mut h, n, false);
        let detour = h.callouts.last().unwrap().clone();
        assert_eq!(detour.cluster, "meltemi-bridge|outbound|9090|v2|calc");

        // A newer table (everything to the primary) lands while the detour is in flight.
        d.offer(table(6, "outbound|9090||calc").as_bytes(), &mut s);
        h.downstream = vec![thrift_call(2)];
        let n = h.buffered(Direction::Downstream);
        f.on_read(&mut h, n, false);
        assert_eq!(
            h.downstream,
            vec![thrift_call(2)],
            "the new table: fast path"
        );

        // The old detour's answer still reaches the client, counted on its own table's route.
        let answer = b"\x00\x00\x00\x01\x00";
        f.on_callout_done(
            &mut h,
            detour.id,
            CalloutOutcome::Success,
            Some(b"200"),
            &[answer],
        );
        assert_eq!(h.written_to_client, answer);
        let detoured = reg
            .counters
            .iter()
            .position(|n| n == "thrift.calc.route.other.detoured")
            .unwrap();
        assert_eq!(h.counters.get(&detoured), Some(&1));
    }
}
