//! Issue 4, Kafka and ZooKeeper: real brokers/servers and real clients through the real Envoy.
//! Oracles: for ZooKeeper, Envoy's native `zookeeper_proxy` in the same chain; for Kafka (this
//! Envoy build has no `kafka_broker` proto), a recording relay between Envoy and the broker whose
//! bytes the test frames with its own few lines. Our `.so` and `.wasm` must count exactly what
//! the oracle counts, per api key / version / opcode, and agree with each other on everything.

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{
    free_port, run_client, Envoy, EnvoyOptions, KafkaBroker, Relay, ZooKeeperServer,
};
use std::collections::BTreeMap;
use std::time::Duration;

fn chain(native: Option<&str>, protocol: &str, cluster: &str) -> Vec<Filter> {
    let mut c: Vec<Filter> = native
        .map(|n| Filter::Yaml(n.to_string()))
        .into_iter()
        .collect();
    // Istio metrics per opcode for ZooKeeper; for Kafka per code only: per api key they are
    // ~5000 counters per artifact, which Envoy's stats_tags regexes take ~17 s to tag at start
    // (tests/istio_cost.rs), too close to the rig's 30 s readiness limit on a loaded machine.
    let per_method = protocol != "kafka";
    let cfg = |prefix: &str| {
        format!(
            r#"{{"protocol":"{protocol}","stat_prefix":"{prefix}","istioMetrics":{{"enabled":true,
            "requestMethod":{per_method},"destinationWorkload":"{prefix}"}}}}"#
        )
    };
    c.extend([
        Filter::Module(cfg("so")),
        Filter::Wasm(cfg("wasm")),
        Filter::TcpProxy(cluster.into()),
    ]);
    c
}

