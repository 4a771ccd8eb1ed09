//! The `routing` section of the filter JSON and its compilation into a [`RouteTable`].
//! Unknown fields are refused everywhere; every error names the field path.

use super::{
    Action, Bucket, ClusterIdx, Mirror, RetryBudget, Route, RouteTable, StrMatch,
    DEFAULT_TIMEOUT_MS,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;

/// A refused routing configuration: the field path and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// For example `routing.services[0].routes[1].match.method`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> RouteError {
    RouteError {
        field: field.into(),
        message: message.into(),
    }
}

/// `routing` as written in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// The cluster `tcp_proxy` forwards to (the fast path).
    pub primary_cluster: String,
    /// Per-service route lists.
    #[serde(default)]
    pub services: Vec<RawService>,
    /// When no route matches (default: the primary cluster).
    #[serde(default)]
    pub default: Option<RawAction>,
    /// Fixed RNG seed (tests); otherwise the adapter seeds each connection.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Bounds retries across the listener (default: Envoy's 20 % and 3).
    #[serde(default)]
    pub retry_budget: Option<RawRetryBudget>,
}

/// A retry starts only while the retries in flight stay under
/// max(`min_retry_concurrency`, `budget_percent` % of the detours in flight).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryBudget {
    #[serde(default = "default_budget_percent")]
    pub budget_percent: f64,
    #[serde(default = "default_min_retry_concurrency")]
    pub min_retry_concurrency: u32,
}

impl Eq for RawRetryBudget {}

fn default_budget_percent() -> f64 {
    RetryBudget::default().percent
}

fn default_min_retry_concurrency() -> u32 {
    RetryBudget::default().min_concurrency
}

/// One service's routes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Dubbo interface / Thrift multiplexed service; `"*"` for any.
    pub service: String,
    /// Ordered routes: the first match wins.
    pub routes: Vec<RawRoute>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Stat name of the route (`[A-Za-z0-9_-]`); default `<service>_<index>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions (all must hold); absent matches every request of the service.
    #[serde(default, rename = "match")]
    pub matches: RawMatch,
    /// Where matching requests go.
    pub route: RawAction,
    /// Local rate limit (token bucket).
    #[serde(default)]
    pub rate_limit: Option<RawBucket>,
    /// Mirror a share of the requests.
    #[serde(default)]
    pub mirror: Option<RawMirror>,
    /// Per-request timeout of detoured requests.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Retries of detoured requests whose method is listed in `idempotent_methods`.
    #[serde(default)]
    pub retries: u32,
    /// Methods that may be retried.
    #[serde(default)]
    pub idempotent_methods: Vec<String>,
}

/// Route conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// On the method name.
    #[serde(default)]
    pub method: Option<RawStr>,
    /// On attributes (Dubbo `version`, `group`, attachments; Thrift THeader headers).
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, RawStr>,
}

/// One of `exact`, `prefix`, `regex`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStr {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

/// `{"cluster": "v2"}` or `{"weighted": [{"cluster": "v1", "weight": 90}, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub weighted: Vec<RawWeighted>,
}

/// One weighted destination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeighted {
    pub cluster: String,
    pub weight: u32,
}

/// A token bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    pub max_tokens: u32,
    #[serde(default)]
    pub tokens_per_fill: Option<u32>,
    pub fill_interval_ms: u64,
    /// Routes whose buckets carry the same key share one bucket (a service-wide limit spread
    /// over the service's routes); their settings must be equal.
    #[serde(default)]
    pub shared: Option<String>,
}

/// Mirroring.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub cluster: String,
    /// 0..=100, fractions allowed.
    pub percent: f64,
}

impl Eq for RawMirror {}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Builder {
    clusters: Vec<String>,
    index: HashMap<String, ClusterIdx>,
}

impl Builder {
    fn cluster(&mut self, name: &str, field: &str) -> Result<ClusterIdx, RouteError> {
        if name.is_empty() || name.len() > 200 || name.contains(char::is_whitespace) {
            return Err(err(
                field,
                format!("cluster {name:?} is not a cluster name"),
            ));
        }
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        if self.clusters.len() >= 1000 {
            return Err(err(field, "at most 1000 clusters"));
        }
        let i = self.clusters.len() as ClusterIdx;
        self.clusters.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        Ok(i)
    }

    fn action(&mut self, a: &RawAction, field: &str) -> Result<Action, RouteError> {
        match (&a.cluster, a.weighted.is_empty()) {
            (Some(c), true) => Ok(Action::Cluster(
                self.cluster(c, &format!("{field}.cluster"))?,
            )),
            (None, false) => {
                let mut cum = 0u64;
                let mut out = Vec::with_capacity(a.weighted.len().min(64));
                for (i, w) in a.weighted.iter().enumerate() {
                    let f = format!("{field}.weighted[{i}]");
                    let c = self.cluster(&w.cluster, &f)?;
                    if w.weight == 0 {
                        continue;
                    }
                    cum += u64::from(w.weight);
                    out.push((c, cum));
                }
                if cum == 0 {
                    return Err(err(format!("{field}.weighted"), "weights sum to 0"));
                }
                Ok(Action::Weighted(out))
            }
            _ => Err(err(field, "exactly one of cluster, weighted")),
        }
    }
}

fn str_match(m: &RawStr, field: &str) -> Result<StrMatch, RouteError> {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), None, None) => Ok(StrMatch::Exact(e.clone())),
        (None, Some(p), None) => Ok(StrMatch::Prefix(p.clone())),
        (None, None, Some(r)) => {
            if r.len() > 1000 {
                return Err(err(field, "regex longer than 1000 characters"));
            }
            regex_lite::Regex::new(&format!("^(?:{r})$"))
                .map(StrMatch::Regex)
                .map_err(|e| err(field, format!("bad regex {r:?}: {e}")))
        }
        _ => Err(err(field, "exactly one of exact, prefix, regex")),
    }
}

