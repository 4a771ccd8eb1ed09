//! Envoy bootstraps for tests, benches and the demo: one listener on 127.0.0.1 with a filter
//! chain, one static cluster per upstream.

use crate::artifacts;

/// One network filter in the chain.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Meltemi's dynamic module (`libmeltemi.so`) with this JSON configuration.
    Module(String),
    /// Meltemi's proxy-wasm filter with this JSON configuration.
    Wasm(String),
    /// `tcp_proxy` to a cluster.
    TcpProxy(String),
    /// Any other filter, as YAML list items indented by six spaces.
    Yaml(String),
}

impl Filter {
    /// This filter as a YAML list item under a filter chain's `filters:`.
    pub fn yaml(&self) -> String {
        match self {
            Filter::Module(json) => format!(
                r#"
      - name: envoy.filters.network.dynamic_modules
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter
          dynamic_module_config: {{ name: meltemi }}
          filter_name: meltemi
          filter_config:
            "@type": type.googleapis.com/google.protobuf.StringValue
            value: '{}'"#,
                json.replace('\'', "''")
            ),
            Filter::Wasm(json) => format!(
                r#"
      - name: envoy.filters.network.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: meltemi
            root_id: meltemi
            vm_config:
              runtime: envoy.wasm.runtime.v8
              code: {{ local: {{ filename: "{}" }} }}
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: '{}'"#,
                artifacts::wasm_path().display(),
                json.replace('\'', "''")
            ),
            Filter::TcpProxy(cluster) => format!(
                r#"
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {cluster}
          cluster: {cluster}"#
            ),
            Filter::Yaml(y) => format!("\n{}", y.trim_end()),
        }
    }
}

/// A bootstrap (without `admin:`, which [`crate::Envoy`] adds) with one listener on
/// `127.0.0.1:listen` running `filters`, and one static cluster per `(name, port)`.
pub fn bootstrap(listen: u16, filters: &[Filter], clusters: &[(&str, u16)]) -> String {
    let chain: String = filters.iter().map(Filter::yaml).collect();
    let clusters: String = clusters
        .iter()
        .map(|(name, port)| {
            format!(
                r#"
  - name: {name}
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"#
            )
        })
        .collect();
    format!(
        r#"static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:{chain}
  clusters:{clusters}
"#
    )
}
