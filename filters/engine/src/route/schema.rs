//! The shared configuration schema's route table (`meltemi_proto::RouteTable`, what the
//! controller writes) compiled into the engine's own form ([`RawRouting`]).
//!
//! Destinations other than the table's `primary_cluster` are reached by callout through their
//! bridge twin, `meltemi-bridge|<cluster>` (the clusters the controller adds next to Istio's).

use super::config::{
    RawAction, RawBucket, RawMatch, RawMirror, RawRoute, RawRouting, RawService, RawStr,
    RawWeighted, RouteError,
};
use meltemi_proto::{string_match::Kind, RouteTable, StringMatch, BRIDGE_CLUSTER_PREFIX};

fn err(field: String, message: &str) -> RouteError {
    RouteError {
        field,
        message: message.into(),
    }
}

fn string_match(m: &StringMatch, field: &str) -> Result<RawStr, RouteError> {
    let mut r = RawStr::default();
    match &m.kind {
        Some(Kind::Exact(s)) => r.exact = Some(s.clone()),
        Some(Kind::Prefix(s)) => r.prefix = Some(s.clone()),
        Some(Kind::Regex(s)) => r.regex = Some(s.clone()),
        None => return Err(err(field.into(), "one of exact, prefix, regex is required")),
    }
    Ok(r)
}

