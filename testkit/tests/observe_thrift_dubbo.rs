//! Issue 4, Thrift and Dubbo: real servers and real clients through the real Envoy, with our
//! `.so` and `.wasm` both in the chain before `tcp_proxy`.
//! Oracles: the client's own tally (what it sent and the outcome it saw, per method), and a
//! recording relay between Envoy and the server whose bytes the test counts with its own few
//! lines (bytes each way for both; for Dubbo also every frame by kind and status). Every stat
//! of both artifacts (latency histograms aside) must equal what the oracles say, exactly.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{
    free_port, run_client, DubboProvider, Envoy, EnvoyOptions, Recorded, Relay, ThriftServer,
};
use std::collections::BTreeMap;
use std::time::Duration;

fn chain(protocol: &str, methods: &[&str], cluster: &str) -> Vec<Filter> {
    let methods = methods
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(",");
    // Istio-style metrics on, per method; the artifact's name as destination_workload keeps
    // the two artifacts' series apart.
    let cfg = |prefix: &str| {
        format!(
            r#"{{"protocol":"{protocol}","stat_prefix":"{prefix}","methods":[{methods}],
            "istioMetrics":{{"enabled":true,"requestMethod":true,"sourceWorkload":"e2e-client",
            "sourceWorkloadNamespace":"default","destinationWorkload":"{prefix}",
            "destinationService":"{protocol}.default.svc.cluster.local",
            "destinationServiceName":"{protocol}","destinationServiceNamespace":"default"}}}}"#
        )
    };
    vec![
        Filter::Module(cfg("so")),
        Filter::Wasm(cfg("wasm")),
        Filter::TcpProxy(cluster.into()),
    ]
}

/// Our stats under one artifact, with the host prefix and `<protocol>.<prefix>.` removed,
/// latency histograms and the module's own callout counters left out.
fn ours(
    stats: &BTreeMap<String, u64>,
    host: &str,
    protocol: &str,
    prefix: &str,
) -> BTreeMap<String, u64> {
    let p = format!("{host}.{protocol}.{prefix}.");
    stats
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.to_string(), *v)))
        .filter(|(k, _)| {
            !k.contains("latency") && !k.ends_with("time_us") && !k.starts_with("callouts_")
        })
        .collect()
}

/// Waits until the connections are gone (gauges back to zero) so the counts are final.
fn settle(envoy: &Envoy, protocol: &str) {
    let done = meltemi_testkit::wait_for(Duration::from_secs(10), || {
        let s = envoy.stats();
        let a = s.get(&format!("dynamicmodulescustom.{protocol}.so.cx_active"));
        let b = s.get(&format!("wasmcustom.{protocol}.wasm.cx_active"));
        (a == Some(&0) && b == Some(&0)).then_some(())
    });
    assert!(done.is_some(), "connections did not close");
}

/// The clients print one flat JSON object of numbers and booleans (`json.dumps`, default
/// separators); booleans read as 0/1.
fn flat_json(out: &str) -> BTreeMap<String, u64> {
    let line = out.lines().last().unwrap_or_default().trim();
    let body = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON object: {out}"));
    body.split(", \"")
        .map(|kv| {
            let (k, v) = kv
                .rsplit_once(": ")
                .unwrap_or_else(|| panic!("bad pair {kv}"));
            let v = match v {
                "true" => 1,
                "false" => 0,
                n => n.parse().unwrap_or_else(|_| panic!("bad value in {kv}")),
            };
            (k.trim_matches('"').to_string(), v)
        })
        .collect()
}

/// The stat label of a call named `name` (`service:method` or `method`): the configured
/// `service:method`, else the configured `method`, else `other`; dots written as `_`.
fn label(name: &str, methods: &[&str]) -> String {
    let m = if methods.contains(&name) {
        name
    } else {
        match name.split_once(':') {
            Some((_, m)) if methods.contains(&m) => m,
            _ => "other",
        }
    };
    m.replace('.', "_")
}

/// The per-method stats the client's tally implies: `<name>.total|success|error|exception`
/// summed per label.
fn method_stats(
    tally: &BTreeMap<String, u64>,
    family: &str,
    methods: &[&str],
) -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    for l in methods
        .iter()
        .map(|m| m.replace('.', "_"))
        .chain(["other".into()])
    {
        for o in ["total", "success", "error", "exception"] {
            want.insert(format!("method.{l}.{o}"), 0);
        }
    }
    for (k, v) in tally {
        let Some(rest) = k.strip_prefix(&format!("{family}.")) else {
            continue;
        };
        let (name, o) = rest.rsplit_once('.').expect("name.outcome");
        *want
            .get_mut(&format!("method.{}.{o}", label(name, methods)))
            .expect("a defined stat") += v;
    }
    want
}

