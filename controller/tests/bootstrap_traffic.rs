//! `meltemi bootstrap` output runs in the real Envoy 1.40 and carries real traffic through our
//! filters: a ServiceEntry for a real redis-server on 127.0.0.1, rendered by the `meltemi` binary
//! (the `.wasm` by default, the `.so` with `--adapter module`), then redis-cli through Envoy.

use meltemi_testkit::{artifacts, free_port, redis_cli, Envoy, EnvoyOptions, RedisServer, TempDir};
use std::process::Command;
use std::time::Duration;

fn rendered_bootstrap(dir: &TempDir, adapter: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meltemi"))
        .arg("bootstrap")
        .arg("-f")
        .arg(dir.path())
        .args(["--adapter", adapter, "--access-log"])
        .arg("--wasm-path")
        .arg(artifacts::wasm_path())
        .args(["--admin-port", &free_port().to_string()])
        .output()
        .expect("run meltemi");
    assert!(
        out.status.success(),
        "meltemi bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The rig adds its own admin section (on a port it reads back).
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&out.stdout).expect("YAML");
    v.as_mapping_mut()
        .expect("a mapping")
        .remove(serde_yaml_ng::Value::from("admin"));
    serde_yaml_ng::to_string(&v).unwrap()
}

fn redis_service(dir: &TempDir, listen: u16, backend: u16) {
    std::fs::write(
        dir.path().join("redis.yaml"),
        format!(
            r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cache
  namespace: demo
spec:
  hosts: [cache.demo.svc.cluster.local]
  ports:
    - number: {listen}
      name: tcp-redis
      protocol: TCP
  resolution: STATIC
  endpoints:
    - address: 127.0.0.1
      ports: {{tcp-redis: {backend}}}
"#
        ),
    )
    .unwrap();
}

#[test]
fn bootstrap_carries_real_redis_traffic_through_both_adapters() {
    let redis = RedisServer::start().expect("redis-server");
    for (adapter, host) in [("wasm", "wasmcustom"), ("module", "dynamicmodulescustom")] {
        let dir = TempDir::new("bootstrap").unwrap();
        let listen = free_port();
        redis_service(&dir, listen, redis.port());
        let yaml = rendered_bootstrap(&dir, adapter);
        let mut opts = EnvoyOptions::new(yaml);
        if adapter == "module" {
            opts = opts.with_dynamic_module();
        }
        let envoy = Envoy::start_with(opts).unwrap_or_else(|e| panic!("{adapter}: {e}"));
        assert_eq!(redis_cli(listen, &["SET", "boot", adapter]).unwrap(), "OK");
        assert_eq!(redis_cli(listen, &["GET", "boot"]).unwrap(), adapter);
        let find = |suffix: &str| {
            meltemi_testkit::wait_for(Duration::from_secs(5), || {
                envoy
                    .stats()
                    .into_iter()
                    .find(|(k, v)| {
                        k.starts_with(&format!("{host}.redis.")) && k.ends_with(suffix) && *v > 0
                    })
                    .map(|(_, v)| v)
            })
        };
        assert_eq!(find(".command.set.total"), Some(1), "{adapter}");
        assert_eq!(find(".command.get.success"), Some(1), "{adapter}");
    }
}

