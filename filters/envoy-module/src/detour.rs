//! The per-request routing glue: the fast path and the detour (design notes, "Routing design").
//!
//! The filter sits before `tcp_proxy`, whose cluster is the route table's primary cluster.
//! - Read: each whole request frame is routed. When every frame of a read goes to the primary
//!   cluster and none straddles reads, the read buffer is left untouched (zero copy). Otherwise
//!   the buffer is drained and only primary-bound frames are put back (`append_read_buffer`);
//!   a partial frame is kept in a module buffer (never in Envoy's: frames bigger than the
//!   connection's buffer limit would deadlock).
//! - Detour: a frame routed elsewhere is sent by HTTP callout to its cluster, whose upstream is
//!   this module's bridge; rate-limited frames get the protocol's error locally.
//! - Write: upstream->client frame boundaries are tracked from length prefixes (unframed Thrift:
//!   by walking each reply, holding only a reply cut by a chunk); an answer (a
//!   callout's, or a local error) is written only between whole frames of the primary stream:
//!   at once when the stream is between frames, else held and put into the write buffer at the
//!   next boundary (`prepend`/`append_write_buffer`).

use crate::clock::now_ns;
use crate::config::Config;
use crate::host::{CalloutOutcome, Direction, Level, NetworkHost};
use crate::routing::{InFlight, Routing};
use meltemi_codec::{Decoded, Limits};
use meltemi_engine::route::{
    encode_failure, route_request_with, Boundary, Failure, RequestFrame, SplitMix64, Target,
};
use meltemi_engine::DecodeFailure;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Where the bytes the client sees and sends are reported (the observability session).
pub trait Observer {
    /// New client bytes (counted, not decoded: the router decodes each frame once).
    fn down(&mut self, data: &[u8]);
    /// A whole client frame the router decoded.
    fn down_frame(&mut self, frame: RequestFrame<'_>);
    /// The router found broken client bytes (the connection will be closed).
    fn down_error(&mut self, e: &DecodeFailure);
    /// Bytes about to reach the client (upstream frames and module answers), in order.
    fn up(&mut self, data: &[u8]);
}

/// A request on its way through a callout.
#[derive(Debug)]
struct Pending {
    /// The table that routed it: its cluster and route indices stay meaningful even when route
    /// discovery swaps the connection's table before the answer arrives.
    routing: Arc<Routing>,
    frame: Vec<u8>,
    cluster: u16,
    route: Option<u16>,
    retries_left: u32,
    timeout_ms: u64,
    /// A mirror copy: the answer is dropped.
    mirror: bool,
    /// This attempt in the retry budget's counts (not for mirrors): taken as a retry before a
    /// retry starts, else as a first attempt when the callout starts.
    slot: Option<InFlight>,
}

/// One connection's routing state.
#[derive(Debug)]
pub struct Detour {
    carry: Vec<u8>,
    rng: SplitMix64,
    up: Boundary,
    held: Vec<u8>,
    pending: HashMap<u64, Pending>,
    closed: bool,
    limits: Limits,
    scratch: Scratch,
}

/// Per-read working vectors, kept between reads.
#[derive(Debug, Default)]
struct Scratch {
    counts: Vec<(crate::host::CounterId, u64)>,
    steps: Vec<Step>,
}

/// What the read path found in one read.
#[derive(Debug)]
enum Step {
    Pass(usize, usize),
    Send(usize, usize, meltemi_engine::route::Decision),
}

/// What the adapter must do after a read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Continue,
    /// A frame broke the protocol: the message.
    Broken(String),
}

impl Detour {
    pub fn new(config: &Config, routing: &Routing, connection_id: u64) -> Self {
        let seed = routing.table.seed.unwrap_or_else(now_ns)
            ^ connection_id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let limits = Limits {
            max_frame: config.engine.config.max_frame_bytes,
            ..Limits::default()
        };
        Detour {
            carry: Vec::new(),
            rng: SplitMix64::new(seed),
            up: Boundary::new(limits),
            held: Vec::new(),
            pending: HashMap::new(),
            closed: false,
            limits,
            scratch: Scratch::default(),
        }
    }

