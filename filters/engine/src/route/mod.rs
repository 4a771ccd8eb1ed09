//! Per-request routing for Dubbo and Thrift: a pure route table.
//!
//! The table is compiled once from the filter JSON (`"routing": {...}`, see `docs/routing.md`)
//! and shared read-only by every connection. [`RouteTable::decide`] turns one request's
//! attributes into a [`Decision`]: pass it on the connection's primary cluster (the fast path,
//! untouched bytes through `tcp_proxy`), detour it to another cluster, or answer it locally
//! (rate limited). Randomness (weighted splits, mirror share) comes from a [`SplitMix64`] the
//! caller seeds; time (token buckets) is an argument; the mutable token buckets live in a
//! [`Limiters`] value the caller owns (and shares as it sees fit).
//!
//! Tie-breaking, documented once: the first `services` entry whose `service` equals the
//! request's service wins, else the first `"*"` entry; within it the first route whose every
//! condition matches wins; when none matches, the table's `default` action applies (the primary
//! cluster unless configured). A request without a service name (non-multiplexed Thrift) only
//! sees `"*"` entries.

mod config;
mod rng;
mod schema;
mod wire;

pub use config::{RawRouting, RouteError};
pub use rng::SplitMix64;
pub use schema::from_proto;
pub use wire::{
    encode_failure, route_request, route_request_with, Boundary, Failure, RequestFrame,
    ResponseCounter, Routed, RpcProtocol,
};

use std::collections::HashMap;

/// A string condition on a method or attribute.
#[derive(Debug, Clone)]
pub enum StrMatch {
    /// Equal bytes.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches the whole value (the pattern is anchored at compile time).
    Regex(regex_lite::Regex),
}

impl StrMatch {
    /// True when `v` satisfies the condition.
    #[inline]
    pub fn matches(&self, v: &str) -> bool {
        match self {
            StrMatch::Exact(s) => v == s,
            StrMatch::Prefix(p) => v.starts_with(p.as_str()),
            StrMatch::Regex(r) => r.is_match(v),
        }
    }
}

/// A destination cluster index into [`RouteTable::clusters`].
pub type ClusterIdx = u16;

/// Where a matched route sends requests.
#[derive(Debug, Clone)]
pub enum Action {
    /// All to one cluster.
    Cluster(ClusterIdx),
    /// Weighted: `(cluster, cumulative weight)`; the last cumulative weight is the total.
    Weighted(Vec<(ClusterIdx, u64)>),
}

/// A token bucket's configuration (Envoy's local rate limit shape: discrete fills).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens the bucket holds at most (and starts with).
    pub max_tokens: u32,
    /// Tokens added per fill.
    pub tokens_per_fill: u32,
    /// Nanoseconds between fills.
    pub fill_interval_ns: u64,
}

/// Mirroring a share of a route's requests (the mirror's answer is dropped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mirror {
    /// The mirror cluster.
    pub cluster: ClusterIdx,
    /// Share in millionths (0..=1_000_000).
    pub ppm: u32,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's name (for stats; from config or `<service>_<i>`).
    pub name: String,
    /// Method condition.
    pub method: Option<StrMatch>,
    /// Attribute conditions (all must hold; a missing attribute fails).
    pub attributes: Vec<(String, StrMatch)>,
    /// Destination(s).
    pub action: Action,
    /// Index into [`Limiters`] when the route is rate limited.
    pub limiter: Option<usize>,
    /// Mirroring.
    pub mirror: Option<Mirror>,
    /// Per-request timeout of a detoured request (ms).
    pub timeout_ms: u64,
    /// Retries for the methods listed in `idempotent`.
    pub retries: u32,
    /// Methods safe to retry.
    pub idempotent: Vec<String>,
}

/// The request attributes a route may look at.
pub trait Attributes {
    /// The value of attribute `key` (Dubbo: `version`, `group` or an attachment; Thrift: a
    /// THeader info header), if present and a string.
    fn get(&self, key: &str) -> Option<&str>;
}

impl Attributes for () {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

impl Attributes for [(&str, &str)] {
    fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// One request as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a, A: ?Sized> {
    /// Dubbo interface / Thrift multiplexed service name.
    pub service: Option<&'a str>,
    /// The method.
    pub method: &'a str,
    /// Attribute lookup.
    pub attrs: &'a A,
}

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The connection's primary cluster (the `tcp_proxy` fast path).
    Primary,
    /// Another cluster, by callout.
    Detour(ClusterIdx),
    /// Answer locally with the protocol's error.
    LocalReply(LocalReply),
}