/// The Prometheus name of an Istio metric of one artifact, as Envoy 1.40 writes it: the wasm
/// filter's `wasmcustom.` namespace is stripped; the module's `dynamicmodulescustom.` is not a
/// registered custom namespace, so it stays and gets Envoy's `envoy_` prefix (the module config's
/// `metrics_namespace: wasmcustom` gives the bare name where a wasm filter registered it, see
/// observe_redis.rs).
fn prom_name(artifact: &str, metric: &str) -> String {
    match artifact {
        "so" => format!("envoy_dynamicmodulescustom_{metric}"),
        _ => metric.to_string(),
    }
}

/// Per (request_method, response_code, response_flags), the non-zero values of `metric` for
/// one artifact, every series checked for Istio's labels and the configured values.
fn istio_series(
    envoy: &Envoy,
    protocol: &str,
    artifact: &str,
    metric: &str,
) -> BTreeMap<(String, String, String), u64> {
    let service = format!("{protocol}.default.svc.cluster.local");
    meltemi_testkit::istio_series(
        &envoy.admin("/stats/prometheus"),
        &prom_name(artifact, metric),
        &[
            ("destination_workload", artifact),
            ("reporter", "destination"),
            ("request_protocol", protocol),
            ("source_workload", "e2e-client"),
            ("destination_service_name", protocol),
            ("destination_service", &service),
            ("destination_version", "unknown"),
        ],
    )
}

fn bytes(recorded: &[Recorded]) -> (u64, u64) {
    recorded.iter().fold((0, 0), |(a, b), r| {
        (a + r.c2s.len() as u64, b + r.s2c.len() as u64)
    })
}

