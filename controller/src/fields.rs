//! Every field of the route objects the controller reads (MetaRouter, RedisService,
//! RedisDestination, and Istio's VirtualService and DestinationRule for Dubbo/Thrift hosts), and
//! whether the render applies it. One table is the truth for three things: the `validate` and
//! `render` findings (a field that is set but not applied, or that no version of the kind has:
//! a typo), the `Degraded` status, and the table in `docs/controller.md` (drift-tested).
//!
//! The check walks an object's JSON: from a manifest file (so typos are seen) or re-serialised
//! from the typed object the API server gave (whose schema already pruned unknown fields; the
//! Istio types keep their unread fields in `other` maps for this). Values that depend on the
//! value, not the field (a TLS mode, a Gateway name), are reported by the render itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::Value;

/// Whether the render applies a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    Applied,
    /// Accepted (the manifest stays valid) but not applied; the text says why.
    NotApplied(&'static str),
    /// Any content below is accepted as its parent says (label maps, opaque Istio settings);
    /// not listed in the docs.
    Opaque,
}

/// A problem found by the check, on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// `spec.routes[0].requestMutation`.
    pub path: String,
    pub message: String,
}

/// The kinds with a table, in the order of the docs.
pub const KINDS: [&str; 5] = [
    "MetaRouter",
    "RedisService",
    "RedisDestination",
    "VirtualService",
    "DestinationRule",
];

type Table = Vec<(String, Support)>;

struct Builder(Table);

impl Builder {
    fn add(&mut self, path: &str, s: Support) -> &mut Self {
        self.0.push((path.to_string(), s));
        self
    }
    fn applied(&mut self, paths: &[&str]) -> &mut Self {
        for p in paths {
            self.add(p, Support::Applied);
        }
        self
    }
    fn not_applied(&mut self, why: &'static str, paths: &[&str]) -> &mut Self {
        for p in paths {
            self.add(p, Support::NotApplied(why));
        }
        self
    }
    /// `path` itself with `s`, and anything below it accepted.
    fn opaque(&mut self, path: &str, s: Support) -> &mut Self {
        self.add(path, s)
            .add(&format!("{path}.**"), Support::Opaque)
    }
    /// A StringMatch (`exact`, `prefix`, `regex`) at `path`.
    fn string_match(&mut self, path: &str, s: Support) -> &mut Self {
        self.add(path, s);
        for f in ["exact", "prefix", "regex"] {
            self.add(&format!("{path}.{f}"), s);
        }
        self
    }
    /// An Istio/Aeraki `Destination` at `path`.
    fn destination(&mut self, path: &str) -> &mut Self {
        self.applied(&[path]);
        for f in ["host", "subset", "port", "port.number"] {
            self.add(&format!("{path}.{f}"), Support::Applied);
        }
        self
    }
}

const MUTATION: &str = "the data plane does not mutate requests or responses yet";
const GLOBAL_RL: &str = "no global rate limit service integration yet";
const REDIS_ROUTING: &str =
    "Redis is observed (commands, latency) on every tcp-redis port; RedisService routing, auth, mirroring and faults are not in the data plane";
const REDIS_DEST: &str = "RedisDestination upstream settings are not applied by Meltemi";
const VS_HTTP_ONLY: &str =
    "an HTTP-only condition; Aeraki matched Dubbo/Thrift on method and headers only";
const VS_NOT_APPLIED: &str =
    "not in Meltemi's route table (Aeraki's dubbo_proxy/thrift_proxy did not apply it either)";
const VS_L4: &str =
    "TCP/TLS routes are Istio's, per connection (tcp_proxy); Meltemi routes per request from http";
const DR_LB: &str = "per-request routing (the bridge twins) uses Envoy's default round robin; Istio still applies it to its own cluster (the connection-level fast path)";
const DR_POOL: &str = "not set on the bridge twins; Istio still applies it to its own cluster";
const DR_OUTLIER: &str =
    "no outlier detection on the bridge twins yet; Istio still applies it to its own cluster";
const DR_TLS_FILES: &str = "SIMPLE/MUTUAL TLS origination is not done by the bridge twins";
const DR_OTHER: &str = "not applied by Meltemi";