/// Why the module answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReply {
    /// The route's token bucket is empty.
    RateLimited,
}

/// The full decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The route that matched (`None`: the table's default).
    pub route: Option<u16>,
    /// Where the request goes.
    pub target: Target,
    /// The chosen cluster (also for `Primary`), unless answered locally.
    pub cluster: Option<ClusterIdx>,
    /// Also send a copy to this cluster (answer dropped).
    pub mirror: Option<ClusterIdx>,
    /// Per-request timeout (ms) for a detour.
    pub timeout_ms: u64,
    /// Retries allowed for a detour of this method.
    pub retries: u32,
}

/// Default per-request timeout of a detour.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// The compiled route table.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Cluster names; index 0 is the primary cluster.
    pub clusters: Vec<String>,
    /// Every route, in service order then route order.
    pub routes: Vec<Route>,
    /// Service name -> route index range.
    by_service: HashMap<String, (usize, usize)>,
    /// Route index range of the `"*"` entry.
    any_service: Option<(usize, usize)>,
    /// When nothing matches.
    pub default: Action,
    /// Token bucket configs, indexed by [`Route::limiter`].
    pub buckets: Vec<Bucket>,
    /// The seed configured for tests (`None`: the adapter picks one per connection).
    pub seed: Option<u64>,
    /// How many retries may be in flight.
    pub retry_budget: RetryBudget,
}

/// Envoy's cluster retry budget, applied by the adapter to the detours of a table: a retry
/// starts only while the retries in flight stay under
/// max(`min_concurrency`, `percent` % of the detours in flight).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// 0..=100.
    pub percent: f64,
    /// Retries in flight always allowed.
    pub min_concurrency: u32,
}

impl Default for RetryBudget {
    /// Envoy's defaults (`RetryBudget` in `circuit_breakers`): 20 % and 3.
    fn default() -> Self {
        RetryBudget {
            percent: 20.0,
            min_concurrency: 3,
        }
    }
}

impl RetryBudget {
    /// Whether one more retry may start with `retries` retries and `active` detours in flight
    /// (neither counting the one that asks).
    pub fn allows(&self, retries: u64, active: u64) -> bool {
        let share = (active as f64 * self.percent / 100.0) as u64;
        retries < share.max(u64::from(self.min_concurrency))
    }
}

impl RouteTable {
    /// The primary cluster's name.
    pub fn primary(&self) -> &str {
        &self.clusters[0]
    }

    /// The index (into [`RouteTable::routes`]) of the first route matching `req`, if any.
    pub fn select<A: Attributes + ?Sized>(&self, req: &Request<'_, A>) -> Option<usize> {
        let (a, b) = req
            .service
            .and_then(|s| self.by_service.get(s).copied())
            .or(self.any_service)?;
        self.routes[a..b]
            .iter()
            .position(|r| {
                r.method.as_ref().is_none_or(|m| m.matches(req.method))
                    && r.attributes
                        .iter()
                        .all(|(k, m)| req.attrs.get(k).is_some_and(|v| m.matches(v)))
            })
            .map(|p| a + p)
    }

    /// Decides where `req` goes. `rng` draws weights and mirror shares; `take` is asked for a
    /// token of a rate-limited route's bucket (index into [`RouteTable::buckets`]) and answers
    /// whether one was available.
    pub fn decide<A: Attributes + ?Sized>(
        &self,
        req: &Request<'_, A>,
        rng: &mut SplitMix64,
        take: impl FnOnce(usize) -> bool,
    ) -> Decision {
        let Some(i) = self.select(req) else {
            let c = pick(&self.default, rng);
            return Decision {
                route: None,
                target: target_of(c),
                cluster: Some(c),
                mirror: None,
                timeout_ms: DEFAULT_TIMEOUT_MS,
                retries: 0,
            };
        };
        let r = &self.routes[i];
        if let Some(l) = r.limiter {
            if !take(l) {
                return Decision {
                    route: Some(i as u16),
                    target: Target::LocalReply(LocalReply::RateLimited),
                    cluster: None,
                    mirror: None,
                    timeout_ms: r.timeout_ms,
                    retries: 0,
                };
            }
        }
        let c = pick(&r.action, rng);
        let mirror = r
            .mirror
            .filter(|m| rng.below(1_000_000) < u64::from(m.ppm))
            .map(|m| m.cluster);
        let retries = if r.retries > 0 && r.idempotent.iter().any(|m| m == req.method) {
            r.retries
        } else {
            0
        };
        Decision {
            route: Some(i as u16),
            target: target_of(c),
            cluster: Some(c),
            mirror,
            timeout_ms: r.timeout_ms,
            retries,
        }
    }
}

