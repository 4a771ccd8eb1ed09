//! Envoy bootstraps for tests, benches and the demo: one listener on 127.0.0.1 with a filter
//! chain, one static cluster per upstream.

use crate::artifacts;

/// One network filter in the chain.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Meltemi's dynamic module (`libmeltemi.so`) with this JSON configuration.
    Module(String),
    /// The dynamic module with `dynamic_module_config.metrics_namespace` set (first) and this
    /// JSON configuration (second).
    ModuleIn(String, String),
    /// The dynamic module as the connection's terminal filter (`terminal_filter: true`, no
    /// `tcp_proxy` after it: the Redis router) with this JSON configuration.
    TerminalModule(String),
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
            Filter::Module(json) => Filter::ModuleIn(String::new(), json.clone()).yaml(),
            Filter::ModuleIn(namespace, json) => format!(
                r#"
      - name: envoy.filters.network.dynamic_modules
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter
          dynamic_module_config: {{ name: meltemi{} }}
          filter_name: meltemi
          filter_config:
            "@type": type.googleapis.com/google.protobuf.StringValue
            value: '{}'"#,
                if namespace.is_empty() {
                    String::new()
                } else {
                    format!(", metrics_namespace: {namespace}")
                },
                json.replace('\'', "''")
            ),
            Filter::TerminalModule(json) => format!(
                r#"
      - name: envoy.filters.network.dynamic_modules
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter
          dynamic_module_config: {{ name: meltemi }}
          filter_name: meltemi
          terminal_filter: true
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
            # A VM that fails (a trap) is reloaded for new connections, not left dead.
            failure_policy: FAIL_RELOAD
            reload_config: {{ backoff: {{ base_interval: 0.2s, max_interval: 1s }} }}
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

/// The tags of Meltemi's Istio-style metrics (`meltemi_proto::IstioMetrics::stat_tags`; the
/// rig stays std-only, and the end-to-end tests prove the two agree).
pub const ISTIO_STAT_TAGS: [&str; 23] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "connection_security_policy",
    "request_protocol",
    "request_method",
    "response_code",
    "response_flags",
];

/// `stats_flush_on_admin` and a `stats_config` with one `stats_tags` regex per Istio tag, the shape Istio's bootstrap writes
/// for each `extraStatTags` entry: `(<tag>=\.=(.*?);\.;)`.
pub fn istio_stats_config() -> String {
    let tags: String = ISTIO_STAT_TAGS
        .iter()
        .map(|t| format!("\n  - tag_name: {t}\n    regex: '({t}=\\.=(.*?);\\.;)'"))
        .collect();
    // Histograms are merged on flush: flushing on each admin query makes `/stats/prometheus`
    // current without waiting for the 5 s flush timer.
    format!("stats_flush_on_admin: true\nstats_config:\n  stats_tags:{tags}\n")
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
        r#"{stats}static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:{chain}
  clusters:{clusters}
"#,
        stats = istio_stats_config()
    )
}
