//! Shared set-up of the module's end-to-end tests: Envoy config pieces (a listener with the
//! module before `tcp_proxy`, plain and bridge clusters), the Apache Thrift Python peers
//! (`testkit/clients/route_thrift.py`), a framed-binary Thrift client on one socket, and the
//! `meltemi` binary (the last three from `meltemi_testkit::routing`, which the demo shares).
#![allow(dead_code)] // each test file uses its own part

use meltemi_testkit::config::Filter;
use meltemi_testkit::routing;
#[allow(unused_imports)] // each test file uses its own part
pub use meltemi_testkit::{routing::thrift_script, ThriftConn};
use meltemi_testkit::{Process, TempDir};
use std::path::PathBuf;

/// A Thrift server on a free port whose every method answers `name`.
pub fn thrift_server(dir: &TempDir, name: &str) -> (Process, u16) {
    routing::version_server(dir, name).unwrap()
}

/// Waits (up to 10 s) until something accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    routing::await_listening(port, what).unwrap_or_else(|e| panic!("{e}"));
}

/// The `meltemi` controller binary, built on first use into the same target dir.
pub fn meltemi_binary() -> PathBuf {
    routing::meltemi_binary().unwrap_or_else(|e| panic!("{e}"))
}

/// A listener on 127.0.0.1:`port`: the module with `filter_json`, then `tcp_proxy` to `cluster`
/// (YAML list item under `listeners:`).
pub fn module_listener(name: &str, port: u16, filter_json: &str, cluster: &str) -> String {
    let chain: String = [
        Filter::Module(filter_json.to_owned()),
        Filter::TcpProxy(cluster.to_owned()),
    ]
    .iter()
    .map(Filter::yaml)
    .collect();
    format!(
        r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:{chain}"#
    )
}

/// A routing listener of the engine's own `routing` object (stat prefix = `name`), primary `v1`.
pub fn routed_listener(protocol: &str, name: &str, port: u16, routing: &str) -> String {
    let json = format!(r#"{{"protocol":"{protocol}","stat_prefix":"{name}","routing":{routing}}}"#);
    module_listener(name, port, &json, "v1")
}

/// A static cluster on 127.0.0.1:`port` (YAML list item under `clusters:`).
pub fn tcp_cluster(name: &str, port: u16) -> String {
    cluster(name, port, "")
}

/// A static cluster on 127.0.0.1:`port` whose upstream is the module's HTTP-to-TCP bridge for
/// `protocol` (a detour's destination); `extra` goes after `type: STATIC` (more cluster fields).
pub fn bridge_cluster(protocol: &str, name: &str, port: u16, extra: &str) -> String {
    let bridge = format!(
        r#"{extra}
    upstream_config:
      name: envoy.upstreams.http.dynamic_modules
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.dynamic_modules.v3.Config
        dynamic_module_config: {{ name: meltemi }}
        bridge_name: {protocol}
        bridge_config:
          "@type": type.googleapis.com/google.protobuf.StringValue
          value: '{{"protocol":"{protocol}"}}'"#
    );
    cluster(name, port, &bridge)
}

fn cluster(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
  - name: "{name}"
    connect_timeout: 1s
    type: STATIC{extra}
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"#
    )
}

/// A whole static bootstrap from listener and cluster items.
pub fn static_resources(listeners: &[String], clusters: &[String]) -> String {
    format!(
        "static_resources:\n  listeners:{}\n  clusters:{}\n",
        listeners.concat(),
        clusters.concat()
    )
}