    /// Detours in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Bytes this connection's routing holds: a partial request, answers waiting for a
    /// boundary, detoured requests kept for retries, a partial unframed reply.
    pub fn buffered(&self) -> usize {
        self.carry.len()
            + self.held.len()
            + self.pending.values().map(|p| p.frame.len()).sum::<usize>()
            + self.up.pending()
    }

    /// Routes the client bytes in Envoy's read buffer. `observe` is called with the new bytes
    /// (for the observability session) before the buffer changes.
    pub fn on_read(
        &mut self,
        routing: &Arc<Routing>,
        host: &mut impl NetworkHost,
        obs: &mut impl Observer,
    ) -> ReadOutcome {
        // Reused across reads: the fast path allocates nothing.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.counts.clear();
        scratch.steps.clear();
        let out = self.read_with(routing, host, obs, &mut scratch);
        self.scratch = scratch;
        out
    }

    fn read_with(
        &mut self,
        routing: &Arc<Routing>,
        host: &mut impl NetworkHost,
        obs: &mut impl Observer,
        scratch: &mut Scratch,
    ) -> ReadOutcome {
        let chunks = host.chunks(Direction::Downstream);
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        for c in &chunks {
            obs.down(c);
        }
        let counts = &mut scratch.counts;
        let owned;
        let data: &[u8] = if self.carry.is_empty() && chunks.len() == 1 {
            chunks[0]
        } else {
            let mut v = std::mem::take(&mut self.carry);
            for c in &chunks {
                v.extend_from_slice(c);
            }
            owned = v;
            &owned
        };
        let steps = &mut scratch.steps;
        let mut off = 0;
        let mut all_pass = true;
        let now = now_ns();
        while off < data.len() {
            let r = route_request_with(
                routing.proto,
                &routing.table,
                &data[off..],
                |f| obs.down_frame(f),
                &self.limits,
                &mut self.rng,
                |i| match routing.limiters.lock() {
                    Ok(mut l) => l.take(&routing.table, i, now),
                    Err(p) => p.into_inner().take(&routing.table, i, now),
                },
            );
            match r {
                Err(e) => {
                    obs.down_error(&e);
                    drop(chunks);
                    flush(host, counts);
                    return ReadOutcome::Broken(e.0);
                }
                Ok(Decoded::NeedMore(_)) => break,
                Ok(Decoded::Frame { frame, used }) => {
                    let d = frame.decision;
                    let stats = routing.stats(d.route);
                    count(counts, stats.requests);
                    if let Some(c) = d.cluster {
                        if let Some(&id) = routing.dest_requests.get(usize::from(c)) {
                            count(counts, id);
                        }
                    }
                    if d.target == Target::Primary && d.mirror.is_none() {
                        steps.push(Step::Pass(off, off + used));
                    } else {
                        all_pass = false;
                        steps.push(Step::Send(off, off + used, d));
                    }
                    off += used;
                }
            }
        }
        let whole = off == data.len();
        if all_pass && whole && data.len() == total {
            // The fast path: Envoy's buffer goes to tcp_proxy untouched.
            drop(chunks);
            flush(host, counts);
            return ReadOutcome::Continue;
        }
        let mut primary = Vec::new();
        let mut sends = Vec::new();
        for s in steps.drain(..) {
            match s {
                Step::Pass(a, b) => primary.extend_from_slice(&data[a..b]),
                Step::Send(a, b, d) => {
                    if d.target == Target::Primary {
                        primary.extend_from_slice(&data[a..b]);
                    }
                    sends.push((data[a..b].to_vec(), d));
                }
            }
        }
        let carry = data[off..].to_vec();
        drop(chunks);
        flush(host, counts);
        self.carry = carry;
        host.drain(Direction::Downstream, total);
        host.append(Direction::Downstream, &primary);
        for (frame, d) in sends {
            let stats = *routing.stats(d.route);
            if let Some(m) = d.mirror {
                host.increment_counter(stats.mirrored, 1);
                self.start(
                    host,
                    obs,
                    Pending {
                        routing: Arc::clone(routing),
                        frame: frame.clone(),
                        cluster: m,
                        route: d.route,
                        retries_left: 0,
                        timeout_ms: d.timeout_ms,
                        mirror: true,
                        slot: None,
                    },
                );
            }
            match d.target {
                Target::Primary => {}
                Target::LocalReply(_) => {
                    host.increment_counter(stats.rate_limited, 1);
                    self.fail(routing, host, &frame, Failure::RateLimited, obs);
                }
                Target::Detour(c) => {
                    host.increment_counter(stats.detoured, 1);
                    self.start(
                        host,
                        obs,
                        Pending {
                            routing: Arc::clone(routing),
                            frame,
                            cluster: c,
                            route: d.route,
                            retries_left: d.retries,
                            timeout_ms: d.timeout_ms,
                            mirror: false,
                            slot: None,
                        },
                    );
                }
            }
        }
        ReadOutcome::Continue
    }