/// A route-name piece from a service name (`[A-Za-z0-9_]`).
fn stat_piece(s: &str) -> String {
    if s.is_empty() || s == "*" {
        return "any".into();
    }
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Compiles the schema's table; field paths in errors are the schema's (`routes.services[0]...`).
pub fn from_proto(t: &RouteTable) -> Result<RawRouting, RouteError> {
    if t.primary_cluster.is_empty() {
        return Err(err(
            "routes.primaryCluster".into(),
            "required: the cluster tcp_proxy forwards to (the fast path)",
        ));
    }
    let primary = t.primary_cluster.clone();
    let dest = |c: &str| {
        if c == primary {
            c.to_string()
        } else {
            format!("{BRIDGE_CLUSTER_PREFIX}{c}")
        }
    };
    let mut services = Vec::with_capacity(t.services.len());
    for (si, s) in t.services.iter().enumerate() {
        let sf = format!("routes.services[{si}]");
        let mut routes = Vec::with_capacity(s.routes.len());
        for (ri, r) in s.routes.iter().enumerate() {
            let rf = format!("{sf}.routes[{ri}]");
            let mut matches = RawMatch::default();
            if let Some(m) = &r.r#match {
                if let Some(method) = &m.method {
                    matches.method = Some(string_match(method, &format!("{rf}.match.method"))?);
                }
                for (k, v) in &m.attributes {
                    matches.attributes.insert(
                        k.clone(),
                        string_match(v, &format!("{rf}.match.attributes.{k}"))?,
                    );
                }
            }
            let action = match &r.action {
                None => return Err(err(format!("{rf}.action"), "required")),
                Some(a) if !a.cluster.is_empty() => RawAction {
                    cluster: Some(dest(&a.cluster)),
                    weighted: Vec::new(),
                },
                Some(a) => RawAction {
                    cluster: None,
                    weighted: a
                        .weighted_clusters
                        .iter()
                        .map(|w| RawWeighted {
                            cluster: dest(&w.cluster),
                            weight: w.weight,
                        })
                        .collect(),
                },
            };
            // A route's own limit, else the service-wide one: one bucket (and one per
            // condition) shared by every route of the service that has no limit of its own.
            let service_wide = r.rate_limit.is_none();
            let limit = r.rate_limit.as_ref().or(s.rate_limit.as_ref());
            let bucket = |b: &meltemi_proto::TokenBucket, part: &str| RawBucket {
                max_tokens: b.max_tokens,
                // Envoy's token bucket: an unset tokens_per_fill is 1.
                tokens_per_fill: Some(b.tokens_per_fill.max(1)),
                fill_interval_ms: u64::from(b.fill_interval_ms),
                shared: service_wide.then(|| format!("service {} {part}", s.name)),
            };
            let rate_limit = limit.and_then(|l| l.token_bucket.as_ref().map(|b| bucket(b, "all")));
            let timeout_ms = (r.timeout_ms > 0).then_some(u64::from(r.timeout_ms));
            let retries = r.retry.as_ref().map_or(0, |x| x.attempts);
            let idempotent_methods: Vec<String> = r
                .retry
                .as_ref()
                .map(|x| x.idempotent_methods.clone())
                .unwrap_or_default();
            let mirror = r.mirror.as_ref().map(|m| RawMirror {
                cluster: format!("{BRIDGE_CLUSTER_PREFIX}{}", m.cluster),
                percent: m.percent,
            });
            let base_name = if r.name.is_empty() {
                format!("{}_{ri}", stat_piece(&s.name))
            } else {
                r.name.clone()
            };
            // Each rate-limit condition becomes a route of its own just before this one: its
            // match is the route's AND the condition's, its bucket the condition's. The first
            // matching condition's bucket applies, else the route's: the schema's semantics.
            for (ci, c) in limit
                .map(|l| l.conditions.as_slice())
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let cf = format!("{rf}.rateLimit.conditions[{ci}]");
                let mut m = matches.clone();
                if let Some(cm) = &c.r#match {
                    if let Some(method) = &cm.method {
                        let method = string_match(method, &format!("{cf}.match.method"))?;
                        match &m.method {
                            Some(existing) if *existing != method => {
                                return Err(err(
                                    format!("{cf}.match.method"),
                                    "a condition may not match another method than its route",
                                ))
                            }
                            _ => m.method = Some(method),
                        }
                    }
                    for (k, v) in &cm.attributes {
                        let v = string_match(v, &format!("{cf}.match.attributes.{k}"))?;
                        if m.attributes.get(k).is_some_and(|e| *e != v) {
                            return Err(err(
                                format!("{cf}.match.attributes.{k}"),
                                "a condition may not match an attribute its route matches otherwise",
                            ));
                        }
                        m.attributes.insert(k.clone(), v);
                    }
                }
                routes.push(RawRoute {
                    name: Some(format!("{base_name}_limit{ci}")),
                    matches: m,
                    route: action.clone(),
                    rate_limit: c.token_bucket.as_ref().map(|b| bucket(b, &format!("{ci}"))),
                    mirror: mirror.clone(),
                    timeout_ms,
                    retries,
                    idempotent_methods: idempotent_methods.clone(),
                });
            }
            routes.push(RawRoute {
                name: Some(base_name),
                matches,
                route: action,
                rate_limit,
                mirror,
                timeout_ms,
                retries,
                idempotent_methods,
            });
        }
        services.push(RawService {
            service: if s.name.is_empty() {
                "*".into()
            } else {
                s.name.clone()
            },
            routes,
        });
    }
    Ok(RawRouting {
        primary_cluster: primary.clone(),
        services,
        default: None,
        seed: None,
        retry_budget: t.retry_budget.as_ref().map(|b| {
            let d = super::RetryBudget::default();
            super::config::RawRetryBudget {
                budget_percent: b.budget_percent.unwrap_or(d.percent),
                min_retry_concurrency: b.min_retry_concurrency.unwrap_or(d.min_concurrency),
            }
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_table_compiles_with_bridge_twins_for_non_primary_destinations() {
        let t = RouteTable::from_json(
            r#"{"version":"3","primaryCluster":"outbound|9090|v1|calc",
                "services":[{"name":"Calc","routes":[
                  {"name":"split","match":{"method":{"exact":"add"},"attributes":{"x-version":{"prefix":"2"}}},
                   "action":{"weightedClusters":[{"cluster":"outbound|9090|v1|calc","weight":90},
                                                 {"cluster":"outbound|9090|v2|calc","weight":10}]},
                   "mirror":{"cluster":"outbound|9090|v3|calc","percent":5},
                   "timeoutMs":1500,"retry":{"attempts":2,"idempotentMethods":["get"]}}]}]}"#,
        )
        .unwrap();
        let r = from_proto(&t).unwrap();
        assert_eq!(r.primary_cluster, "outbound|9090|v1|calc");
        let route = &r.services[0].routes[0];
        assert_eq!(route.route.weighted[0].cluster, "outbound|9090|v1|calc");
        assert_eq!(
            route.route.weighted[1].cluster,
            "meltemi-bridge|outbound|9090|v2|calc"
        );
        assert_eq!(
            route.mirror.as_ref().unwrap().cluster,
            "meltemi-bridge|outbound|9090|v3|calc"
        );
        assert_eq!(route.timeout_ms, Some(1500));
        assert_eq!(route.retries, 2);
        assert_eq!(
            route.matches.method.as_ref().unwrap().exact.as_deref(),
            Some("add")
        );
        crate::route::RouteTable::compile(&r).expect("compiles");
    }

    #[test]
    fn rate_limit_conditions_become_routes_in_front_of_their_route() {
        let t = RouteTable::from_json(
            r#"{"primaryCluster":"p","services":[{"name":"S","routes":[
                {"name":"all","action":{"cluster":"p"},
                 "rateLimit":{"tokenBucket":{"maxTokens":10,"fillIntervalMs":1000},
                   "conditions":[{"match":{"method":{"exact":"hot"}},
                                  "tokenBucket":{"maxTokens":2,"fillIntervalMs":1000}}]}}]}]}"#,
        )
        .unwrap();
        let r = from_proto(&t).unwrap();
        let routes = &r.services[0].routes;
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].name.as_deref(), Some("all_limit0"));
        assert_eq!(
            routes[0].matches.method.as_ref().unwrap().exact.as_deref(),
            Some("hot")
        );
        assert_eq!(routes[0].rate_limit.as_ref().unwrap().max_tokens, 2);
        assert_eq!(routes[1].name.as_deref(), Some("all"));
        assert!(routes[1].matches.method.is_none());
        assert_eq!(routes[1].rate_limit.as_ref().unwrap().max_tokens, 10);
        crate::route::RouteTable::compile(&r).expect("compiles");
    }

    #[test]
    fn a_service_wide_limit_is_one_bucket_for_every_route_without_its_own() {
        // Two routes of S without limits of their own, one with: the service's 3 tokens are
        // shared by "a" and "b" (Aeraki's MetaRouter localRateLimit is per service), "own"
        // has its own; an unset tokensPerFill fills 1 (Envoy's token bucket).
        let t = RouteTable::from_json(
            r#"{"primaryCluster":"p","services":[{"name":"S",
                "rateLimit":{"tokenBucket":{"maxTokens":3,"fillIntervalMs":1000}},
                "routes":[
                {"name":"a","match":{"method":{"exact":"a"}},"action":{"cluster":"p"}},
                {"name":"own","match":{"method":{"exact":"o"}},"action":{"cluster":"p"},
                 "rateLimit":{"tokenBucket":{"maxTokens":1,"fillIntervalMs":1000}}},
                {"name":"b","action":{"cluster":"p"}}]}]}"#,
        )
        .unwrap();
        let table = crate::route::RouteTable::compile(&from_proto(&t).unwrap()).unwrap();
        let by = |n: &str| {
            table
                .routes
                .iter()
                .find(|r| r.name == n)
                .unwrap()
                .limiter
                .unwrap()
        };
        assert_eq!(by("a"), by("b"));
        assert_ne!(by("a"), by("own"));
        assert_eq!(table.buckets.len(), 2);
        assert_eq!(table.buckets[by("a")].tokens_per_fill, 1);
        let mut lim = crate::route::Limiters::new(&table, 0);
        let admitted = ["a", "b", "a", "b", "a", "b"]
            .iter()
            .filter(|n| lim.take(&table, by(n), 5))
            .count();
        assert_eq!(admitted, 3, "the service's 3 tokens, not 3 per route");
        // One fill of 1 token a second later.
        assert!(lim.take(&table, by("b"), 1_000_000_000));
        assert!(!lim.take(&table, by("a"), 1_000_000_001));
    }

    #[test]
    fn an_unset_retry_budget_field_keeps_envoys_default() {
        let t =
            RouteTable::from_json(r#"{"primaryCluster":"p","retryBudget":{"budgetPercent":50}}"#)
                .unwrap();
        let table = crate::route::RouteTable::compile(&from_proto(&t).unwrap()).unwrap();
        assert_eq!(table.retry_budget.percent, 50.0);
        assert_eq!(table.retry_budget.min_concurrency, 3);
        // A lone request's retry is allowed (3 > 0 in flight).
        assert!(table.retry_budget.allows(0, 0));
        let none = RouteTable::from_json(r#"{"primaryCluster":"p"}"#).unwrap();
        let table = crate::route::RouteTable::compile(&from_proto(&none).unwrap()).unwrap();
        assert_eq!(table.retry_budget, crate::route::RetryBudget::default());
    }

    #[test]
    fn missing_primary_cluster_is_refused_with_its_path() {
        let t = RouteTable::from_json(r#"{"services":[]}"#).unwrap();
        let e = from_proto(&t).unwrap_err();
        assert_eq!(e.field, "routes.primaryCluster");
    }
}
