//! Per-request Thrift routing in the real Envoy 1.40: two real Thrift servers (Apache Thrift's
//! Python library) that answer with their own version name, ONE client connection per case.
//! The module sits before `tcp_proxy` (cluster `v1`, the primary); `v2` and `down` are clusters
//! whose upstream is the module's HTTP-to-TCP bridge (the detour).
//! Needs the release `.so` and `MELTEMI_ENVOY`; Python from `MELTEMI_VENV` (or `.venv`).

use meltemi_testkit::{free_port, venv_python, Envoy, EnvoyOptions, Process, TempDir};
use std::collections::BTreeMap;
use std::process::Command;

mod common;

use common::{
    bridge_cluster, routed_listener, static_resources, tcp_cluster, thrift_script as script,
    thrift_server as server,
};

fn call(port: u16, n: usize, method: &str, extra: &[&str]) -> BTreeMap<String, u64> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(venv_python())
        .arg(script())
        .args(["call", &port.to_string(), &n.to_string(), method])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Two version servers and one Envoy with a routed Thrift listener per `(name, routing)` (stat
/// prefix = name) on free ports (`ports`, in order); clusters `v1` (the primary), `v2` and `down`
/// (bridged; nothing listens behind `down`).
struct Setup {
    envoy: Envoy,
    ports: Vec<u16>,
    /// Kept for the test's length (dropping stops them).
    _servers: [Process; 2],
    _dir: TempDir,
}

fn start<N: AsRef<str>>(tag: &str, cases: &[(N, &str)]) -> Setup {
    let dir = TempDir::new(tag).unwrap();
    let (v1, p1) = server(&dir, "v1");
    let (v2, p2) = server(&dir, "v2");
    let ports: Vec<u16> = cases.iter().map(|_| free_port()).collect();
    let listeners: Vec<String> = cases
        .iter()
        .zip(&ports)
        .map(|((n, r), p)| routed_listener("thrift", n.as_ref(), *p, r))
        .collect();
    let yaml = static_resources(
        &listeners,
        &[
            tcp_cluster("v1", p1),
            bridge_cluster("thrift", "v2", p2, ""),
            bridge_cluster("thrift", "down", free_port(), ""),
        ],
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    Setup {
        envoy,
        ports,
        _servers: [v1, v2],
        _dir: dir,
    }
}

const CASES: &[(&str, &str)] = &[
    ("pin_v1", r#"{"primary_cluster":"v1"}"#),
    (
        "pin_v2",
        r#"{"primary_cluster":"v1","default":{"cluster":"v2"}}"#,
    ),
    (
        "split",
        r#"{"primary_cluster":"v1","services":[{"service":"Calc","routes":[{"name":"split","route":{"weighted":[{"cluster":"v1","weight":90},{"cluster":"v2","weight":10}]}}]}]}"#,
    ),
    (
        "method",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"m","match":{"method":{"exact":"getV2"}},"route":{"cluster":"v2"}}]}]}"#,
    ),
    (
        "header",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"h","match":{"attributes":{"x-version":{"exact":"2"}}},"route":{"cluster":"v2"}}]}]}"#,
    ),
    (
        "limit",
        r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"lim","route":{"cluster":"v1"},"rate_limit":{"max_tokens":5,"fill_interval_ms":600000}}]}]}"#,
    ),
    (
        "down",
        r#"{"primary_cluster":"v1","default":{"cluster":"down"}}"#,
    ),
];