/// The fast path in what users get: `meltemi bootstrap --adapter module` of a MetaRouter gives
/// tcp_proxy the likeliest destination. Through the real Envoy, one client connection each:
/// a pinned MetaRouter (every request to v1) detours none; a 90/10 split detours the 10 %
/// (within binomial bounds) and exactly the calls v2 answered.
#[test]
fn rendered_routes_take_the_fast_path() {
    use meltemi_testkit::routing::{
        route_counts, version_server, write_calc_router, write_calc_service, ThriftConn,
    };
    let dir = TempDir::new("bootstrap-fastpath").unwrap();
    let (_v1, p1) = version_server(&dir, "v1").expect("thrift v1");
    let (_v2, p2) = version_server(&dir, "v2").expect("thrift v2");
    let manifests = TempDir::new("bootstrap-fastpath-manifests").unwrap();
    for (name, weights, calls) in [
        ("pinned", &[("v1", 100)][..], 500u64),
        ("split", &[("v1", 90), ("v2", 10)][..], 2000),
    ] {
        let listen = free_port();
        write_calc_service(manifests.path(), listen, p1, p2).unwrap();
        write_calc_router(manifests.path(), name, weights).unwrap();
        let yaml = rendered_bootstrap(&manifests, "module");
        assert!(
            yaml.contains("cluster: outbound|9090|v1|calc.demo.svc.cluster.local"),
            "tcp_proxy forwards to the v1 subset:\n{yaml}"
        );
        let envoy =
            Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
        let mut conn = ThriftConn::connect(listen).expect("connect");
        let mut v2 = 0u64;
        for i in 0..calls {
            match conn.call("get").expect("call").as_str() {
                "v1" => {}
                "v2" => v2 += 1,
                other => panic!("{name}: call {i} answered {other:?}"),
            }
        }
        let (requests, detoured) = route_counts(&envoy.stats(), name);
        eprintln!("{name}: {calls} calls, v2 {v2}, route.{name}: requests {requests}, detoured {detoured}");
        assert_eq!(requests, calls, "{name}: every call counted");
        assert_eq!(detoured, v2, "{name}: exactly the v2 calls took the detour");
        if name == "pinned" {
            assert_eq!(detoured, 0, "a pinned MetaRouter pays nothing for routing");
        } else {
            // Bin(2000, 0.1): mean 200, sd 13.4; 4.5 sd either side.
            assert!(
                (140..=260).contains(&detoured),
                "{name}: detoured {detoured}"
            );
        }
        assert_eq!(
            envoy.stat(&format!("listener.127.0.0.1_{listen}.downstream_cx_total")),
            Some(1)
        );
    }
}

/// An Istio VirtualService, as Aeraki users wrote them for a `tcp-thrift` port (Aeraki's e2e
/// `virtualservice-traffic-splitting.yaml`: 30/70 by subset), rendered by `meltemi bootstrap
/// --adapter module` and run in the real Envoy: over one client connection, the counts per
/// version land within binomial bounds. The fast path takes the heavier v2; exactly the v1 calls
/// take the detour.
#[test]
fn a_rendered_virtual_service_splits_thrift_30_70() {
    use meltemi_testkit::routing::{route_counts, version_server, write_calc_service, ThriftConn};
    let dir = TempDir::new("bootstrap-vs").unwrap();
    let (_v1, p1) = version_server(&dir, "v1").expect("thrift v1");
    let (_v2, p2) = version_server(&dir, "v2").expect("thrift v2");
    let manifests = TempDir::new("bootstrap-vs-manifests").unwrap();
    let listen = free_port();
    write_calc_service(manifests.path(), listen, p1, p2).unwrap();
    std::fs::write(
        manifests.path().join("virtualservice.yaml"),
        r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: calc
  namespace: demo
spec:
  hosts:
    - calc.demo.svc.cluster.local
  http:
    - name: "thrift-traffic-splitting"
      route:
        - destination:
            host: calc.demo.svc.cluster.local
            subset: v1
          weight: 30
        - destination:
            host: calc.demo.svc.cluster.local
            subset: v2
          weight: 70
"#,
    )
    .unwrap();
    let yaml = rendered_bootstrap(&manifests, "module");
    assert!(
        yaml.contains("cluster: outbound|9090|v2|calc.demo.svc.cluster.local"),
        "tcp_proxy forwards to the heavier v2 subset:\n{yaml}"
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module()).expect("envoy");
    let mut conn = ThriftConn::connect(listen).expect("connect");
    let calls = 2000u64;
    let (mut v1, mut v2) = (0u64, 0u64);
    for i in 0..calls {
        match conn.call("get").expect("call").as_str() {
            "v1" => v1 += 1,
            "v2" => v2 += 1,
            other => panic!("call {i} answered {other:?}"),
        }
    }
    let (requests, detoured) = route_counts(&envoy.stats(), "thrift-traffic-splitting");
    eprintln!("30/70: {calls} calls, v1 {v1}, v2 {v2}, requests {requests}, detoured {detoured}");
    assert_eq!(
        requests, calls,
        "every call counted on the VirtualService's route"
    );
    assert_eq!(detoured, v1, "exactly the v1 calls took the detour");
    // Bin(2000, 0.3): mean 600, sd 20.5; 4.5 sd either side.
    assert!((508..=692).contains(&v1), "v1 {v1} of {calls}");
    assert_eq!(v1 + v2, calls);
    assert_eq!(
        envoy.stat(&format!("listener.127.0.0.1_{listen}.downstream_cx_total")),
        Some(1)
    );
}