    fn start(&mut self, host: &mut impl NetworkHost, obs: &mut impl Observer, mut p: Pending) {
        let routing = Arc::clone(&p.routing);
        let Some(cluster) = routing.table.clusters.get(usize::from(p.cluster)) else {
            return;
        };
        if !p.mirror && p.slot.is_none() {
            p.slot = Some(InFlight::new(&routing, false));
        }
        let headers: [(&str, &[u8]); 4] = [
            (":method", b"POST"),
            (":path", b"/meltemi/route"),
            ("host", cluster.as_bytes()),
            ("content-type", b"application/octet-stream"),
        ];
        match host.http_callout(cluster, &headers, &p.frame, p.timeout_ms) {
            Ok(id) => {
                self.pending.insert(id, p);
            }
            Err(e) => {
                // Unknown cluster, circuit breaker open (CannotCreateRequest), ...
                host.increment_counter(routing.stats(p.route).errors, 1);
                host.log(
                    Level::Debug,
                    &format!("meltemi: detour to {cluster} not started: {e:?}"),
                );
                if !p.mirror {
                    self.fail(&routing, host, &p.frame, Failure::Unavailable, obs);
                }
            }
        }
    }

    /// True when `id` is one of this connection's detours.
    pub fn owns(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }

    /// A detour's callout finished.
    pub fn on_callout_done(
        &mut self,
        host: &mut impl NetworkHost,
        id: u64,
        outcome: CalloutOutcome,
        status: Option<&[u8]>,
        body: &[&[u8]],
        obs: &mut impl Observer,
    ) {
        let Some(mut p) = self.pending.remove(&id) else {
            return;
        };
        if self.closed || p.mirror {
            return;
        }
        let routing = Arc::clone(&p.routing);
        let stats = *routing.stats(p.route);
        if outcome == CalloutOutcome::Success && status == Some(b"200") {
            let answer: Vec<u8> = body.concat();
            self.deliver(host, &answer, obs);
            return;
        }
        let why = if status == Some(b"504") {
            host.increment_counter(stats.timeouts, 1);
            Failure::Timeout
        } else {
            Failure::Unavailable
        };
        // This attempt is over: out of the budget's counts before asking it for a retry.
        p.slot = None;
        if p.retries_left > 0 {
            let budget = routing.table.retry_budget;
            if budget.allows(
                routing.in_flight.retries.load(Ordering::Relaxed),
                routing.in_flight.detours.load(Ordering::Relaxed),
            ) {
                p.retries_left -= 1;
                p.slot = Some(InFlight::new(&routing, true));
                host.increment_counter(stats.retries, 1);
                self.start(host, obs, p);
                return;
            }
            host.increment_counter(stats.retry_overflow, 1);
        }
        host.increment_counter(stats.errors, 1);
        let mut out = Vec::new();
        if encode_failure(routing.proto, &p.frame, &self.limits, why, &mut out) {
            self.deliver(host, &out, obs);
        }
    }