impl RouteTable {
    /// Compiles `raw`; `field` is the path of the `routing` object for error messages.
    pub fn compile(raw: &RawRouting) -> Result<RouteTable, RouteError> {
        let mut b = Builder {
            clusters: Vec::new(),
            index: HashMap::new(),
        };
        b.cluster(&raw.primary_cluster, "routing.primary_cluster")?;
        let default = match &raw.default {
            Some(a) => b.action(a, "routing.default")?,
            None => Action::Cluster(0),
        };
        let mut routes = Vec::new();
        let mut buckets = Vec::new();
        let mut shared_buckets: HashMap<String, usize> = HashMap::new();
        let mut by_service = HashMap::new();
        let mut any_service = None;
        let mut names = std::collections::HashSet::new();
        for (si, s) in raw.services.iter().enumerate() {
            let sf = format!("routing.services[{si}]");
            if s.service.is_empty() {
                return Err(err(format!("{sf}.service"), "must not be empty"));
            }
            let start = routes.len();
            for (ri, r) in s.routes.iter().enumerate() {
                let rf = format!("{sf}.routes[{ri}]");
                let name = match &r.name {
                    Some(n) if valid_name(n) => n.clone(),
                    Some(n) => {
                        return Err(err(
                            format!("{rf}.name"),
                            format!("{n:?} must be 1..=100 characters of [A-Za-z0-9_-]"),
                        ))
                    }
                    None => {
                        let svc: String = s
                            .service
                            .chars()
                            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                            .collect();
                        format!("{svc}_{ri}")
                    }
                };
                if !names.insert(name.clone()) {
                    return Err(err(
                        format!("{rf}.name"),
                        format!("duplicate route {name:?}"),
                    ));
                }
                let method = r
                    .matches
                    .method
                    .as_ref()
                    .map(|m| str_match(m, &format!("{rf}.match.method")))
                    .transpose()?;
                let mut attributes = Vec::new();
                for (k, m) in &r.matches.attributes {
                    attributes.push((
                        k.clone(),
                        str_match(m, &format!("{rf}.match.attributes.{k}"))?,
                    ));
                }
                let action = b.action(&r.route, &format!("{rf}.route"))?;
                let limiter = match &r.rate_limit {
                    None => None,
                    Some(l) => {
                        if l.max_tokens == 0 || l.fill_interval_ms == 0 {
                            return Err(err(
                                format!("{rf}.rate_limit"),
                                "max_tokens and fill_interval_ms must be > 0",
                            ));
                        }
                        let bucket = Bucket {
                            max_tokens: l.max_tokens,
                            tokens_per_fill: l.tokens_per_fill.unwrap_or(l.max_tokens),
                            fill_interval_ns: l.fill_interval_ms.saturating_mul(1_000_000),
                        };
                        match l.shared.as_ref().and_then(|k| shared_buckets.get(k)) {
                            Some(&i) if buckets[i] == bucket => Some(i),
                            Some(_) => {
                                return Err(err(
                                    format!("{rf}.rate_limit.shared"),
                                    "buckets sharing a key must have equal settings",
                                ))
                            }
                            None => {
                                buckets.push(bucket);
                                if let Some(k) = &l.shared {
                                    shared_buckets.insert(k.clone(), buckets.len() - 1);
                                }
                                Some(buckets.len() - 1)
                            }
                        }
                    }
                };
                let mirror = match &r.mirror {
                    None => None,
                    Some(m) => {
                        if !(0.0..=100.0).contains(&m.percent) {
                            return Err(err(
                                format!("{rf}.mirror.percent"),
                                "must be within 0..=100",
                            ));
                        }
                        Some(Mirror {
                            cluster: b.cluster(&m.cluster, &format!("{rf}.mirror.cluster"))?,
                            ppm: (m.percent * 10_000.0).round() as u32,
                        })
                    }
                };
                let timeout_ms = r.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
                if timeout_ms == 0 || timeout_ms > 3_600_000 {
                    return Err(err(
                        format!("{rf}.timeout_ms"),
                        "must be within 1..=3600000",
                    ));
                }
                if r.retries > 10 {
                    return Err(err(format!("{rf}.retries"), "at most 10"));
                }
                routes.push(Route {
                    name,
                    method,
                    attributes,
                    action,
                    limiter,
                    mirror,
                    timeout_ms,
                    retries: r.retries,
                    idempotent: r.idempotent_methods.clone(),
                });
            }
            let range = (start, routes.len());
            if s.service == "*" {
                if any_service.replace(range).is_some() {
                    return Err(err(format!("{sf}.service"), "duplicate service \"*\""));
                }
            } else if by_service.insert(s.service.clone(), range).is_some() {
                return Err(err(
                    format!("{sf}.service"),
                    format!("duplicate service {:?}", s.service),
                ));
            }
        }
        let retry_budget = match &raw.retry_budget {
            None => RetryBudget::default(),
            Some(b) if (0.0..=100.0).contains(&b.budget_percent) => RetryBudget {
                percent: b.budget_percent,
                min_concurrency: b.min_retry_concurrency,
            },
            Some(_) => {
                return Err(err(
                    "routing.retry_budget.budget_percent",
                    "must be within 0..=100",
                ))
            }
        };
        Ok(RouteTable {
            clusters: b.clusters,
            routes,
            by_service,
            any_service,
            default,
            buckets,
            seed: raw.seed,
            retry_budget,
        })
    }
}
