//! The real-component test rig: starts the real Envoy 1.40 binary and real protocol peers on
//! 127.0.0.1, reads Envoy's `/stats`, and stops every process it started, by its PID, on drop.
//!
//! Deliberately small (std, plus `serde_json` for Prometheus's HTTP API): tests, the demo and
//! the end-to-end benchmark harness all use it. It does not build the artifacts; `.ci/run` (and `scripts/build-artifacts.sh`)
//! build the `.so` and `.wasm` first and [`artifacts`] finds them.
#![forbid(unsafe_code)]

pub mod artifacts;
pub mod config;
mod envoy;
mod peers;
mod proc;
pub mod prometheus;
mod relay;
pub mod routing;

pub use envoy::{find_envoy_binary, Envoy, EnvoyOptions};
pub use peers::{
    redis_cli, run_client, venv_python, DubboProvider, KafkaBroker, RedisServer, SqlKind,
    SqlServer, ThriftServer, ZooKeeperServer,
};
pub use proc::{free_port, workspace_root, Process, TempDir};
pub use prometheus::Prometheus;
pub use relay::{Recorded, Relay};
pub use routing::ThriftConn;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it returns `Some`, or gives up after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A blocking HTTP/1.1 GET on 127.0.0.1, returning (status, body). Enough for Envoy's admin API.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One sample of Envoy's `/stats/prometheus` text: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (`istio_requests_total`, `..._count`, ...).
    pub name: String,
    /// Labels, sorted by name.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Parses Prometheus text exposition (comments skipped; label values without escaped quotes,
/// which is all Envoy's stats produce here).
pub fn prometheus_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = match line.rsplit_once(' ') {
            Some((s, v)) => (s, v.parse().unwrap_or(f64::NAN)),
            None => continue,
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| {
                let (k, v) = kv.split_once("=\"")?;
                Some((k.to_string(), v.trim_end_matches('"').to_string()))
            })
            .collect();
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// Istio-style series in `/stats/prometheus` text: the non-zero values of the metric named
/// `name` per (request_method, response_code, response_flags), among the series whose labels
/// include `select[0]`. Every such series must carry exactly Istio's labels
/// ([`config::ISTIO_STAT_TAGS`]; `request_method` only with `requestMethod` and never on the
/// duration histogram: it reads `""` in the key when absent) and the values in `select`.
pub fn istio_series(
    text: &str,
    name: &str,
    select: &[(&str, &str)],
) -> std::collections::BTreeMap<(String, String, String), u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut want_keys = config::ISTIO_STAT_TAGS.to_vec();
    want_keys.retain(|k| *k != "request_method");
    want_keys.sort_unstable();
    let mut seen = 0;
    for s in prometheus_samples(text) {
        let (k0, v0) = select[0];
        if s.name != name || s.labels.get(k0).map(String::as_str) != Some(v0) {
            continue;
        }
        seen += 1;
        let keys: Vec<&str> = s
            .labels
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "request_method")
            .collect();
        if name.contains("istio_request_duration_milliseconds") {
            assert!(!s.labels.contains_key("request_method"), "{s:?}");
        }
        assert_eq!(keys, want_keys, "labels of {s:?}");
        for (k, v) in select {
            assert_eq!(s.labels[*k], *v, "{k} of {s:?}");
        }
        if s.value > 0.0 {
            let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            let key = (l("request_method"), l("response_code"), l("response_flags"));
            assert!(
                out.insert(key, s.value as u64).is_none(),
                "one series per label set"
            );
        }
    }
    assert!(seen > 0, "no {name} series with {select:?}");
    out
}