fn meta_router() -> Table {
    let mut b = Builder(Vec::new());
    b.applied(&["spec", "spec.hosts", "spec.gateways", "spec.exportTo"])
        .applied(&["spec.routes", "spec.routes[]", "spec.routes[].name"])
        .applied(&["spec.routes[].match", "spec.routes[].match.attributes"])
        .string_match("spec.routes[].match.attributes.*", Support::Applied)
        .applied(&["spec.routes[].route", "spec.routes[].route[]"])
        .destination("spec.routes[].route[].destination")
        .applied(&["spec.routes[].route[].weight"])
        .destination("spec.routes[].mirror")
        .applied(&[
            "spec.routes[].mirrorPercentage",
            "spec.routes[].mirrorPercentage.value",
        ])
        .not_applied(
            MUTATION,
            &[
                "spec.routes[].requestMutation",
                "spec.routes[].requestMutation[]",
                "spec.routes[].requestMutation[].key",
                "spec.routes[].requestMutation[].value",
                "spec.routes[].responseMutation",
                "spec.routes[].responseMutation[]",
                "spec.routes[].responseMutation[].key",
                "spec.routes[].responseMutation[].value",
            ],
        )
        .applied(&[
            "spec.routes[].timeout",
            "spec.routes[].retries",
            "spec.routes[].retries.attempts",
            "spec.routes[].retries.idempotentMethods",
        ]);
    for bucket in [
        "spec.localRateLimit.tokenBucket",
        "spec.localRateLimit.conditions[].tokenBucket",
    ] {
        b.applied(&[bucket]);
        for f in ["fillInterval", "maxTokens", "tokensPerFill"] {
            b.applied(&[&format!("{bucket}.{f}")]);
        }
    }
    b.applied(&[
        "spec.localRateLimit",
        "spec.localRateLimit.conditions",
        "spec.localRateLimit.conditions[]",
        "spec.localRateLimit.conditions[].match",
        "spec.localRateLimit.conditions[].match.attributes",
    ])
    .string_match(
        "spec.localRateLimit.conditions[].match.attributes.*",
        Support::Applied,
    )
    .not_applied(
        GLOBAL_RL,
        &[
            "spec.globalRateLimit",
            "spec.globalRateLimit.domain",
            "spec.globalRateLimit.match",
            "spec.globalRateLimit.match.attributes",
            "spec.globalRateLimit.rateLimitService",
            "spec.globalRateLimit.requestTimeout",
            "spec.globalRateLimit.denyOnFail",
            "spec.globalRateLimit.descriptors",
            "spec.globalRateLimit.descriptors[]",
            "spec.globalRateLimit.descriptors[].property",
            "spec.globalRateLimit.descriptors[].descriptorKey",
        ],
    )
    .string_match(
        "spec.globalRateLimit.match.attributes.*",
        Support::NotApplied(GLOBAL_RL),
    );
    b.0
}

fn redis_auth(b: &mut Builder, path: &str, why: &'static str) {
    for f in [
        "",
        ".plain",
        ".plain.username",
        ".plain.password",
        ".secret",
        ".secret.name",
        ".secret.usernameField",
        ".secret.passwordField",
    ] {
        b.add(&format!("{path}{f}"), Support::NotApplied(why));
    }
}

fn redis_service() -> Table {
    let mut b = Builder(Vec::new());
    let na = Support::NotApplied(REDIS_ROUTING);
    b.applied(&["spec"])
        .add("spec.host", na)
        .add("spec.settings", na);
    redis_auth(&mut b, "spec.settings.auth", REDIS_ROUTING);
    for f in [
        "bufferFlushTimeout",
        "caseInsensitive",
        "enableCommandStats",
        "enableHashtagging",
        "enableRedirection",
        "maxBufferSizeBeforeFlush",
        "maxUpstreamUnknownConnections",
        "opTimeout",
        "readPolicy",
    ] {
        b.add(&format!("spec.settings.{f}"), na);
    }
    b.not_applied(
        REDIS_ROUTING,
        &[
            "spec.redis",
            "spec.redis[]",
            "spec.redis[].match",
            "spec.redis[].match.key",
            "spec.redis[].match.key.prefix",
            "spec.redis[].match.key.removePrefix",
            "spec.redis[].route",
            "spec.redis[].route.host",
            "spec.redis[].route.port",
            "spec.redis[].mirror",
            "spec.redis[].mirror[]",
            "spec.redis[].mirror[].route",
            "spec.redis[].mirror[].route.host",
            "spec.redis[].mirror[].route.port",
            "spec.redis[].mirror[].percentage",
            "spec.redis[].mirror[].percentage.value",
            "spec.redis[].mirror[].excludeReadCommands",
            "spec.faults",
            "spec.faults[]",
            "spec.faults[].type",
            "spec.faults[].percentage",
            "spec.faults[].percentage.value",
            "spec.faults[].delay",
            "spec.faults[].commands",
        ],
    );
    b.0
}

