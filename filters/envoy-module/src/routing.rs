//! One compiled route table of a listener with its limiters and stat handles ([`Routing`]), the
//! stat handles every table of a listener draws from ([`StatBook`]), and the retry budget's
//! count of detours in flight ([`InFlight`]). Shared by the listener's config, route discovery
//! (which compiles newer tables) and the detour (which routes by them).

use crate::clock::now_ns;
use crate::host::CounterId;
use meltemi_engine::route::{Limiters, RouteTable, RpcProtocol};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one route (index `routes.len()` of [`Routing::route_stats`] is the default).
#[derive(Debug, Clone, Copy)]
pub struct RouteStats {
    pub requests: CounterId,
    pub detoured: CounterId,
    pub rate_limited: CounterId,
    pub mirrored: CounterId,
    pub timeouts: CounterId,
    pub retries: CounterId,
    /// Retries not started: the retry budget was spent (the client got the error reply).
    pub retry_overflow: CounterId,
    pub errors: CounterId,
}

/// One compiled route table of a listener with its limiters and stat handles. Immutable but for
/// the token buckets; shared by `Arc` between the connections that route by it.
#[derive(Debug)]
pub struct Routing {
    pub proto: RpcProtocol,
    pub table: RouteTable,
    /// The table's version (route discovery replaces a table only by a higher one).
    pub version: u64,
    /// Token buckets, shared by every connection of the listener on every worker (so a limit
    /// of N admits exactly N per window). A table from route discovery carries the buckets of
    /// the routes it keeps by name (`Limiters::carried`); new routes start full.
    pub limiters: Mutex<Limiters>,
    /// Per route, then the default route last.
    pub route_stats: Vec<RouteStats>,
    /// Requests sent to each destination cluster (index = cluster index).
    pub dest_requests: Vec<CounterId>,
    /// Detours (not mirrors) and retries in flight on every worker: the retry budget's inputs,
    /// handed from table to table by route discovery (a new table must not reset the budget).
    pub in_flight: Arc<DetourCounts>,
}

/// Detours and, of them, retries in flight (see [`InFlight`]).
#[derive(Debug, Default)]
pub struct DetourCounts {
    pub detours: AtomicU64,
    pub retries: AtomicU64,
}

/// One detour attempt in flight, counted in its table's [`Routing::detours_active`] (and
/// `retries_active` for a retry) until dropped: however the attempt ends (answer, failure,
/// cancel on close), the counts come down.
#[derive(Debug)]
pub struct InFlight {
    counts: Arc<DetourCounts>,
    retry: bool,
}

impl InFlight {
    pub fn new(routing: &Routing, retry: bool) -> InFlight {
        let counts = Arc::clone(&routing.in_flight);
        counts.detours.fetch_add(1, Ordering::Relaxed);
        if retry {
            counts.retries.fetch_add(1, Ordering::Relaxed);
        }
        InFlight { counts, retry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counts.detours.fetch_sub(1, Ordering::Relaxed);
        if self.retry {
            self.counts.retries.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Routing {
    /// The stats of a decision's route.
    pub fn stats(&self, route: Option<u16>) -> &RouteStats {
        let i = route.map_or(self.route_stats.len() - 1, usize::from);
        &self.route_stats[i.min(self.route_stats.len() - 1)]
    }
}

/// The route and destination counters of a listener. Envoy freezes metric definition when
/// `config_new` returns, so they are defined once, for the listener's own table and (route
/// discovery) the newest table this process already fetched for the same source; a table
/// fetched later finds its routes here by name, and names it does not know count under
/// `route.other.*` / `destination.other.requests` (a closed set, as the method stats).
#[derive(Debug)]
pub struct StatBook {
    routes: HashMap<String, RouteStats>,
    default: RouteStats,
    other: Option<RouteStats>,
    dests: HashMap<String, CounterId>,
    other_dest: Option<CounterId>,
}

impl StatBook {
    /// Defines the counters of every route and destination of `tables` (and the `other` ones
    /// when `with_other`) through `counter`, which fails with the caller's error.
    pub(crate) fn define<E>(
        tables: &[&RouteTable],
        with_other: bool,
        counter: &mut dyn FnMut(&str) -> Result<CounterId, E>,
    ) -> Result<StatBook, E> {
        let mut route = |name: &str| -> Result<RouteStats, E> {
            let mut c = |stat: &str| counter(&format!("route.{name}.{stat}"));
            Ok(RouteStats {
                requests: c("requests")?,
                detoured: c("detoured")?,
                rate_limited: c("rate_limited")?,
                mirrored: c("mirrored")?,
                timeouts: c("timeouts")?,
                retries: c("retries")?,
                retry_overflow: c("retry_overflow")?,
                errors: c("errors")?,
            })
        };
        let mut routes = HashMap::new();
        for r in tables.iter().flat_map(|t| &t.routes) {
            if !routes.contains_key(&r.name) {
                routes.insert(r.name.clone(), route(&r.name)?);
            }
        }
        // A table may carry a catch-all route named `default` (the controller's, for requests
        // that match no route): it shares the stats of the implicit default.
        let default = match routes.get("default") {
            Some(r) => *r,
            None => route("default")?,
        };
        let other = if with_other {
            Some(route("other")?)
        } else {
            None
        };
        let mut dests = HashMap::new();
        for cl in tables.iter().flat_map(|t| &t.clusters) {
            if !dests.contains_key(cl) {
                let stat = cl.replace(['.', ' '], "_");
                dests.insert(
                    cl.clone(),
                    counter(&format!("destination.{stat}.requests"))?,
                );
            }
        }
        let other_dest = if with_other {
            Some(counter("destination.other.requests")?)
        } else {
            None
        };
        Ok(StatBook {
            routes,
            default,
            other,
            dests,
            other_dest,
        })
    }

    /// A compiled table with its stat handles.
    pub fn routing(&self, proto: RpcProtocol, table: RouteTable, version: u64) -> Routing {
        let mut route_stats: Vec<RouteStats> = table
            .routes
            .iter()
            .map(|r| {
                self.routes
                    .get(&r.name)
                    .or(self.other.as_ref())
                    .copied()
                    .unwrap_or(self.default)
            })
            .collect();
        route_stats.push(self.default);
        let dest_requests = table
            .clusters
            .iter()
            .map(|c| {
                self.dests
                    .get(c)
                    .copied()
                    .or(self.other_dest)
                    .unwrap_or(self.default.requests)
            })
            .collect();
        Routing {
            proto,
            limiters: Mutex::new(Limiters::new(&table, now_ns())),
            table,
            version,
            route_stats,
            dest_requests,
            in_flight: Arc::default(),
        }
    }
}