    /// Answers `frame` with the protocol's error.
    fn fail(
        &mut self,
        routing: &Routing,
        host: &mut impl NetworkHost,
        frame: &[u8],
        why: Failure,
        obs: &mut impl Observer,
    ) {
        let mut out = Vec::new();
        if encode_failure(routing.proto, frame, &self.limits, why, &mut out) {
            self.deliver(host, &out, obs);
        }
    }

    /// Writes whole answer frames to the client now if the primary stream is between frames,
    /// else holds them for the next boundary.
    fn deliver(&mut self, host: &mut impl NetworkHost, answer: &[u8], obs: &mut impl Observer) {
        if answer.is_empty() {
            return;
        }
        if self.up.at_boundary() && self.held.is_empty() {
            obs.up(answer);
            host.write_to_client(answer, false);
        } else {
            self.held.extend_from_slice(answer);
        }
    }

    /// Upstream bytes are about to go to the client: track boundaries, splice held answers.
    pub fn on_write(
        &mut self,
        routing: &Routing,
        host: &mut impl NetworkHost,
        obs: &mut impl Observer,
    ) {
        let before = self.up.at_boundary();
        for &c in host.chunks(Direction::Upstream).iter() {
            self.up.feed(routing.proto, c);
            obs.up(c);
        }
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        if before {
            host.prepend_write(&held);
            obs.up(&held);
        } else if self.up.at_boundary() {
            host.append(Direction::Upstream, &held);
            obs.up(&held);
        } else {
            self.held = held;
        }
    }

    /// The connection closed: answers still in flight are dropped when they arrive.
    pub fn on_close(&mut self) {
        self.closed = true;
        self.held.clear();
        self.carry.clear();
    }
}

/// Adds one to `c` in a read's route counters: one ABI call per counter per read, not per frame
/// (the distinct counters of a read are few: its routes and destinations).
fn count(counts: &mut Vec<(crate::host::CounterId, u64)>, c: crate::host::CounterId) {
    match counts.iter_mut().find(|(id, _)| *id == c) {
        Some((_, n)) => *n += 1,
        None => counts.push((c, 1)),
    }
}