fn redis_destination() -> Table {
    let mut b = Builder(Vec::new());
    b.applied(&["spec"]).not_applied(
        REDIS_DEST,
        &[
            "spec.host",
            "spec.trafficPolicy",
            "spec.trafficPolicy.connectionPool",
            "spec.trafficPolicy.connectionPool.tcp",
            "spec.trafficPolicy.connectionPool.tcp.maxConnections",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.probes",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.interval",
            "spec.trafficPolicy.connectionPool.redis",
            "spec.trafficPolicy.connectionPool.redis.mode",
            "spec.trafficPolicy.connectionPool.redis.discoveryEndpoints",
        ],
    );
    redis_auth(
        &mut b,
        "spec.trafficPolicy.connectionPool.redis.auth",
        REDIS_DEST,
    );
    b.0
}

fn virtual_service() -> Table {
    let mut b = Builder(Vec::new());
    let h = "spec.http[]";
    b.applied(&["spec", "spec.hosts", "spec.gateways", "spec.exportTo"])
        .applied(&["spec.http", h, "spec.http[].name"])
        .applied(&["spec.http[].match", "spec.http[].match[]"])
        .string_match("spec.http[].match[].method", Support::Applied)
        .applied(&["spec.http[].match[].headers"])
        .string_match("spec.http[].match[].headers.*", Support::Applied)
        .add(
            "spec.http[].match[].name",
            Support::NotApplied("a label only; routes are named by the http route's name"),
        );
    for f in [
        "uri",
        "scheme",
        "authority",
        "queryParams",
        "withoutHeaders",
    ] {
        b.opaque(
            &format!("spec.http[].match[].{f}"),
            Support::NotApplied(VS_HTTP_ONLY),
        );
    }
    for f in [
        "port",
        "sourceLabels",
        "gateways",
        "ignoreUriCase",
        "sourceNamespace",
        "statPrefix",
    ] {
        b.opaque(
            &format!("spec.http[].match[].{f}"),
            Support::NotApplied(VS_NOT_APPLIED),
        );
    }
    b.applied(&["spec.http[].route", "spec.http[].route[]"])
        .destination("spec.http[].route[].destination")
        .applied(&["spec.http[].route[].weight"])
        .opaque("spec.http[].route[].headers", Support::NotApplied(MUTATION))
        .destination("spec.http[].mirror")
        .applied(&[
            "spec.http[].mirrorPercentage",
            "spec.http[].mirrorPercentage.value",
            "spec.http[].timeout",
        ])
        .opaque(
            "spec.http[].retries",
            Support::NotApplied(
                "Meltemi retries only named idempotent methods (MetaRouter retries)",
            ),
        )
        .opaque("spec.http[].headers", Support::NotApplied(MUTATION));
    for f in [
        "mirrors",
        "mirrorPercent",
        "fault",
        "redirect",
        "directResponse",
        "delegate",
        "rewrite",
        "corsPolicy",
    ] {
        b.opaque(
            &format!("spec.http[].{f}"),
            Support::NotApplied(VS_NOT_APPLIED),
        );
    }
    b.opaque("spec.tcp", Support::NotApplied(VS_L4))
        .opaque("spec.tls", Support::NotApplied(VS_L4));
    b.0
}

