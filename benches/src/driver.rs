//! The connection driver and benchmark responder of the request/response harnesses (`e2e-rpc`:
//! Thrift, Dubbo; `e2e-stream`: Kafka, ZooKeeper).
//!
//! The load generator replays one captured request frame, rewriting its id per request, keeps
//! `depth` requests in flight per connection (each answer sends the next request) and matches
//! answers by id. The responder answers each request frame with one captured response frame
//! carrying the request's id, so the server side is never the bottleneck. What differs per
//! protocol (framing, where the id sits, what a success or an event is, a connection preamble)
//! is the [`Wire`] trait.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::e2e::{cpu0_jiffies, envoy_cpu_ns};

/// One replayed protocol: its captured frames and where their ids are.
pub trait Wire: Clone + Send + 'static {
    /// The request frame replayed (its id rewritten per request) and the response frame the
    /// responder answers with (its id set to the request's).
    fn frames(&self) -> (&[u8], &[u8]);
    /// Length of the whole frame at the start of `b`, if `b` holds it.
    fn frame_len(&self, b: &[u8]) -> Option<usize>;
    /// The id of a whole request (`request`) or response frame.
    fn read_id(&self, f: &[u8], request: bool) -> Option<u64>;
    /// Writes `id` into a whole request (`request`) or response frame.
    fn write_id(&self, f: &mut [u8], id: u64, request: bool);
    /// Whether an answer is a success.
    fn is_ok(&self, f: &[u8]) -> bool;
    /// A frame that answers no request and asks for no answer (Dubbo heartbeats): skipped.
    fn is_event(&self, _f: &[u8]) -> bool {
        false
    }
    /// What opens every connection before the requests: (the client's frame, the responder's
    /// answer), e.g. ZooKeeper's ConnectRequest / ConnectResponse.
    fn hello(&self) -> Option<(&[u8], &[u8])> {
        None
    }
    /// The largest id; the next one is 1 again (ids stay positive).
    fn max_id(&self) -> u64;
}

/// A benchmark responder on 127.0.0.1: one thread per connection; answers the preamble, then
/// every request frame with the captured response frame carrying the request's id (a read's
/// answers in one write).
#[derive(Debug)]
pub struct Responder {
    pub port: u16,
    /// Requests answered so far.
    pub served: Arc<AtomicU64>,
}

impl Responder {
    pub fn start<W: Wire>(wire: &W) -> Responder {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        let served = Arc::new(AtomicU64::new(0));
        let (w, s) = (wire.clone(), served.clone());
        thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let (w, s) = (w.clone(), s.clone());
                thread::spawn(move || respond(conn, &w, &s));
            }
        });
        Responder { port, served }
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

