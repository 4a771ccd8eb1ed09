//! Aeraki `MetaRouter` and Istio `VirtualService` (`http` routes of a Dubbo/Thrift host) -> our
//! route table (`meltemi_proto::ServiceRoutes`), with every problem reported against the object's
//! field path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use meltemi_proto as pb;

use crate::crd::{self, MetaRouter};
use crate::istio::{HttpMatch, VirtualService};
use crate::model::{cluster_name, ServicePort};

/// A problem in an input object. Errors stop that object from being rendered; warnings mean a part
/// of it is accepted but not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Problems {
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// A field path built on the stack and formatted only when a problem is reported: the conversion
/// runs for every route of every service (100k routes at scale), and most have no problem.
#[derive(Clone, Copy, Debug)]
pub struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Seg<'a> {
    Field(&'a str),
    Index(usize),
}

impl<'a> Loc<'a> {
    pub const fn root(field: &'a str) -> Self {
        Loc {
            parent: None,
            seg: Seg::Field(field),
        }
    }
    pub fn field(&'a self, field: &'a str) -> Loc<'a> {
        Loc {
            parent: Some(self),
            seg: Seg::Field(field),
        }
    }
    pub fn index(&'a self, i: usize) -> Loc<'a> {
        Loc {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            p.fmt(f)?;
        }
        match (self.seg, self.parent.is_some()) {
            (Seg::Field(s), true) => write!(f, ".{s}"),
            (Seg::Field(s), false) => f.write_str(s),
            (Seg::Index(i), _) => write!(f, "[{i}]"),
        }
    }
}

impl From<Loc<'_>> for String {
    fn from(l: Loc<'_>) -> String {
        l.to_string()
    }
}

/// What the conversion needs to know about other services.
#[derive(Debug, Default)]
pub struct Catalog<'a> {
    /// host -> its protocol ports.
    pub ports: BTreeMap<&'a str, Vec<&'a ServicePort>>,
    /// host -> subset names (DestinationRules).
    pub subsets: BTreeMap<&'a str, BTreeSet<&'a str>>,
}

/// Parses a Go/protobuf-style duration (`1h2m3.5s`, `100ms`, `250us`) into whole milliseconds,
/// rounding a non-zero sub-millisecond remainder up.
pub fn parse_duration_ms(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ns: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("{s:?}: expected a number"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{s:?}: bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            "" => return Err(format!("{s:?}: missing unit (h, m, s, ms, us, ns)")),
            u => return Err(format!("{s:?}: unknown unit {u:?}")),
        };
        rest = &rest[unit_len..];
        total_ns += n * scale;
    }
    let ms = (total_ns / 1e6).ceil();
    if ms > f64::from(u32::MAX) {
        return Err(format!("{s:?}: too long"));
    }
    Ok(ms as u32)
}