/// A DestinationRule traffic policy at `p` (`port_level`: the policy of one port, which has a
/// `port` and no `portLevelSettings`).
fn traffic_policy(b: &mut Builder, p: &str, port_level: bool) {
    b.applied(&[p]);
    if port_level {
        b.applied(&[&format!("{p}.port"), &format!("{p}.port.number")]);
    }
    b.applied(&[
        &format!("{p}.tls"),
        &format!("{p}.tls.mode"),
        &format!("{p}.tls.sni"),
        &format!("{p}.tls.subjectAltNames"),
    ]);
    for f in [
        "credentialName",
        "clientCertificate",
        "privateKey",
        "caCertificates",
        "insecureSkipVerify",
        "caCrl",
    ] {
        b.add(&format!("{p}.tls.{f}"), Support::NotApplied(DR_TLS_FILES));
    }
    let lb = format!("{p}.loadBalancer");
    let ch = format!("{lb}.consistentHash");
    b.not_applied(
        DR_LB,
        &[
            &lb,
            &format!("{lb}.simple"),
            &format!("{lb}.warmupDurationSecs"),
            &ch,
            &format!("{ch}.httpHeaderName"),
            &format!("{ch}.useSourceIp"),
            &format!("{ch}.httpQueryParameterName"),
            &format!("{ch}.minimumRingSize"),
            &format!("{ch}.ringHash"),
            &format!("{ch}.ringHash.minimumRingSize"),
            &format!("{ch}.maglev"),
            &format!("{ch}.maglev.tableSize"),
        ],
    )
    .opaque(&format!("{ch}.httpCookie"), Support::NotApplied(DR_LB))
    .opaque(
        &format!("{lb}.localityLbSetting"),
        Support::NotApplied(DR_LB),
    )
    .opaque(&format!("{lb}.warmup"), Support::NotApplied(DR_LB));
    let cp = format!("{p}.connectionPool");
    b.not_applied(
        DR_POOL,
        &[
            &cp,
            &format!("{cp}.tcp"),
            &format!("{cp}.tcp.maxConnections"),
            &format!("{cp}.tcp.connectTimeout"),
            &format!("{cp}.tcp.maxConnectionDuration"),
            &format!("{cp}.tcp.idleTimeout"),
            &format!("{cp}.tcp.tcpKeepalive"),
            &format!("{cp}.tcp.tcpKeepalive.time"),
            &format!("{cp}.tcp.tcpKeepalive.interval"),
            &format!("{cp}.tcp.tcpKeepalive.probes"),
        ],
    )
    .opaque(&format!("{cp}.http"), Support::NotApplied(DR_POOL));
    let od = format!("{p}.outlierDetection");
    b.add(&od, Support::NotApplied(DR_OUTLIER));
    for f in [
        "consecutiveErrors",
        "consecutiveGatewayErrors",
        "consecutive5xxErrors",
        "consecutiveLocalOriginFailures",
        "splitExternalLocalOriginErrors",
        "interval",
        "baseEjectionTime",
        "maxEjectionPercent",
        "minHealthPercent",
    ] {
        b.add(&format!("{od}.{f}"), Support::NotApplied(DR_OUTLIER));
    }
    for f in ["tunnel", "proxyProtocol", "retryBudget"] {
        b.opaque(&format!("{p}.{f}"), Support::NotApplied(DR_OTHER));
    }
    if !port_level {
        b.applied(&[&format!("{p}.portLevelSettings")]);
        traffic_policy(b, &format!("{p}.portLevelSettings[]"), true);
    }
}

fn destination_rule() -> Table {
    let mut b = Builder(Vec::new());
    b.applied(&["spec", "spec.host"]);
    traffic_policy(&mut b, "spec.trafficPolicy", false);
    b.applied(&["spec.subsets", "spec.subsets[]", "spec.subsets[].name"])
        .opaque("spec.subsets[].labels", Support::Applied);
    traffic_policy(&mut b, "spec.subsets[].trafficPolicy", false);
    b.opaque(
        "spec.exportTo",
        Support::NotApplied("every DestinationRule is read from every namespace"),
    )
    .opaque(
        "spec.workloadSelector",
        Support::NotApplied("a DestinationRule applies to every sidecar"),
    );
    b.0
}

struct Compiled {
    support: BTreeMap<String, Support>,
    /// Every listed path and each of its ancestors.
    known: BTreeSet<String>,
    rows: Table,
}