/// Envoy with both artifacts (configured for `methods`) before `tcp_proxy` to a recording relay
/// in front of the server on `upstream`; returns the relay, Envoy's listener port and Envoy.
fn through_envoy(protocol: &str, methods: &[&str], upstream: u16) -> (Relay, u16, Envoy) {
    let relay = Relay::start(upstream).expect("relay");
    let listen = free_port();
    let yaml = bootstrap(
        listen,
        &chain(protocol, methods, protocol),
        &[(protocol, relay.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    (relay, listen, envoy)
}

/// What the oracles say about one artifact's connection and request counters.
#[derive(Default)]
struct Totals {
    connections: u64,
    c2s: u64,
    s2c: u64,
    call: u64,
    oneway: u64,
    event: u64,
    success: u64,
    error: u64,
    exception: u64,
    server_event: u64,
}

impl Totals {
    /// Every counter (per-method ones aside) these totals imply once the connections are
    /// closed: nothing active or unanswered, nothing unmatched, no decoding error, no panic.
    fn stats(&self) -> BTreeMap<String, u64> {
        [
            ("cx_total", self.connections),
            ("cx_active", 0),
            ("downstream_rx_bytes", self.c2s),
            ("upstream_rx_bytes", self.s2c),
            ("panic", 0),
            ("cx_buffer_overflow", 0),
            ("held_bytes", 0),
            ("request", self.call + self.oneway + self.event),
            ("request_call", self.call),
            ("request_oneway", self.oneway),
            ("request_event", self.event),
            ("request_active", 0),
            ("request_no_reply", 0),
            ("request_decoding_error", 0),
            ("response", self.success + self.error + self.exception),
            ("response_success", self.success),
            ("response_error", self.error),
            ("response_exception", self.exception),
            ("response_unmatched", 0),
            ("response_decoding_error", 0),
            ("server_event", self.server_event),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Asserts both artifacts' stats equal `want` exactly, naming every difference.
fn assert_stats(stats: &BTreeMap<String, u64>, protocol: &str, want: &BTreeMap<String, u64>) {
    for (host, prefix) in [("dynamicmodulescustom", "so"), ("wasmcustom", "wasm")] {
        let got = ours(stats, host, protocol, prefix);
        let diff: Vec<String> = want
            .keys()
            .chain(got.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| got.get(*k) != want.get(*k))
            .map(|k| format!("{k}: ours {:?}, oracle {:?}", got.get(k), want.get(k)))
            .collect();
        assert!(diff.is_empty(), "{prefix}:\n{}", diff.join("\n"));
    }
}

const THRIFT_METHODS: &[&str] = &["add", "get", "ping", "log", "Calc:add"];

#[test]
fn thrift_counts_per_method_and_outcome_match_the_client_in_every_dialect_and_both_artifacts() {
    let server = ThriftServer::start().expect("thrift server");
    let (relay, listen, envoy) = through_envoy("thrift", THRIFT_METHODS, server.port());

    let out = run_client(
        "thrift_calls.py",
        &["127.0.0.1", &listen.to_string()],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log()));
    let tally = flat_json(&out);
    settle(&envoy, "thrift");

    // The client saw every kind of outcome, in every dialect (add went 2^i times on the i-th).
    assert_eq!(tally["connections"], 5, "{out}");
    assert_eq!(tally["method.add.success"], 31, "{out}");
    // As thrift_proxy counts them: a declared exception is an error, a TApplicationException
    // (message type Exception) an exception.
    assert_eq!(tally["method.get.error"], 10, "{out}");
    assert_eq!(tally["method.nosuch.exception"], 5, "{out}");
    assert_eq!(tally["method.log.total"], 10, "{out}");
    assert_eq!(tally["method.Calc:add.success"], 5, "{out}");

    let (c2s, s2c) = bytes(&relay.recorded());
    let t = |k: &str| tally[&format!("totals.{k}")];
    assert_eq!(t("request"), t("call") + t("oneway"));
    assert_eq!(t("response"), t("success") + t("error") + t("exception"));
    let mut want = Totals {
        connections: tally["connections"],
        c2s,
        s2c,
        call: t("call"),
        oneway: t("oneway"),
        success: t("success"),
        error: t("error"),
        exception: t("exception"),
        ..Totals::default()
    }
    .stats();
    want.extend(method_stats(&tally, "method", THRIFT_METHODS));
    // The rule, spelled out once: multiplexed "Calc:add" has its own label, "Calc:get" falls
    // back to "get", "nosuch" is `other`.
    assert_eq!(want["method.Calc:add.total"], 5);
    assert_eq!(want["method.get.total"], 20);
    assert_eq!(want["method.other.exception"], 5);
    assert_eq!(want["method.get.error"], 15, "get and Calc:get (`missing`)");
    assert_stats(&envoy.stats(), "thrift", &want);

    // Istio-style: per method label, response_code 0 (success), `error` (declared exception),
    // app_1 (TApplicationException UNKNOWN_METHOD), and `none` for oneway requests; the
    // duration histogram counts the answered ones per code.
    let mut want_total: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut want_answered = BTreeMap::new();
    for (k, v) in &tally {
        let Some(rest) = k.strip_prefix("method.") else {
            continue;
        };
        let (name, outcome) = rest.rsplit_once('.').expect("name.outcome");
        let m = label(name, THRIFT_METHODS);
        let total = tally[&format!("method.{name}.total")];
        let answered: u64 = ["success", "exception", "error"]
            .iter()
            .map(|o| tally[&format!("method.{name}.{o}")])
            .sum();
        let (code, flags, n) = match outcome {
            "success" => ("0", "-", *v),
            "error" => ("error", "-", *v),
            "exception" => ("app_1", "-", *v),
            _ => ("none", "-", total - answered),
        };
        if n == 0 {
            continue;
        }
        *want_total
            .entry((m, code.to_string(), flags.to_string()))
            .or_default() += n;
        // The histogram has no request_method label.
        if code != "none" {
            *want_answered
                .entry((String::new(), code.to_string(), flags.to_string()))
                .or_default() += n;
        }
    }
    assert_eq!(want_total[&("add".into(), "0".into(), "-".into())], 31);
    assert_eq!(want_total[&("log".into(), "none".into(), "-".into())], 10);
    for artifact in ["so", "wasm"] {
        assert_eq!(
            istio_series(&envoy, "thrift", artifact, "istio_requests_total"),
            want_total,
            "{artifact}"
        );
        assert_eq!(
            istio_series(
                &envoy,
                "thrift",
                artifact,
                "istio_request_duration_milliseconds_count"
            ),
            want_answered,
            "{artifact}"
        );
    }
}

const DUBBO_METHODS: &[&str] = &[
    "org.meltemi.demo.GreetingService:sayHello",
    "org.meltemi.demo.EchoService:sayHello",
    "getUser",
    "findNothing",
    "fail",
];

/// One Dubbo 2 frame header: (flag, status, request id), and the first body byte.
fn dubbo_frames(stream: &[u8]) -> Vec<(u8, u8, i64, Option<u8>)> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 16 {
        assert_eq!(&rest[..2], &[0xda, 0xbb], "Dubbo magic");
        let len = u32::from_be_bytes([rest[12], rest[13], rest[14], rest[15]]) as usize;
        let id = i64::from_be_bytes(rest[4..12].try_into().expect("8 bytes"));
        out.push((rest[2], rest[3], id, rest.get(16).copied()));
        rest = &rest[16 + len..];
    }
    assert!(rest.is_empty(), "a partial frame");
    out
}

#[test]
fn dubbo_counts_per_service_and_method_match_the_client_and_the_wire_in_both_artifacts() {
    let provider = DubboProvider::start().expect("dubbo provider");
    let (relay, listen, envoy) = through_envoy("dubbo", DUBBO_METHODS, provider.port());

    let out = run_client(
        "dubbo_calls.py",
        &[&format!("127.0.0.1:{listen}")],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}\nprovider log:\n{}", provider.log()));
    let tally = flat_json(&out);
    settle(&envoy, "dubbo");
    assert_eq!(tally["provider_heartbeat"], 1, "{out}");
    assert_eq!(tally["client_heartbeats"], 1, "{out}");
    assert_eq!(tally["heartbeats_answered"], 1, "{out}");
    assert_eq!(
        tally["call.org.meltemi.demo.GreetingService:fail.exception"], 2,
        "{out}"
    );
    assert_eq!(
        tally["call.org.meltemi.demo.MissingService:sayHello.error"], 1,
        "{out}"
    );

    // The wire, framed by the test: Dubbo's flag byte says request (0x80), two-way (0x40),
    // event (0x20); a response's status 20 is OK, and its Hessian2 result kind (first body
    // byte, a compact int 0x90 + kind) 0 or 3 is an exception.
    let recorded = relay.recorded();
    assert_eq!(recorded.len(), 1, "the client keeps one connection");
    let (mut calls, mut client_hb, mut hb_answers) = (0, 0, 0);
    for (flag, _, _, _) in dubbo_frames(&recorded[0].c2s) {
        match (flag & 0x80 != 0, flag & 0x20 != 0) {
            (true, false) => calls += 1,
            (true, true) => client_hb += 1,
            (false, true) => hb_answers += 1,
            (false, false) => panic!("a client response that is no heartbeat answer"),
        }
    }
    let (mut ok, mut error, mut exception, mut provider_hb) = (0, 0, 0, 0);
    for (flag, status, _, kind) in dubbo_frames(&recorded[0].s2c) {
        match (flag & 0x80 != 0, status, kind) {
            (true, _, _) => provider_hb += 1,
            (false, 20, Some(0x90 | 0x93)) if flag & 0x20 == 0 => exception += 1,
            (false, 20, _) => ok += 1,
            (false, _, _) => error += 1,
        }
    }
    // The client's tally and the wire agree.
    let total_calls: u64 = tally
        .iter()
        .filter(|(k, _)| k.starts_with("call.") && k.ends_with(".total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(calls, total_calls);
    assert_eq!(calls, tally["wrote.calls"]);
    assert_eq!(client_hb, tally["wrote.heartbeat_requests"]);
    assert_eq!(hb_answers, tally["wrote.heartbeat_answers"]);
    assert_eq!(hb_answers, provider_hb);
    assert!(client_hb >= 2 && provider_hb >= 1);
    assert_eq!(
        ok + error + exception,
        calls + client_hb,
        "every request answered"
    );

    let (c2s, s2c) = bytes(&recorded);
    let mut want = Totals {
        connections: 1,
        c2s,
        s2c,
        call: calls,
        event: client_hb,
        success: ok,
        error,
        exception,
        server_event: provider_hb,
        ..Totals::default()
    }
    .stats();
    // Per method: only invocations; heartbeats are not calls of any method.
    want.extend(method_stats(&tally, "call", DUBBO_METHODS));
    assert_eq!(
        want["method.org_meltemi_demo_GreetingService:sayHello.total"],
        3
    );
    assert_eq!(
        want["method.org_meltemi_demo_EchoService:sayHello.total"],
        2
    );
    // noSuchMethod and the missing service's sayHello.
    assert_eq!(want["method.other.error"], 2);
    assert_stats(&envoy.stats(), "dubbo", &want);

    // Istio-style: the response_code of every answered call is its status byte as the wire
    // shows it, or `exception` for status 20 with an exception; heartbeats are not requests.
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for (flag, status, _, kind) in dubbo_frames(&recorded[0].s2c) {
        if flag & 0x80 != 0 || flag & 0x20 != 0 {
            continue;
        }
        let code = match (status, kind) {
            (20, Some(0x90 | 0x93)) => "exception".to_string(),
            (s, _) => s.to_string(),
        };
        *codes.entry(code).or_default() += 1;
    }
    assert_eq!(codes.values().sum::<u64>(), calls);
    assert_eq!(codes["exception"], exception);
    for artifact in ["so", "wasm"] {
        for metric in [
            "istio_requests_total",
            "istio_request_duration_milliseconds_count",
        ] {
            let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
            for ((_, code, flags), v) in istio_series(&envoy, "dubbo", artifact, metric) {
                assert_eq!(flags, "-");
                *by_code.entry(code).or_default() += v;
            }
            assert_eq!(by_code, codes, "{artifact} {metric}");
        }
    }
}

/// Issue 20: strings beyond one Hessian2 chunk (Hessian 2.0 serialization 4.12: `R` chunks of
/// at most 65535 UTF-16 units, then a final `S` or short chunk; Java writes 0x8000-unit
/// chunks). A 100 KiB and a 1 MiB string argument go through both artifacts to both services
/// and come back prefixed; the client checks every reply character for character, and the
/// filters must count each call and reply as a success with no decoding error.
#[test]
fn dubbo_100_kib_and_1_mib_strings_round_trip_exactly_through_both_artifacts() {
    let provider = DubboProvider::start().expect("dubbo provider");
    let (relay, listen, envoy) = through_envoy("dubbo", DUBBO_METHODS, provider.port());

    let sizes = [100 * 1024, 1024 * 1024];
    let mut args = vec![format!("127.0.0.1:{listen}")];
    args.extend(sizes.iter().map(|n| n.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_client("dubbo_large.py", &args, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\nprovider log:\n{}", provider.log()));
    let tally = flat_json(&out);
    settle(&envoy, "dubbo");
    let calls = 2 * sizes.len() as u64;
    assert_eq!(tally["calls"], calls, "{out}");
    assert_eq!(tally["exact"], calls, "every reply exact: {out}");

    // The wire: every call answered with status 20 and a VALUE (0x91); the frames as large as
    // the strings (a character takes 1 to 6 bytes); heartbeats only from the idle provider.
    let recorded = relay.recorded();
    assert_eq!(recorded.len(), 1, "the client keeps one connection");
    let requests: Vec<_> = dubbo_frames(&recorded[0].c2s)
        .into_iter()
        .filter(|(flag, ..)| flag & 0xa0 == 0x80)
        .collect();
    assert_eq!(requests.len() as u64, calls);
    let mut provider_hb = 0;
    let mut ok = 0;
    for (flag, status, _, kind) in dubbo_frames(&recorded[0].s2c) {
        match (flag & 0x80 != 0, status, kind) {
            (true, _, _) => provider_hb += 1,
            (false, 20, Some(0x91)) => ok += 1,
            other => panic!("an unexpected response {other:?}"),
        }
    }
    assert_eq!(ok, calls);
    let (c2s, s2c) = bytes(&recorded);
    assert!(
        s2c >= 2 * sizes.iter().sum::<usize>() as u64,
        "{s2c} bytes back"
    );

    let mut want = Totals {
        connections: 1,
        c2s,
        s2c,
        call: calls,
        success: calls,
        server_event: provider_hb,
        ..Totals::default()
    }
    .stats();
    let per_service: BTreeMap<String, u64> = [
        ("call.org.meltemi.demo.GreetingService:sayHello.success", 2),
        ("call.org.meltemi.demo.GreetingService:sayHello.total", 2),
        ("call.org.meltemi.demo.EchoService:sayHello.success", 2),
        ("call.org.meltemi.demo.EchoService:sayHello.total", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    want.extend(method_stats(&per_service, "call", DUBBO_METHODS));
    assert_stats(&envoy.stats(), "dubbo", &want);
}