pub fn check_regex(r: &str) -> Result<(), String> {
    regex::Regex::new(&format!("^(?:{r})$"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn string_match(path: Loc<'_>, m: &crd::StringMatch, p: &mut Problems) -> Option<pb::StringMatch> {
    let set = [&m.exact, &m.prefix, &m.regex]
        .iter()
        .filter(|x| x.is_some())
        .count();
    if set != 1 {
        p.error(path, "needs exactly one of exact, prefix, regex");
        return None;
    }
    if let Some(r) = &m.regex {
        if let Err(e) = check_regex(r) {
            p.error(path.field("regex"), format!("invalid regex: {e}"));
            return None;
        }
        return Some(pb::StringMatch::regex(r));
    }
    m.exact
        .as_ref()
        .map(pb::StringMatch::exact)
        .or_else(|| m.prefix.as_ref().map(pb::StringMatch::prefix))
}

/// Aeraki's match puts the method among the attributes; ours has a field for it.
fn route_match(path: Loc<'_>, m: &crd::MetaRouteMatch, p: &mut Problems) -> pb::RouteMatch {
    let mut out = pb::RouteMatch::default();
    let attrs = path.field("attributes");
    for (k, v) in &m.attributes {
        let ap = attrs.field(k);
        if k.is_empty() {
            p.error(ap, "empty attribute name");
            continue;
        }
        let Some(sm) = string_match(ap, v, p) else {
            continue;
        };
        if k == "method" {
            out.method = Some(sm);
        } else {
            out.attributes.insert(k.clone(), sm);
        }
    }
    out
}

fn bucket(path: Loc<'_>, b: &crd::TokenBucket, p: &mut Problems) -> Option<pb::TokenBucket> {
    let fill = match parse_duration_ms(&b.fill_interval) {
        Ok(0) => {
            p.error(path.field("fillInterval"), "must be > 0");
            return None;
        }
        Ok(ms) => ms,
        Err(e) => {
            p.error(path.field("fillInterval"), e);
            return None;
        }
    };
    if b.max_tokens == 0 {
        p.error(path.field("maxTokens"), "must be > 0");
        return None;
    }
    Some(pb::TokenBucket {
        max_tokens: b.max_tokens,
        tokens_per_fill: b.tokens_per_fill.unwrap_or(1),
        fill_interval_ms: fill,
    })
}

fn rate_limit(
    path: Loc<'_>,
    l: &crd::LocalRateLimit,
    p: &mut Problems,
) -> Option<pb::LocalRateLimit> {
    let token_bucket = l
        .token_bucket
        .as_ref()
        .and_then(|b| bucket(path.field("tokenBucket"), b, p));
    let mut conditions = Vec::new();
    let conds = path.field("conditions");
    for (i, c) in l.conditions.iter().enumerate() {
        let cp = conds.index(i);
        let m = c
            .match_
            .as_ref()
            .map(|m| route_match(cp.field("match"), m, p))
            .unwrap_or_default();
        if let Some(b) = bucket(cp.field("tokenBucket"), &c.token_bucket, p) {
            conditions.push(pb::RateLimitCondition {
                r#match: Some(m),
                token_bucket: Some(b),
            });
        }
    }
    if token_bucket.is_none() && conditions.is_empty() {
        if l.token_bucket.is_none() && l.conditions.is_empty() {
            p.error(path, "needs tokenBucket or conditions");
        }
        return None;
    }
    Some(pb::LocalRateLimit {
        token_bucket,
        conditions,
    })
}

/// The Istio cluster of a destination seen from service port `sp`.
fn destination_cluster(
    path: Loc<'_>,
    d: &crd::Destination,
    sp: &ServicePort,
    cat: &Catalog<'_>,
    p: &mut Problems,
) -> Option<String> {
    let port = if let Some(n) = d.port.as_ref().and_then(|x| x.number) {
        n
    } else if d.host == sp.host {
        sp.port
    } else {
        match cat.ports.get(d.host.as_str()).map(|v| v.as_slice()) {
            Some([only]) => only.port,
            Some([]) | None => {
                p.error(
                    path.field("host"),
                    format!(
                        "no ServiceEntry/Service with a protocol port for host {:?}",
                        d.host
                    ),
                );
                return None;
            }
            Some(_) => {
                p.error(
                    path.field("port").field("number"),
                    format!("host {:?} has several protocol ports; name one", d.host),
                );
                return None;
            }
        }
    };
    let subset = d.subset.as_deref().unwrap_or("");
    if !subset.is_empty()
        && !cat
            .subsets
            .get(d.host.as_str())
            .is_some_and(|s| s.contains(subset))
    {
        p.error(
            path.field("subset"),
            format!(
                "subset {subset:?} is not defined by a DestinationRule for host {:?}",
                d.host
            ),
        );
        return None;
    }
    Some(cluster_name(port, subset, &d.host))
}

/// A route's name: its own (if set), else `route-<i>`; `-<i>` appended when already taken.
fn route_name(given: Option<&str>, i: usize, names: &mut BTreeSet<String>) -> String {
    let mut name = given
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("route-{i}"), str::to_owned);
    if names.contains(&name) {
        name = format!("{name}-{i}");
    }
    names.insert(name.clone());
    name
}

/// What a destination without `weight` weighs when a route has several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnsetWeight {
    /// MetaRouter: an error.
    Required,
    /// VirtualService: 0, as Istio reads it.
    Zero,
}

/// The action of a route with destinations `dests` (each with its weight) under `route_loc`
/// (`route[j].destination`, `route[j].weight`: the same names in MetaRouter and VirtualService).
fn route_action(
    route_loc: Loc<'_>,
    dests: &[(&crd::Destination, Option<u32>)],
    unset: UnsetWeight,
    sp: &ServicePort,
    cat: &Catalog<'_>,
    p: &mut Problems,
) -> Option<pb::RouteAction> {
    match dests {
        [] => {
            p.error(route_loc, "needs at least one destination");
            None
        }
        [(one, _)] => destination_cluster(route_loc.index(0).field("destination"), one, sp, cat, p)
            .map(pb::RouteAction::cluster),
        many => {
            let mut weighted = Vec::with_capacity(many.len());
            for (j, (d, w)) in many.iter().enumerate() {
                let wp = route_loc.index(j);
                let weight = match (w, unset) {
                    (Some(w), _) => *w,
                    (None, UnsetWeight::Zero) => 0,
                    (None, UnsetWeight::Required) => {
                        p.error(
                            wp.field("weight"),
                            "required when a route has several destinations",
                        );
                        continue;
                    }
                };
                if let Some(c) = destination_cluster(wp.field("destination"), d, sp, cat, p) {
                    weighted.push(pb::WeightedCluster { cluster: c, weight });
                }
            }
            if weighted.len() == many.len() && weighted.iter().all(|w| w.weight == 0) {
                p.error(route_loc, "weights sum to 0");
            }
            Some(pb::RouteAction {
                cluster: String::new(),
                weighted_clusters: weighted,
            })
        }
    }
}

/// `mirror` + `mirrorPercentage` (default 100) of the route at `rp`.
fn mirror(
    rp: Loc<'_>,
    to: Option<&crd::Destination>,
    percentage: Option<&crd::Percent>,
    sp: &ServicePort,
    cat: &Catalog<'_>,
    p: &mut Problems,
) -> Option<pb::Mirror> {
    let Some(d) = to else {
        if percentage.is_some() {
            p.warn(rp.field("mirrorPercentage"), "ignored without mirror");
        }
        return None;
    };
    let percent = percentage.map_or(100.0, |x| x.value);
    if !(0.0..=100.0).contains(&percent) {
        p.error(
            rp.field("mirrorPercentage").field("value"),
            format!("{percent} is not in 0..=100"),
        );
    }
    destination_cluster(rp.field("mirror"), d, sp, cat, p)
        .map(|cluster| pb::Mirror { cluster, percent })
}

fn timeout(rp: Loc<'_>, t: Option<&str>, p: &mut Problems) -> u32 {
    t.map_or(0, |t| {
        parse_duration_ms(t).unwrap_or_else(|e| {
            p.error(rp.field("timeout"), e);
            0
        })
    })
}

/// What MetaRouter and VirtualService routes share, under the same field names: `route`
/// (destinations and weights), `mirror` + `mirrorPercentage`, `timeout`.
struct Forwarding<'a> {
    dests: Vec<(&'a crd::Destination, Option<u32>)>,
    unset: UnsetWeight,
    mirror: Option<&'a crd::Destination>,
    percentage: Option<&'a crd::Percent>,
    timeout: Option<&'a str>,
}

/// The action, mirror and timeout of the route at `rp`.
fn forwarding(
    rp: Loc<'_>,
    f: Forwarding<'_>,
    sp: &ServicePort,
    cat: &Catalog<'_>,
    p: &mut Problems,
) -> (Option<pb::RouteAction>, Option<pb::Mirror>, u32) {
    let action = route_action(rp.field("route"), &f.dests, f.unset, sp, cat, p);
    let mirror = mirror(rp, f.mirror, f.percentage, sp, cat, p);
    (action, mirror, timeout(rp, f.timeout, p))
}

/// Converts one MetaRouter for one service port. `None` when the router has errors (all are in `p`).
/// Fields it accepts but does not apply are reported by `crate::fields`, once per object.
pub fn convert(
    mr: &MetaRouter,
    sp: &ServicePort,
    cat: &Catalog<'_>,
    p: &mut Problems,
) -> Option<pb::ServiceRoutes> {
    let before = p.errors.len();
    let spec = &mr.spec;
    let mut routes = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let spec_loc = Loc::root("spec");
    let routes_loc = spec_loc.field("routes");
    for (i, r) in spec.routes.iter().enumerate() {
        let rp = routes_loc.index(i);
        let name = route_name(r.name.as_deref(), i, &mut names);
        let m = r
            .match_
            .as_ref()
            .map(|m| route_match(rp.field("match"), m, p));
        let (action, mirror, timeout_ms) = forwarding(
            rp,
            Forwarding {
                dests: r.route.iter().map(|w| (&w.destination, w.weight)).collect(),
                unset: UnsetWeight::Required,
                mirror: r.mirror.as_ref(),
                percentage: r.mirror_percentage.as_ref(),
                timeout: r.timeout.as_deref(),
            },
            sp,
            cat,
            p,
        );
        let retry = r.retries.as_ref().map(|rt| {
            if rt.attempts > pb::MAX_RETRY_ATTEMPTS {
                p.error(
                    rp.field("retries").field("attempts"),
                    format!("at most {}", pb::MAX_RETRY_ATTEMPTS),
                );
            }
            if rt.attempts > 0 && rt.idempotent_methods.is_empty() {
                p.error(
                    rp.field("retries").field("idempotentMethods"),
                    "list the idempotent methods to retry",
                );
            }
            pb::RetryPolicy {
                attempts: rt.attempts,
                idempotent_methods: rt.idempotent_methods.clone(),
            }
        });
        routes.push(pb::Route {
            name,
            r#match: m,
            action,
            rate_limit: None,
            mirror,
            timeout_ms,
            retry,
        });
    }
    let rl = spec
        .local_rate_limit
        .as_ref()
        .and_then(|l| rate_limit(Loc::root("spec").field("localRateLimit"), l, p));
    if spec.routes.is_empty() && rl.is_none() {
        p.warn(
            "spec",
            "no routes and no local rate limit: nothing to apply",
        );
    }
    (p.errors.len() == before).then(|| pb::ServiceRoutes {
        name: "*".into(),
        routes,
        rate_limit: rl,
    })
}

/// Istio's `match[i]` (method and headers; Aeraki's `dubbo_proxy` generator read the same two)
/// as our match: headers become attribute matches (Dubbo attachments, Thrift THeader headers).
fn http_match(path: Loc<'_>, m: &HttpMatch, p: &mut Problems) -> pb::RouteMatch {
    let mut out = pb::RouteMatch::default();
    if let Some(sm) = &m.method {
        out.method = string_match(path.field("method"), sm, p);
    }
    let headers = path.field("headers");
    for (k, v) in &m.headers {
        let hp = headers.field(k);
        if k.is_empty() {
            p.error(hp, "empty header name");
            continue;
        }
        if let Some(sm) = string_match(hp, v, p) {
            out.attributes.insert(k.clone(), sm);
        }
    }
    out
}

/// Converts the `http` routes of one VirtualService for one service port into the route table a
/// MetaRouter with the same matches and destinations gives. Each `match[i]` (alternatives in
/// Istio) becomes a route of its own with the same action, named `<name>` then `<name>-m<i>`.
/// `None` when the VirtualService has errors (all are in `p`).
pub fn convert_virtual_service(
    vs: &VirtualService,
    sp: &ServicePort,
    cat: &Catalog<'_>,
    p: &mut Problems,
) -> Option<pb::ServiceRoutes> {
    let before = p.errors.len();
    let mut routes = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let spec_loc = Loc::root("spec");
    let http_loc = spec_loc.field("http");
    for (i, r) in vs.spec.http.iter().enumerate() {
        let rp = http_loc.index(i);
        let (action, mirror, timeout_ms) = forwarding(
            rp,
            Forwarding {
                dests: r.route.iter().map(|w| (&w.destination, w.weight)).collect(),
                unset: UnsetWeight::Zero,
                mirror: r.mirror.as_ref(),
                percentage: r.mirror_percentage.as_ref(),
                timeout: r.timeout.as_deref(),
            },
            sp,
            cat,
            p,
        );
        let match_loc = rp.field("match");
        let matches: Vec<Option<pb::RouteMatch>> = if r.match_.is_empty() {
            vec![None]
        } else {
            r.match_
                .iter()
                .enumerate()
                .map(|(m, x)| Some(http_match(match_loc.index(m), x, p)))
                .collect()
        };
        let base = route_name(r.name.as_deref(), i, &mut names);
        for (m, route_match) in matches.into_iter().enumerate() {
            let name = if m == 0 {
                base.clone()
            } else {
                route_name(Some(&format!("{base}-m{m}")), i, &mut names)
            };
            routes.push(pb::Route {
                name,
                r#match: route_match,
                action: action.clone(),
                rate_limit: None,
                mirror: mirror.clone(),
                timeout_ms,
                retry: None,
            });
        }
    }
    if vs.spec.http.is_empty() {
        p.warn("spec.http", "no http routes: nothing to apply");
    }
    (p.errors.len() == before).then(|| pb::ServiceRoutes {
        name: "*".into(),
        routes,
        rate_limit: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("60s"), Ok(60_000));
        assert_eq!(parse_duration_ms("100ms"), Ok(100));
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500));
        assert_eq!(parse_duration_ms("250us"), Ok(1));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("10x").is_err());
        assert!(parse_duration_ms("").is_err());
    }

    #[test]
    fn regexes_checked_whole_string() {
        assert!(check_regex("say.*").is_ok());
        assert!(check_regex("(").is_err());
    }
}