fn flush(host: &mut impl NetworkHost, counts: &[(crate::host::CounterId, u64)]) {
    for &(c, n) in counts {
        host.increment_counter(c, n);
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::{Filter, Flow};
    use crate::host::fake::{FakeNetworkHost, FakeRegistry};
    use crate::host::{CalloutOutcome, Direction, NetworkHost};
    use std::sync::Arc;

    fn frame(name: &str) -> Vec<u8> {
        let p = format!(
            "{}/../codec/testdata/dubbo/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(p).unwrap()
    }

    const CFG: &str = r#"{"protocol":"dubbo","stat_prefix":"d","routing":{"primary_cluster":"v1","services":[
        {"service":"org.meltemi.demo.GreetingService","routes":[
          {"name":"grp","match":{"method":{"exact":"sayHello"},"attributes":{"group":{"exact":"g1"},"version":{"prefix":"1."}}},"route":{"cluster":"v2"}},
          {"name":"lim","match":{"method":{"exact":"getUser"}},"route":{"cluster":"v1"},"rate_limit":{"max_tokens":1,"fill_interval_ms":600000}}
        ]}]}}"#;

    fn counter(reg: &FakeRegistry, h: &FakeNetworkHost, name: &str) -> u64 {
        let i = reg.counters.iter().position(|c| c == name).unwrap();
        h.counters.get(&i).copied().unwrap_or(0)
    }

    /// The router decodes each request frame once and hands it to the observer: every request
    /// of a routed connection is counted exactly once per method, across reads that split
    /// frames, and a broken frame counts one decode error and closes the connection.
    #[test]
    fn routed_requests_are_observed_once_each() {
        let mut reg = FakeRegistry::default();
        let cfg = Arc::new(
            crate::config::Config::parse(
                br#"{"protocol":"dubbo","stat_prefix":"d","methods":["sayHello"],"routing":{"primary_cluster":"v1"}}"#,
                &mut reg,
            )
            .unwrap(),
        );
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        let stream = [
            frame("01_client_request_sayHello.bin"),
            frame("03_client_request_getUser.bin"),
            frame("17_client_heartbeat_request.bin"),
            frame("09_client_request_sayHello.bin"),
        ]
        .concat();
        for part in [&stream[..7], &stream[7..250], &stream[250..]] {
            h.downstream = vec![part.to_vec()];
            assert_eq!(f.on_read(&mut h, part.len(), false), Flow::Continue);
            h.downstream.clear();
        }
        let c = |n: &str| counter(&reg, &h, n);
        assert_eq!(
            (
                c("dubbo.d.request"),
                c("dubbo.d.request_call"),
                c("dubbo.d.request_event")
            ),
            (4, 3, 1),
            "three calls and a heartbeat, each counted once"
        );
        assert_eq!(c("dubbo.d.method.sayHello.total"), 2);
        assert_eq!(c("dubbo.d.method.other.total"), 1);
        assert_eq!(c("dubbo.d.downstream_rx_bytes"), stream.len() as u64);
        assert_eq!(c("dubbo.d.request_decoding_error"), 0);

        h.downstream = vec![b"\xda\xbb\xc2\x00not a dubbo body at all".to_vec()];
        assert_eq!(f.on_read(&mut h, 26, false), Flow::Stop);
        assert_eq!(counter(&reg, &h, "dubbo.d.request_decoding_error"), 1);
        assert!(h.closed.is_some());
    }

    #[test]
    fn dubbo_attachment_rule_detours_rate_limit_answers_and_answers_wait_for_a_boundary() {
        let mut reg = FakeRegistry::default();
        let cfg = Arc::new(crate::config::Config::parse(CFG.as_bytes(), &mut reg).unwrap());
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        let (say, get) = (
            frame("01_client_request_sayHello.bin"),
            frame("03_client_request_getUser.bin"),
        );

        // sayHello with group g1 -> detour to v2, split across two reads.
        h.downstream = vec![say[..20].to_vec()];
        assert_eq!(f.on_read(&mut h, 20, false), Flow::Continue);
        assert!(
            h.downstream.is_empty(),
            "a partial frame is held by the module"
        );
        h.downstream = vec![say[20..].to_vec()];
        assert_eq!(f.on_read(&mut h, say.len() - 20, false), Flow::Continue);
        assert!(
            h.downstream.is_empty(),
            "the detoured frame never reaches tcp_proxy"
        );
        assert_eq!(h.callouts.len(), 1);
        assert_eq!(
            (h.callouts[0].cluster.as_str(), &h.callouts[0].body),
            ("v2", &say)
        );

        // getUser twice in one read: the first passes, the second is rate limited.
        h.downstream = vec![[get.clone(), get.clone()].concat()];
        assert_eq!(f.on_read(&mut h, 2 * get.len(), false), Flow::Continue);
        assert_eq!(h.chunks(Direction::Downstream).concat(), get);
        let err = std::mem::take(&mut h.written_to_client);
        let meltemi_codec::Decoded::Frame { frame: hd, used } =
            meltemi_codec::dubbo::decode_header(&err, &Default::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!((used, hd.status, hd.request_id), (err.len(), 100, 2));
        assert_eq!(counter(&reg, &h, "dubbo.d.route.lim.rate_limited"), 1);
        assert_eq!(counter(&reg, &h, "dubbo.d.route.grp.detoured"), 1);
        h.downstream.clear();

        // A primary response arrives half; the detour's answer waits for its end.
        let resp = frame("04_provider_response_getUser.bin");
        h.upstream = vec![resp[..10].to_vec()];
        f.on_write(&mut h, 10, false);
        let answer = frame("02_provider_response_sayHello.bin");
        f.on_callout_done(&mut h, 1, CalloutOutcome::Success, Some(b"200"), &[&answer]);
        assert!(
            h.written_to_client.is_empty(),
            "held while a primary frame is partial"
        );
        h.upstream = vec![resp[10..].to_vec()];
        f.on_write(&mut h, resp.len() - 10, false);
        assert_eq!(h.upstream.concat(), [&resp[10..], &answer[..]].concat());
    }

    /// Unframed Thrift (`TBufferedTransport`, compact): `add` is detoured, `ping` rate limited
    /// after one; the answers are unframed and wait until the primary stream's unframed reply
    /// (walked by its struct, no length) is whole.
    #[test]
    fn unframed_thrift_answers_wait_for_the_end_of_an_unframed_reply() {
        use crate::host::fake::thrift_capture;
        use meltemi_codec::{thrift, Decoded, Limits};
        let (calls, replies) = (
            thrift_capture("compact-unframed.c2s.bin"),
            thrift_capture("compact-unframed.s2c.bin"),
        );
        let mut reg = FakeRegistry::default();
        let cfg = Arc::new(
            crate::config::Config::parse(
                br#"{"protocol":"thrift","stat_prefix":"t","routing":{"primary_cluster":"v1","services":[{"service":"*","routes":[
                  {"name":"a","match":{"method":{"exact":"add"}},"route":{"cluster":"v2"}},
                  {"name":"p","match":{"method":{"exact":"ping"}},"route":{"cluster":"v1"},"rate_limit":{"max_tokens":1,"fill_interval_ms":600000}}
                ]}]}}"#,
                &mut reg,
            )
            .unwrap(),
        );
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        f.on_new_connection(&mut h);
        // add (detour), get (primary, cut in two reads), ping (primary), ping (rate limited).
        let stream = [&calls[0][..], &calls[1], &calls[3], &calls[3]].concat();
        let cut = calls[0].len() + 5;
        for part in [&stream[..cut], &stream[cut..]] {
            h.downstream = vec![part.to_vec()];
            assert_eq!(f.on_read(&mut h, part.len(), false), Flow::Continue);
        }
        assert_eq!(h.callouts.len(), 1);
        assert_eq!(h.callouts[0].body, calls[0]);
        assert_eq!(counter(&reg, &h, "thrift.t.route.p.rate_limited"), 1);
        // The rate-limit answer went out at once (no primary reply started): unframed compact.
        let err = std::mem::take(&mut h.written_to_client);
        let Ok(Decoded::Frame { frame, used }) = thrift::decode_response(&err, &Limits::default())
        else {
            panic!("{err:?}")
        };
        assert_eq!(used, err.len());
        assert_eq!(
            (frame.transport, frame.protocol),
            (thrift::Transport::Unframed, thrift::Protocol::Compact)
        );
        // The primary reply to `get` (seqid 2) arrives cut; the detour's answer waits for it.
        let get = &replies[1];
        h.upstream = vec![get[..3].to_vec()];
        f.on_write(&mut h, 3, false);
        f.on_callout_done(
            &mut h,
            1,
            CalloutOutcome::Success,
            Some(b"200"),
            &[&replies[0]],
        );
        assert!(
            h.written_to_client.is_empty(),
            "held inside an unframed reply"
        );
        h.upstream = vec![get[3..].to_vec()];
        f.on_write(&mut h, get.len() - 3, false);
        assert_eq!(h.upstream.concat(), [&get[3..], &replies[0][..]].concat());
        assert_eq!(counter(&reg, &h, "thrift.t.route.a.detoured"), 1);
    }
}