fn target_of(c: ClusterIdx) -> Target {
    if c == 0 {
        Target::Primary
    } else {
        Target::Detour(c)
    }
}

fn pick(a: &Action, rng: &mut SplitMix64) -> ClusterIdx {
    match a {
        Action::Cluster(c) => *c,
        Action::Weighted(w) => {
            let total = w.last().map_or(1, |x| x.1);
            let x = rng.below(total);
            w.iter().find(|(_, cum)| x < *cum).map_or(0, |(c, _)| *c)
        }
    }
}

/// Token bucket state for every rate-limited route of a table.
#[derive(Debug, Clone)]
pub struct Limiters {
    tokens: Vec<u32>,
    last_fill_ns: Vec<u64>,
}

impl Limiters {
    /// Full buckets at time `now_ns`.
    pub fn new(table: &RouteTable, now_ns: u64) -> Self {
        Limiters {
            tokens: table.buckets.iter().map(|b| b.max_tokens).collect(),
            last_fill_ns: vec![now_ns; table.buckets.len()],
        }
    }

    /// Buckets for `table` that continue `old`'s (the buckets of `old_table`) where a route
    /// keeps its name: a route table update must not hand every limited route a fresh burst.
    /// A carried bucket keeps its tokens (capped at the new `max_tokens`) and, when its fill
    /// interval is unchanged, its fill clock; when several old buckets feed one new (shared)
    /// bucket, the emptiest wins; a bucket no kept route feeds starts full.
    pub fn carried(
        table: &RouteTable,
        old_table: &RouteTable,
        old: &Limiters,
        now_ns: u64,
    ) -> Self {
        let mut fresh = Limiters::new(table, now_ns);
        let mut prev = old.clone();
        // Per new bucket: the emptiest old bucket feeding it, as (tokens, fill clock, interval).
        let mut from: Vec<Option<(u32, u64, u64)>> = vec![None; table.buckets.len()];
        for r in &table.routes {
            let Some(i) = r.limiter else { continue };
            let Some(j) = old_table
                .routes
                .iter()
                .find(|o| o.name == r.name)
                .and_then(|o| o.limiter)
            else {
                continue;
            };
            // Bring the old bucket up to date first (fills due until now).
            prev.refill(old_table, j, now_ns);
            let (Some(ob), Some(&t), Some(&last), Some(slot)) = (
                old_table.buckets.get(j),
                prev.tokens.get(j),
                prev.last_fill_ns.get(j),
                from.get_mut(i),
            ) else {
                continue;
            };
            if slot.is_none_or(|(have, _, _)| t < have) {
                *slot = Some((t, last, ob.fill_interval_ns));
            }
        }
        for (i, f) in from.into_iter().enumerate() {
            let (Some((t, last, interval)), Some(b)) = (f, table.buckets.get(i)) else {
                continue;
            };
            fresh.tokens[i] = t.min(b.max_tokens);
            if b.fill_interval_ns == interval {
                fresh.last_fill_ns[i] = last;
            }
        }
        fresh
    }

    /// Adds the fills of bucket `i` due by `now_ns`.
    fn refill(&mut self, table: &RouteTable, i: usize, now_ns: u64) {
        let (Some(b), Some(t), Some(last)) = (
            table.buckets.get(i),
            self.tokens.get_mut(i),
            self.last_fill_ns.get_mut(i),
        ) else {
            return;
        };
        let elapsed = now_ns.saturating_sub(*last);
        if b.fill_interval_ns > 0 && elapsed >= b.fill_interval_ns {
            let fills = elapsed / b.fill_interval_ns;
            let add = fills.saturating_mul(u64::from(b.tokens_per_fill));
            *t = (u64::from(*t) + add).min(u64::from(b.max_tokens)) as u32;
            *last += fills * b.fill_interval_ns;
        }
    }

    /// Takes one token of bucket `i` at `now_ns`; false when empty (or `i` unknown).
    pub fn take(&mut self, table: &RouteTable, i: usize, now_ns: u64) -> bool {
        self.refill(table, i, now_ns);
        match self.tokens.get_mut(i) {
            Some(t) if *t > 0 => {
                *t -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
