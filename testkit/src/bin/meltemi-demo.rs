//! The demo: the real Envoy 1.40 with Meltemi's filters in front of a real redis-server on
//! 127.0.0.1, real traffic from redis-benchmark and redis-cli, then the filters' counters as
//! Envoy's `/stats` shows them. Every process it starts is stopped by PID when it ends.

use meltemi_testkit::{artifacts, free_port, redis_cli, Envoy, EnvoyOptions, RedisServer};
use std::process::Command;
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("meltemi-demo: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let redis = RedisServer::start()?;
    let listen = free_port();
    let wasm = artifacts::wasm_path();
    let module_cfg = r#"{"protocol":"redis","stat_prefix":"demo_so"}"#;
    let wasm_cfg = r#"{"protocol":"redis","stat_prefix":"demo_wasm"}"#;
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: redis
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.dynamic_modules
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter
          dynamic_module_config: {{ name: meltemi }}
          filter_name: meltemi
          filter_config:
            "@type": type.googleapis.com/google.protobuf.StringValue
            value: '{module_cfg}'
      - name: envoy.filters.network.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: meltemi
            root_id: meltemi
            vm_config:
              runtime: envoy.wasm.runtime.v8
              code: {{ local: {{ filename: "{wasm}" }} }}
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: '{wasm_cfg}'
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: redis
          cluster: redis
  clusters:
  - name: redis
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: redis
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {redis_port} }} }} }}
"#,
        wasm = wasm.display(),
        redis_port = redis.port()
    );
    let envoy = Envoy::start_with(EnvoyOptions::new(yaml).with_dynamic_module())?;
    println!(
        "Envoy 1.40 (pid {}) listens on 127.0.0.1:{listen} with the Meltemi .so and .wasm filters",
        envoy.pid()
    );
    println!("redis-server (port {}) is the backend\n", redis.port());

    println!(
        "redis-cli SET demo meltemi -> {}",
        redis_cli(listen, &["SET", "demo", "meltemi"])?
    );
    println!(
        "redis-cli GET demo         -> {}",
        redis_cli(listen, &["GET", "demo"])?
    );
    println!("\nredis-benchmark -t set,get -n 10000 -c 10 through Envoy...");
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &listen.to_string()])
        .args(["-t", "set,get", "-n", "10000", "-c", "10", "-q"])
        .output()?;
    print!(
        "{}",
        String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
    );
    std::thread::sleep(Duration::from_millis(300));

    println!("\nMeltemi counters in Envoy's /stats:");
    for (k, v) in envoy.stats() {
        if k.starts_with("wasmcustom.") || k.starts_with("dynamicmodulescustom.") {
            println!("  {k}: {v}");
        }
    }
    Ok(())
}