fn compile(rows: Table) -> Compiled {
    let mut known = BTreeSet::new();
    for (p, _) in &rows {
        let mut cut = p.as_str();
        loop {
            known.insert(cut.to_string());
            match cut.rfind(['.', '[']) {
                Some(i) => cut = &cut[..i],
                None => break,
            }
        }
    }
    Compiled {
        support: rows.iter().cloned().collect(),
        known,
        rows,
    }
}

fn table(kind: &str) -> Option<&'static Compiled> {
    static T: OnceLock<BTreeMap<&'static str, Compiled>> = OnceLock::new();
    T.get_or_init(|| {
        BTreeMap::from([
            ("MetaRouter", compile(meta_router())),
            ("RedisService", compile(redis_service())),
            ("RedisDestination", compile(redis_destination())),
            ("VirtualService", compile(virtual_service())),
            ("DestinationRule", compile(destination_rule())),
        ])
    })
    .get(kind)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Walk<'a> {
    t: &'a Compiled,
    kind: &'static str,
    out: Vec<(String, String)>,
}

impl Walk<'_> {
    fn unknown(&mut self, pattern: &str, real: String, key: &str) {
        const TOP: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];
        let siblings: Vec<&str> = if pattern.is_empty() {
            TOP.to_vec()
        } else {
            self.t
                .known
                .iter()
                .filter_map(|k| k.strip_prefix(pattern)?.strip_prefix('.'))
                .filter(|rest| !rest.contains(['.', '[']) && *rest != "*" && *rest != "**")
                .collect()
        };
        let best = siblings
            .into_iter()
            .map(|s| (distance(&key.to_lowercase(), &s.to_lowercase()), s))
            .filter(|(d, _)| *d <= 2)
            .min();
        let hint = best.map_or(String::new(), |(_, s)| format!("; did you mean {s:?}?"));
        self.out.push((
            real,
            format!("unknown field: not part of {}, ignored{hint}", self.kind),
        ));
    }

    fn node(&mut self, v: &Value, pattern: &str, real: String, reported: bool) {
        let mut reported = reported;
        match self.t.support.get(pattern) {
            Some(Support::NotApplied(why)) if !reported && !is_empty(v) => {
                self.out.push((real.clone(), format!("not applied: {why}")));
                reported = true;
            }
            _ => {}
        }
        if self.t.known.contains(&format!("{pattern}.**")) {
            return;
        }
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    let named = format!("{pattern}.{k}");
                    let any = format!("{pattern}.*");
                    let cp = if self.t.known.contains(&named) {
                        named
                    } else if self.t.known.contains(&any) {
                        any
                    } else {
                        self.unknown(pattern, format!("{real}.{k}"), k);
                        continue;
                    };
                    self.node(child, &cp, format!("{real}.{k}"), reported);
                }
            }
            Value::Array(a) => {
                let cp = format!("{pattern}[]");
                if self.t.known.contains(&cp) {
                    for (i, e) in a.iter().enumerate() {
                        self.node(e, &cp, format!("{real}[{i}]"), reported);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The fields of `object` (a whole manifest of `kind`) that are not applied or not known, as
/// (path, message). Kinds without a table have none.
pub fn check(kind: &str, object: &Value) -> Vec<(String, String)> {
    let Some((kind, t)) = KINDS
        .iter()
        .find(|k| **k == kind)
        .and_then(|k| table(k).map(|t| (*k, t)))
    else {
        return Vec::new();
    };
    let mut w = Walk {
        t,
        kind,
        out: Vec::new(),
    };
    if let Some(o) = object.as_object() {
        for (k, v) in o {
            match k.as_str() {
                "apiVersion" | "kind" | "metadata" | "status" => {}
                "spec" => w.node(v, "spec", "spec".into(), false),
                _ => w.unknown("", k.clone(), k),
            }
        }
    }
    w.out
}

/// The table of `docs/controller.md`: every field of each kind, applied or not. A
/// DestinationRule's traffic policy is listed once (`spec.trafficPolicy`): the same fields under
/// `portLevelSettings[]` and `spec.subsets[].trafficPolicy` say the same.
pub fn markdown() -> String {
    let mut out = String::from("| kind | field | applied |\n|---|---|---|\n");
    let mut last_why = "";
    for kind in KINDS {
        let Some(t) = table(kind) else { continue };
        for (path, s) in &t.rows {
            let repeated = path.starts_with("spec.subsets[].trafficPolicy.")
                || (path.contains("portLevelSettings[].")
                    && !path.ends_with("[].port")
                    && !path.ends_with("port.number"));
            if kind == "DestinationRule" && repeated {
                continue;
            }
            let cell = match s {
                Support::Applied => "yes".to_string(),
                Support::NotApplied(why) if *why == last_why => "**no** (as above)".to_string(),
                Support::NotApplied(why) => format!("**no**: {why}"),
                Support::Opaque => continue,
            };
            last_why = match s {
                Support::NotApplied(why) => why,
                _ => "",
            };
            out.push_str(&format!("| {kind} | `{path}` | {cell} |\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typos_not_applied_fields_and_map_keys() {
        let mr = json!({
            "apiVersion": "metaprotocol.aeraki.io/v1alpha1", "kind": "MetaRouter",
            "metadata": {"name": "x"},
            "spec": {
                "hosts": ["a"],
                "routes": [{
                    "match": {"attributes": {"method": {"exact": "m"}, "user": {"prefx": "j"}}},
                    "route": [{"destination": {"host": "a", "subset": "v1"}, "wieght": 30}],
                    "requestMutation": [{"key": "k", "value": "v"}],
                    "responseMutation": [],
                }],
                "globalRateLimit": {"domain": "d", "descriptors": [{"property": "p", "typo": 1}]},
            },
            "spce": {},
        });
        let got = check("MetaRouter", &mr);
        let want = [
            (
                "spce",
                "unknown field: not part of MetaRouter, ignored; did you mean \"spec\"?",
            ),
            (
                "spec.globalRateLimit",
                "not applied: no global rate limit service integration yet",
            ),
            (
                "spec.globalRateLimit.descriptors[0].typo",
                "unknown field: not part of MetaRouter, ignored",
            ),
            (
                "spec.routes[0].match.attributes.user.prefx",
                "unknown field: not part of MetaRouter, ignored; did you mean \"prefix\"?",
            ),
            (
                "spec.routes[0].requestMutation",
                "not applied: the data plane does not mutate requests or responses yet",
            ),
            (
                "spec.routes[0].route[0].wieght",
                "unknown field: not part of MetaRouter, ignored; did you mean \"weight\"?",
            ),
        ];
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got_sorted, want);
    }

    #[test]
    fn destination_rule_policies_at_every_level() {
        let dr = json!({"spec": {
            "host": "h",
            "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "method"}},
                              "portLevelSettings": [{"port": {"number": 1}, "outlierDetection": {"interval": "1s"}}]},
            "subsets": [{"name": "v1", "labels": {"version": "v1"},
                         "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "connectionPool": {"tcp": {"maxConections": 1}}}}],
        }});
        let got: Vec<String> = check("DestinationRule", &dr)
            .into_iter()
            .map(|(p, m)| format!("{p}: {}", &m[..m.find(':').unwrap()]))
            .collect();
        assert_eq!(
            got,
            [
                "spec.subsets[0].trafficPolicy.connectionPool: not applied",
                "spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConections: unknown field",
                "spec.trafficPolicy.loadBalancer: not applied",
                "spec.trafficPolicy.portLevelSettings[0].outlierDetection: not applied",
            ]
        );
    }

    /// `docs/controller.md` carries the table this module reports from.
    #[test]
    fn the_docs_table_is_this_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/controller.md"),
        )
        .unwrap();
        let begin = "<!-- fields:begin (generated by meltemi_controller::fields::markdown) -->\n";
        let end = "<!-- fields:end -->";
        let (Some(a), Some(b)) = (doc.find(begin), doc.find(end)) else {
            panic!(
                "docs/controller.md lacks the {begin:?} ... {end:?} block:\n{}",
                markdown()
            );
        };
        assert!(
            doc[a + begin.len()..b] == markdown(),
            "docs/controller.md's field table is stale; it should read:\n{}",
            markdown()
        );
    }
}