#[test]
fn thrift_requests_are_routed_per_request_on_one_connection() {
    let setup = start("route-thrift", CASES);
    let (envoy, ports) = (&setup.envoy, &setup.ports);
    let port = |name: &str| ports[CASES.iter().position(|(n, _)| *n == name).unwrap()];
    let stat = |l: &str, s: &str| envoy.stat(&format!("dynamicmodulescustom.thrift.{l}.{s}"));

    // Version routing: 100% to the chosen version, multiplexed or not.
    let got = call(port("pin_v1"), 200, "get", &["--service", "Calc"]);
    assert_eq!(got, BTreeMap::from([("v1".into(), 200)]));
    let got = call(port("pin_v2"), 200, "get", &["--service", "Calc"]);
    assert_eq!(got, BTreeMap::from([("v2".into(), 200)]));
    assert_eq!(stat("pin_v2", "route.default.detoured"), Some(200));
    assert_eq!(stat("pin_v1", "route.default.detoured"), Some(0));

    // 90/10 over 2,000 requests on one connection: v2 ~ Bin(2000, 0.1), mean 200, sd 13.4.
    let got = call(port("split"), 2000, "get", &["--service", "Calc"]);
    let v2 = got.get("v2").copied().unwrap_or(0);
    assert_eq!(got.values().sum::<u64>(), 2000, "{got:?}");
    assert!((200 - 60..=200 + 60).contains(&v2), "v2 got {v2} of 2000");
    assert_eq!(stat("split", "route.split.requests"), Some(2000));
    assert_eq!(stat("split", "route.split.detoured"), Some(v2));
    assert_eq!(stat("split", "destination.v2.requests"), Some(v2));

    // Method rule.
    assert_eq!(
        call(port("method"), 50, "getV2", &[]),
        BTreeMap::from([("v2".into(), 50)])
    );
    assert_eq!(
        call(port("method"), 50, "get", &[]),
        BTreeMap::from([("v1".into(), 50)])
    );

    // THeader header rule.
    assert_eq!(
        call(
            port("header"),
            50,
            "get",
            &["--header", "--hdr", "x-version=2"]
        ),
        BTreeMap::from([("v2".into(), 50)])
    );
    assert_eq!(
        call(
            port("header"),
            50,
            "get",
            &["--header", "--hdr", "x-version=1"]
        ),
        BTreeMap::from([("v1".into(), 50)])
    );

    // Rate limit: exactly 5 admitted in the window; the rest get TApplicationException
    // (type 6, INTERNAL_ERROR) with the request's seqid (the client checks it).
    let got = call(port("limit"), 12, "get", &[]);
    assert_eq!(
        got,
        BTreeMap::from([("v1".into(), 5), ("exc:6:meltemi: rate limited".into(), 7)])
    );
    assert_eq!(stat("limit", "route.lim.rate_limited"), Some(7));

    // A stopped backend: the protocol's error, not a hang.
    let got = call(port("down"), 3, "get", &[]);
    assert_eq!(
        got,
        BTreeMap::from([("exc:6:meltemi: upstream unavailable".into(), 3)])
    );
    assert_eq!(stat("down", "route.default.errors"), Some(3));
}