/// Stats both artifacts define (the module also has its own callout counters).
fn comparable(m: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    m.iter()
        .filter(|(k, _)| {
            !k.contains("latency") && !k.ends_with("time_us") && !k.starts_with("callouts_")
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The oracle for Kafka: (api key, api version) of every request frame in a recorded stream.
fn kafka_requests(c2s: &[u8]) -> Vec<(i16, i16)> {
    let mut out = Vec::new();
    let mut rest = c2s;
    while rest.len() >= 8 {
        let size = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + size {
            break;
        }
        out.push((
            i16::from_be_bytes([rest[4], rest[5]]),
            i16::from_be_bytes([rest[6], rest[7]]),
        ));
        rest = &rest[4 + size..];
    }
    out
}

/// Our stats under one artifact, with the host prefix and `<protocol>.<prefix>.` removed.
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
        .collect()
}

/// The non-zero Istio request counts of one artifact per (request_method, response_code,
/// response_flags); the two artifacts must agree. (The `.so`'s Prometheus name keeps Envoy's
/// `envoy_dynamicmodulescustom_` prefix, see docs/config.md.)
fn istio(envoy: &Envoy, protocol: &str) -> BTreeMap<(String, String, String), u64> {
    let text = envoy.admin("/stats/prometheus");
    let get = |name: &str, artifact: &str| {
        meltemi_testkit::istio_series(
            &text,
            name,
            &[
                ("destination_workload", artifact),
                ("request_protocol", protocol),
            ],
        )
    };
    let so = get("envoy_dynamicmodulescustom_istio_requests_total", "so");
    assert_eq!(
        so,
        get("istio_requests_total", "wasm"),
        "the two artifacts agree"
    );
    so
}

fn key(method: &str, code: &str) -> (String, String, String) {
    (method.into(), code.into(), "-".into())
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

#[test]
fn kafka_counts_per_api_key_and_version_match_the_wire_in_both_artifacts() {
    let listen = free_port();
    let broker = KafkaBroker::start(listen, &["orders"]).expect("tansu");
    let relay = Relay::start(broker.port()).expect("relay");
    let yaml = bootstrap(
        listen,
        &chain(None, "kafka", "kafka"),
        &[("kafka", relay.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");

    let out = run_client(
        "kafka_roundtrip.py",
        &[&format!("127.0.0.1:{listen}"), "orders", "25", "g1"],
        Duration::from_secs(90),
    )
    .unwrap_or_else(|e| panic!("{e}\nbroker log:\n{}", broker.log()));
    assert!(
        out.contains(r#""consumed": 25"#) && out.contains(r#""values_ok": true"#),
        "{out}"
    );
    settle(&envoy, "kafka");

    let stats = envoy.stats();
    let so = ours(&stats, "dynamicmodulescustom", "kafka", "so");
    let wasm = ours(&stats, "wasmcustom", "kafka", "wasm");
    assert_eq!(
        comparable(&so),
        comparable(&wasm),
        "the two artifacts agree"
    );
    assert_eq!(so["request_decoding_error"], 0);
    assert_eq!(so["response_decoding_error"], 0);
    assert_eq!(so["response_unmatched"], 0);

    // The oracle: every request frame the broker received, by api key and version.
    let mut wire: BTreeMap<(i16, i16), u64> = BTreeMap::new();
    for conn in relay.recorded() {
        for kv in kafka_requests(&conn.c2s) {
            *wire.entry(kv).or_default() += 1;
        }
    }
    let total: u64 = wire.values().sum();
    assert_eq!(so["request"], total, "requests: ours vs wire {wire:?}");
    let names: BTreeMap<i16, &str> = [
        (0, "Produce"),
        (1, "Fetch"),
        (2, "ListOffsets"),
        (3, "Metadata"),
        (8, "OffsetCommit"),
        (9, "OffsetFetch"),
        (10, "FindCoordinator"),
        (11, "JoinGroup"),
        (12, "Heartbeat"),
        (13, "LeaveGroup"),
        (14, "SyncGroup"),
        (18, "ApiVersions"),
    ]
    .into_iter()
    .collect();
    for ((key, version), n) in &wire {
        let name = names
            .get(key)
            .unwrap_or_else(|| panic!("api key {key} not in the test's table"));
        assert_eq!(
            so.get(&format!("api_version.{name}.v{version}")).copied(),
            Some(*n),
            "{name} v{version}"
        );
    }
    for (key, name) in &names {
        let want: u64 = wire
            .iter()
            .filter(|((k, _), _)| k == key)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(so[&format!("api.{name}.total")], want, "{name}");
    }
    for api in [
        "ApiVersions",
        "Metadata",
        "Produce",
        "Fetch",
        "FindCoordinator",
        "JoinGroup",
        "SyncGroup",
        "OffsetCommit",
    ] {
        assert!(so[&format!("api.{api}.total")] > 0, "{api} seen");
    }
    // Every request that expects an answer got one.
    assert_eq!(so["request_active"], 0);
    assert_eq!(so["request_no_reply"], 0);
    assert_eq!(so["response"], so["request_call"]);

    // Istio-style: every call and oneway request once, by top-level error code (ApiVersions,
    // FindCoordinator, JoinGroup... answer 0; Produce, Metadata... have no top-level code).
    let ist = istio(&envoy, "kafka");
    assert_eq!(
        ist.values().sum::<u64>(),
        so["request_call"] + so["request_oneway"]
    );
    assert!(ist[&key("", "0")] >= so["api.ApiVersions.total"]);
    assert!(ist[&key("", "unknown")] >= so["api.Metadata.total"]);
}

#[test]
fn zookeeper_counts_per_opcode_match_the_native_filter_in_both_artifacts() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let listen = free_port();
    let native = r#"      - name: envoy.filters.network.zookeeper_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.zookeeper_proxy.v3.ZooKeeperProxy
          stat_prefix: native"#;
    let yaml = bootstrap(
        listen,
        &chain(Some(native), "zookeeper", "zk"),
        &[("zk", zk.port())],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");

    let out = run_client(
        "zookeeper_ops.py",
        &[&format!("127.0.0.1:{listen}")],
        Duration::from_secs(60),
    )
    .expect("kazoo client");
    assert!(out.contains(r#""watch_fired": 1"#), "{out}");
    assert!(out.contains(r#""missing": "NoNodeError""#), "{out}");
    settle(&envoy, "zookeeper");

    let stats = envoy.stats();
    let so = ours(&stats, "dynamicmodulescustom", "zookeeper", "so");
    let wasm = ours(&stats, "wasmcustom", "zookeeper", "wasm");
    assert_eq!(
        comparable(&so),
        comparable(&wasm),
        "the two artifacts agree"
    );
    assert_eq!(so["request_decoding_error"], 0);
    assert_eq!(so["response_decoding_error"], 0);
    assert_eq!(so["response_unmatched"], 0);
    // The data watch fired once: a server event, not a reply.
    assert_eq!(so["server_event"], 1);
    assert_eq!(stats["native.zookeeper.watch_event"], 1);
    // The get of a missing node is an error reply (NONODE).
    assert_eq!(so["opcode.getData.error"], 1);
    assert_eq!(so["opcode.connect.total"], 1);
    assert_eq!(stats["native.zookeeper.connect_rq"], 1);
    // The native filter also counts the sub-operations of a multi in its `<op>_rq`; its
    // `<op>_resp` counts top-level replies, which is what ours count per opcode.
    let mut compared = 0;
    for (ours_op, native_op) in [
        ("getData", "getdata"),
        ("setData", "setdata"),
        ("exists", "exists"),
        ("multi", "multi"),
        ("delete", "delete"),
        ("getChildren", "getchildren"),
        ("getChildren2", "getchildren2"),
        ("create", "create"),
        ("create2", "create2"),
        ("closeSession", "close"),
        ("ping", "ping"),
    ] {
        let o = so[&format!("opcode.{ours_op}.success")] + so[&format!("opcode.{ours_op}.error")];
        let n = stats
            .get(&format!("native.zookeeper.{native_op}_resp"))
            .copied()
            .unwrap_or(0);
        assert_eq!(o, n, "{ours_op}: ours {o}, native {n}");
        compared += u64::from(o > 0);
    }
    assert!(compared >= 7, "{compared} opcodes seen");
    assert_eq!(so["request_active"], 0);

    // Istio-style: every call (pings, connect and watches re-arming are events, not counted)
    // once, by opcode and ZooKeeper error code; the missing node is NONODE (-101).
    let ist = istio(&envoy, "zookeeper");
    assert_eq!(ist.values().sum::<u64>(), so["request_call"]);
    assert_eq!(ist[&key("getData", "-101")], 1);
    assert_eq!(ist.get(&key("ping", "0")), None);
}