fn respond<W: Wire>(mut c: TcpStream, w: &W, served: &AtomicU64) {
    let _ = c.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0usize;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut greeted = w.hello().is_none();
    loop {
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match c.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let mut at = 0;
        while let Some(n) = w.frame_len(&buf[at..have]) {
            let f = &buf[at..at + n];
            at += n;
            if !greeted {
                greeted = true;
                out.extend_from_slice(w.hello().expect("a preamble").1);
                continue;
            }
            if w.is_event(f) {
                continue;
            }
            let Some(id) = w.read_id(f, true) else {
                continue;
            };
            let start = out.len();
            out.extend_from_slice(w.frames().1);
            w.write_id(&mut out[start..], id, false);
            served.fetch_add(1, Ordering::Relaxed);
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if !out.is_empty() {
            if c.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// What one client connection saw in the measured window.
#[derive(Debug, Default)]
pub struct ConnResult {
    pub done: u64,
    pub errors: u64,
    pub latencies_us: Vec<u32>,
    pub failure: Option<String>,
}

/// One client connection (after its preamble, if any) keeping `depth` requests in flight until
/// `t1`; records answers that arrive in `[t0, t1)`.
pub fn drive_conn<W: Wire>(port: u16, w: &W, depth: usize, t0: Instant, t1: Instant) -> ConnResult {
    let mut r = ConnResult::default();
    let mut c = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(c) => c,
        Err(e) => {
            r.failure = Some(format!("connect: {e}"));
            return r;
        }
    };
    let _ = c.set_nodelay(true);
    let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
    // In flight: slot = id % SLOTS holds (id, sent at). Ids are consecutive and at most
    // `depth` are outstanding, so slots never collide.
    const SLOTS: usize = 1024;
    let mut pending: Vec<(u64, Option<Instant>)> = vec![(u64::MAX, None); SLOTS];
    let mut next_id: u64 = 1;
    let mut out = Vec::with_capacity(depth * w.frames().0.len() + 64);
    let mut send = |out: &mut Vec<u8>, pending: &mut Vec<(u64, Option<Instant>)>, now| {
        let id = next_id;
        next_id = if next_id >= w.max_id() {
            1
        } else {
            next_id + 1
        };
        let start = out.len();
        out.extend_from_slice(w.frames().0);
        w.write_id(&mut out[start..], id, true);
        pending[id as usize % SLOTS] = (id, Some(now));
    };
    let mut awaiting_hello = false;
    if let Some((hello, _)) = w.hello() {
        out.extend_from_slice(hello);
        awaiting_hello = true;
    }
    let now = Instant::now();
    for _ in 0..depth {
        send(&mut out, &mut pending, now);
    }
    if let Err(e) = c.write_all(&out) {
        r.failure = Some(format!("write: {e}"));
        return r;
    }
    out.clear();
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0usize;
    loop {
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match c.read(&mut buf[have..]) {
            Ok(0) => {
                r.failure = Some("closed by Envoy".into());
                return r;
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                r.failure = Some(format!("read: {e}"));
                return r;
            }
        }
        let now = Instant::now();
        let mut at = 0;
        let mut answered = 0;
        while let Some(n) = w.frame_len(&buf[at..have]) {
            let f = &buf[at..at + n];
            at += n;
            if awaiting_hello {
                awaiting_hello = false; // the preamble's answer
                continue;
            }
            if w.is_event(f) {
                continue;
            }
            let sent = w.read_id(f, false).and_then(|id| {
                let slot = &mut pending[id as usize % SLOTS];
                (slot.0 == id).then(|| {
                    slot.0 = u64::MAX;
                    slot.1.take()
                })?
            });
            let Some(sent) = sent else {
                r.failure = Some("answer with an unknown id".into());
                return r;
            };
            answered += 1;
            if now >= t0 && now < t1 {
                r.done += 1;
                if !w.is_ok(f) {
                    r.errors += 1;
                }
                r.latencies_us
                    .push(now.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
            }
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if now >= t1 {
            return r;
        }
        for _ in 0..answered {
            send(&mut out, &mut pending, now);
        }
        if !out.is_empty() {
            if let Err(e) = c.write_all(&out) {
                r.failure = Some(format!("write: {e}"));
                return r;
            }
            out.clear();
        }
    }
}

/// Warm-up, then the measured window.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub warm: Duration,
    pub measure: Duration,
}

/// What one measured window gave.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Envoy's CPU (all threads) over the window per answered request.
    pub cpu_us_per_req: f64,
    pub errors: u64,
    /// Fraction of CPU 0 busy with something other than Envoy during the window.
    pub cpu0_other: f64,
}

/// Runs `conns` connections x `depth` in flight to 127.0.0.1:`port` for `t.warm` +
/// `t.measure`, reading Envoy's (`envoy_pid`) CPU over the measured window. `at_t0` runs as
/// the window opens (before the first CPU reading); what it returns comes back with the result
/// once every connection is done.
pub fn measure<W: Wire, P>(
    w: &W,
    port: u16,
    (conns, depth): (usize, usize),
    t: Timing,
    envoy_pid: u32,
    at_t0: impl FnOnce() -> P,
) -> (Result<Window, String>, P) {
    let start = Instant::now();
    let t0 = start + t.warm;
    let t1 = t0 + t.measure;
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let w = w.clone();
            thread::spawn(move || drive_conn(port, &w, depth, t0, t1))
        })
        .collect();
    thread::sleep(t0.saturating_duration_since(Instant::now()));
    let p = at_t0();
    let (cpu_a, c0a) = (envoy_cpu_ns(envoy_pid), cpu0_jiffies());
    thread::sleep(t1.saturating_duration_since(Instant::now()));
    let (cpu_b, c0b) = (envoy_cpu_ns(envoy_pid), cpu0_jiffies());
    let results: Vec<ConnResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (window(&results, t, (cpu_a, cpu_b), (c0a, c0b)), p)
}

fn window(
    results: &[ConnResult],
    t: Timing,
    (cpu_a, cpu_b): (u64, u64),
    (c0a, c0b): ((u64, u64), (u64, u64)),
) -> Result<Window, String> {
    if let Some(f) = results.iter().find_map(|r| r.failure.clone()) {
        return Err(f);
    }
    let done: u64 = results.iter().map(|r| r.done).sum();
    if done == 0 {
        return Err("no answers".into());
    }
    let mut lat: Vec<u32> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64;
    let envoy_jiffies = (cpu_b - cpu_a) as f64 / 1e7; // ns -> USER_HZ (100) ticks
    let cpu0_total = (c0b.1 - c0a.1).max(1) as f64;
    Ok(Window {
        rps: done as f64 / t.measure.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_req: (cpu_b - cpu_a) as f64 / 1e3 / done as f64,
        errors: results.iter().map(|r| r.errors).sum(),
        cpu0_other: ((c0b.0 - c0a.0) as f64 - envoy_jiffies).max(0.0) / cpu0_total,
    })
}