/// Unframed Thrift (`TBufferedTransport`, no length prefix), strict binary and compact: the
/// same routes as above on ONE client connection per case; replies are framed by walking their
/// struct, so detour answers and local errors are spliced between whole replies (the piped
/// split puts them between the primary's replies while those are still arriving).
#[test]
fn unframed_thrift_is_routed_per_request_on_one_connection() {
    const UNFRAMED: &[(&str, &str)] = &[
        (
            "pin_v2",
            r#"{"primary_cluster":"v1","default":{"cluster":"v2"}}"#,
        ),
        (
            "split",
            r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"split","route":{"weighted":[{"cluster":"v1","weight":90},{"cluster":"v2","weight":10}]}}]}]}"#,
        ),
        (
            "piped",
            r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"split","route":{"weighted":[{"cluster":"v1","weight":50},{"cluster":"v2","weight":50}]}}]}]}"#,
        ),
        (
            "method",
            r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"m","match":{"method":{"exact":"getV2"}},"route":{"cluster":"v2"}}]}]}"#,
        ),
        (
            "limit",
            r#"{"primary_cluster":"v1","services":[{"service":"*","routes":[{"name":"lim","route":{"cluster":"v1"},"rate_limit":{"max_tokens":5,"fill_interval_ms":600000}}]}]}"#,
        ),
        (
            "down",
            r#"{"primary_cluster":"v1","default":{"cluster":"down"}}"#,
        ),
    ];
    const PROTOCOLS: &[(&str, &[&str])] = &[
        ("binary", &["--buffered"]),
        ("compact", &["--buffered", "--compact"]),
    ];
    let cases: Vec<(String, &str)> = PROTOCOLS
        .iter()
        .flat_map(|(p, _)| UNFRAMED.iter().map(move |(c, r)| (format!("{p}_{c}"), *r)))
        .collect();
    let names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
    let setup = start("route-thrift-unframed", &cases);
    let (envoy, ports) = (&setup.envoy, &setup.ports);
    for (proto, flags) in PROTOCOLS {
        let name = |case: &str| format!("{proto}_{case}");
        let port = |case: &str| ports[names.iter().position(|n| *n == name(case)).unwrap()];
        let stat = |case: &str, s: &str| {
            envoy.stat(&format!("dynamicmodulescustom.thrift.{}.{s}", name(case)))
        };
        let run = |case: &str, n: usize, method: &str, more: &[&str]| {
            let args: Vec<&str> = flags.iter().chain(more).copied().collect();
            call(port(case), n, method, &args)
        };

        // Version pin to v2: every request by detour.
        let got = run("pin_v2", 200, "get", &[]);
        assert_eq!(got, BTreeMap::from([("v2".into(), 200)]), "{proto}");
        assert_eq!(stat("pin_v2", "route.default.detoured"), Some(200));

        // 90/10 over 1,000 requests on one connection: v2 ~ Bin(1000, 0.1), mean 100, sd 9.5.
        let got = run("split", 1000, "get", &[]);
        let v2 = got.get("v2").copied().unwrap_or(0);
        assert_eq!(got.values().sum::<u64>(), 1000, "{proto}: {got:?}");
        assert!((100 - 45..=100 + 45).contains(&v2), "{proto}: v2 got {v2}");
        assert_eq!(stat("split", "route.split.requests"), Some(1000));
        assert_eq!(stat("split", "route.split.detoured"), Some(v2));
        assert_eq!(stat("split", "destination.v2.requests"), Some(v2));
        assert_eq!(
            envoy.stat(&format!(
                "listener.127.0.0.1_{}.downstream_cx_total",
                port("split")
            )),
            Some(1),
            "{proto}: one client connection"
        );

        // 50/50 with 100 requests in one write: detour answers are spliced between the
        // primary's unframed replies as they stream back (the client matches seqids).
        // v2 ~ Bin(100, 0.5): mean 50, sd 5.
        let got = run("piped", 100, "get", &["--pipe"]);
        let v2 = got.get("v2").copied().unwrap_or(0);
        assert_eq!(got.values().sum::<u64>(), 100, "{proto}: {got:?}");
        assert!((50 - 25..=50 + 25).contains(&v2), "{proto}: {got:?}");
        assert_eq!(
            stat("piped", "route.split.detoured"),
            Some(v2),
            "{proto}: {got:?}"
        );

        // Method rule.
        assert_eq!(
            run("method", 50, "getV2", &[]),
            BTreeMap::from([("v2".into(), 50)])
        );
        assert_eq!(
            run("method", 50, "get", &[]),
            BTreeMap::from([("v1".into(), 50)])
        );
        assert_eq!(stat("method", "route.m.detoured"), Some(50));

        // Rate limit: exactly 5 admitted, then TApplicationException (type 6) in the
        // client's own transport and protocol, with its seqid (the client checks it).
        assert_eq!(
            run("limit", 12, "get", &[]),
            BTreeMap::from([("v1".into(), 5), ("exc:6:meltemi: rate limited".into(), 7)]),
            "{proto}"
        );
        assert_eq!(stat("limit", "route.lim.rate_limited"), Some(7));

        // A stopped backend: the protocol's error, not a hang.
        assert_eq!(
            run("down", 3, "get", &[]),
            BTreeMap::from([("exc:6:meltemi: upstream unavailable".into(), 3)]),
            "{proto}"
        );
        assert_eq!(stat("down", "route.default.errors"), Some(3));
        assert_eq!(stat("split", "response_decoding_error"), Some(0));
    }
}
