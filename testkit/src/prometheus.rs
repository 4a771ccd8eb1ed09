//! A real Prometheus (Debian's `prometheus`, installed by `scripts/setup.d/prometheus.sh`) that
//! scrapes Envoy's `/stats/prometheus` every second, and PromQL through its HTTP API
//! (`/api/v1/query`, `/api/v1/query_range`). Its own config and data dir in a temp dir, a free
//! port on 127.0.0.1, stopped by PID on drop: the packaged system service is never used.
//!
//! The scrape job carries `deploy/grafana/prometheus-relabel.yaml` (the rule that gives the
//! `.so`'s Istio metrics Istio's names), so what the demo and the tests see is what a user who
//! follows `deploy/grafana/` sees.
//!
//! Also here: the PromQL expressions of a Grafana dashboard with its template variables
//! substituted ([`dashboard_queries`]), for the test that runs them all.

use crate::proc::{free_port, workspace_root, Process, TempDir};
use crate::{http_get, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds between scrapes (and rule evaluations).
pub const SCRAPE_INTERVAL_S: u32 = 1;

/// A running Prometheus, stopped by PID on drop.
#[derive(Debug)]
pub struct Prometheus {
    process: Process,
    port: u16,
    targets: usize,
    dir: TempDir,
}

/// One series of an instant query: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels (the metric name under `__name__` when the result keeps it).
    pub labels: BTreeMap<String, String>,
    /// The value (NaN when PromQL says so, for example a quantile of no observations).
    pub value: f64,
}

/// One series of a range query: its labels and (unix seconds, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Points in time order.
    pub points: Vec<(f64, f64)>,
}

/// The `prometheus` binary: `$MELTEMI_PROMETHEUS` or `prometheus` on `PATH`.
pub fn prometheus_binary() -> io::Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("MELTEMI_PROMETHEUS") {
        return Ok(p.into());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::other("prometheus is missing: run scripts/setup.sh (Debian `prometheus`)")
        })
}

/// Unix time in seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Prometheus {
    /// Starts Prometheus scraping `/stats/prometheus` of the Envoys whose admin ports are
    /// `envoy_admin_ports` (job `envoy`; [`Prometheus::set_targets`] changes them), and waits
    /// (up to 30 s) until it is ready.
    pub fn start(envoy_admin_ports: &[u16]) -> io::Result<Prometheus> {
        let dir = TempDir::new("prometheus")?;
        let port = free_port();
        let relabel = std::fs::read_to_string(
            workspace_root().join("deploy/grafana/prometheus-relabel.yaml"),
        )?;
        let relabel: String = relabel
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .map(|l| format!("    {l}\n"))
            .collect();
        write_targets(dir.path(), envoy_admin_ports)?;
        // Targets from a file Prometheus watches, so one Prometheus can follow Envoys that come
        // and go (the demo's two parts).
        let cfg = format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n  scrape_timeout: {SCRAPE_INTERVAL_S}s\n  \
             evaluation_interval: {SCRAPE_INTERVAL_S}s\nscrape_configs:\n  - job_name: envoy\n    \
             metrics_path: /stats/prometheus\n    file_sd_configs:\n      - files: ['{}']\n{relabel}",
            dir.path().join("targets.json").display()
        );
        let cfg_path = dir.path().join("prometheus.yml");
        std::fs::write(&cfg_path, cfg)?;
        let mut cmd = std::process::Command::new(prometheus_binary()?);
        cmd.arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--log.level=warn");
        let mut process = Process::spawn("prometheus", cmd, dir.path().join("prometheus.log"))?;
        let ready = wait_for(Duration::from_secs(30), || {
            if !process.is_running() {
                return Some(false);
            }
            matches!(http_get(port, "/-/ready"), Ok((200, _))).then_some(true)
        });
        if ready != Some(true) {
            return Err(io::Error::other(format!(
                "prometheus did not become ready; log:\n{}",
                process.log_tail(20)
            )));
        }
        Ok(Prometheus {
            process,
            port,
            targets: envoy_admin_ports.len(),
            dir,
        })
    }

    /// Scrapes these Envoys (admin ports) from now on instead; Prometheus sees the file change
    /// at once (it watches it).
    pub fn set_targets(&mut self, envoy_admin_ports: &[u16]) -> io::Result<()> {
        write_targets(self.dir.path(), envoy_admin_ports)?;
        self.targets = envoy_admin_ports.len();
        Ok(())
    }

    /// The HTTP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The data and config dir.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Waits (up to `timeout`) until every target was scraped successfully after unix time
    /// `after`, so queries see everything that happened before it.
    pub fn wait_scraped_after(&self, after: f64, timeout: Duration) -> io::Result<()> {
        let want = self.targets;
        wait_for(timeout, || {
            // `timestamp()` of a selector is the sample's time (of an expression: the
            // evaluation's), so the check that the scrapes succeeded is a second query.
            let at = self.query(r#"timestamp(up{job="envoy"})"#).ok()?;
            let up = self.query(r#"up{job="envoy"} == 1"#).ok()?;
            (at.len() == want && at.iter().all(|s| s.value > after) && up.len() == want)
                .then_some(())
        })
        .ok_or_else(|| {
            io::Error::other(format!(
                "no scrape of every target after {after} within {timeout:?}; log:\n{}",
                self.process.log_tail(20)
            ))
        })
    }

    /// An instant query at the current time (`/api/v1/query`).
    pub fn query(&self, expr: &str) -> io::Result<Vec<Series>> {
        self.query_at(expr, None)
    }

    /// An instant query evaluated at unix time `at` (now when `None`).
    pub fn query_at(&self, expr: &str, at: Option<f64>) -> io::Result<Vec<Series>> {
        let mut path = format!("/api/v1/query?query={}", url_encode(expr));
        if let Some(t) = at {
            path.push_str(&format!("&time={t:.3}"));
        }
        let data = self.api(&path)?;
        let result = data["result"].as_array().cloned().unwrap_or_default();
        match data["resultType"].as_str() {
            Some("vector") => Ok(result
                .iter()
                .map(|s| Series {
                    labels: labels(&s["metric"]),
                    value: point(&s["value"]).1,
                })
                .collect()),
            Some("scalar") => Ok(vec![Series {
                labels: BTreeMap::new(),
                value: point(&data["result"]).1,
            }]),
            other => Err(io::Error::other(format!(
                "{expr}: unexpected result type {other:?}"
            ))),
        }
    }

    /// A range query (`/api/v1/query_range`) from `start` to `end` (unix seconds) every
    /// `step_s` seconds.
    pub fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step_s: f64,
    ) -> io::Result<Vec<RangeSeries>> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step_s}",
            url_encode(expr)
        );
        let data = self.api(&path)?;
        Ok(data["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| RangeSeries {
                labels: labels(&s["metric"]),
                points: s["values"]
                    .as_array()
                    .map(|v| v.iter().map(point).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    fn api(&self, path: &str) -> io::Result<Value> {
        let (status, body) = http_get(self.port, path)?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| io::Error::other(format!("{path}: {status} {e}: {body}")))?;
        if status != 200 || v["status"] != "success" {
            return Err(io::Error::other(format!(
                "{path}: {status} {}: {}",
                v["errorType"], v["error"]
            )));
        }
        Ok(v["data"].clone())
    }
}

/// The file_sd targets file (written whole, then renamed, so Prometheus never reads half).
fn write_targets(dir: &std::path::Path, ports: &[u16]) -> io::Result<()> {
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let text = serde_json::json!([{ "targets": targets }]).to_string();
    let tmp = dir.join("targets.json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join("targets.json"))
}

fn labels(m: &Value) -> BTreeMap<String, String> {
    m.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `[<unix seconds>, "<value>"]`; Prometheus writes values as strings ("NaN", "+Inf" too).
fn point(p: &Value) -> (f64, f64) {
    let t = p[0].as_f64().unwrap_or(f64::NAN);
    let v = p[1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    (t, v)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One PromQL expression of a Grafana dashboard, template variables substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardQuery {
    /// Where it comes from: `panel <id> "<title>" <refId>` or `variable <name>`.
    pub origin: String,
    /// The expression as Prometheus gets it.
    pub expr: String,
    /// Labels the expression groups by (`by (...)`, `label_values(.., label)`) other than
    /// `le`: each must appear in the result, or the panel's legend shows nothing.
    pub by: Vec<String>,
}

/// The PromQL of every panel target (rows' nested panels too) and of every `query` template
/// variable of the Grafana dashboard `json`, with the variables substituted as Grafana does
/// when each is set to "All":
/// - `$var`, `${var}`, `[[var]]`: the variable's `allValue` (the dashboards use `.*`, and every
///   use is a `=~` matcher), else `.*`;
/// - `$__rate_interval`, `$__interval`, `$__range`: `rate_window` (a window that covers the
///   traffic of a test: Grafana's own value depends on the panel's width and time range);
/// - `label_values(<selector>, <label>)` (Grafana's variable function, not PromQL):
///   `group by (<label>) (<selector>)`, which returns one series per value Grafana would list.
pub fn dashboard_queries(json: &str, rate_window: &str) -> Result<Vec<DashboardQuery>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for var in v["templating"]["list"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_string();
        let all = var["allValue"].as_str().unwrap_or(".*").to_string();
        vars.push((name.clone(), all));
        if var["type"] != "query" {
            continue;
        }
        let q = match &var["query"] {
            Value::String(s) => s.clone(),
            o => o["query"].as_str().unwrap_or_default().to_string(),
        };
        if q.is_empty() {
            continue;
        }
        out.push((format!("variable {name}"), q));
    }
    let mut panels: Vec<&Value> = v["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((
                    format!(
                        "panel {} \"{}\" {}",
                        p["id"],
                        p["title"].as_str().unwrap_or_default(),
                        t["refId"].as_str().unwrap_or_default()
                    ),
                    e.to_string(),
                ));
            }
        }
    }
    // Longest names first, so `$service` never eats the start of `$service_name`.
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    out.into_iter()
        .map(|(origin, expr)| {
            let mut e = expr;
            for w in ["$__rate_interval", "$__interval", "$__range"] {
                e = e.replace(w, rate_window);
            }
            for (name, all) in &vars {
                for form in [
                    format!("${{{name}}}"),
                    format!("[[{name}]]"),
                    format!("${name}"),
                ] {
                    e = e.replace(&form, all);
                }
            }
            let mut by = group_labels(&e);
            if let Some(rest) = e.trim().strip_prefix("label_values(") {
                let body = rest.strip_suffix(')').ok_or(format!("{origin}: {e}"))?;
                let (sel, label) = body.rsplit_once(',').ok_or(format!("{origin}: {e}"))?;
                let label = label.trim().to_string();
                e = format!("group by ({label}) ({})", sel.trim());
                by = vec![label];
            }
            if e.contains('$') {
                return Err(format!("{origin}: a variable is left in {e}"));
            }
            Ok(DashboardQuery {
                origin,
                expr: e,
                by,
            })
        })
        .collect()
}

/// The labels of every `by (...)` clause, `le` aside (histogram_quantile consumes it).
fn group_labels(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("by (") {
        rest = &rest[i + 4..];
        let Some(end) = rest.find(')') else { break };
        for l in rest[..end].split(',').map(str::trim) {
            if !l.is_empty() && l != "le" && !out.iter().any(|o| o == l) {
                out.push(l.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_promql() {
        assert_eq!(
            url_encode(r#"sum by (a) (x{b=~"c|d"}[5s])"#),
            "sum%20by%20%28a%29%20%28x%7Bb%3D~%22c%7Cd%22%7D%5B5s%5D%29"
        );
    }

    #[test]
    fn substitutes_variables_and_rewrites_label_values() {
        let json = r#"{"templating":{"list":[
            {"name":"datasource","type":"datasource","query":"prometheus"},
            {"name":"service","type":"query","allValue":".*",
             "query":{"query":"label_values(m{p=~\"a|b\"}, destination_service_name)"}},
            {"name":"service_ns","type":"custom","query":"x"}]},
          "panels":[{"id":1,"title":"T","targets":[{"refId":"A",
             "expr":"histogram_quantile(0.5, sum by (le, s) (rate(m{s=~\"$service\",n=~\"${service_ns}\"}[$__rate_interval])))"}]},
           {"id":2,"type":"row","panels":[{"id":3,"title":"U","targets":[{"refId":"B","expr":"sum(m{s=~\"[[service]]\"})"}]}]}]}"#;
        let q = dashboard_queries(json, "30s").unwrap();
        assert_eq!(q.len(), 3, "{q:?}");
        assert_eq!(q[0].origin, "variable service");
        assert_eq!(
            q[0].expr,
            r#"group by (destination_service_name) (m{p=~"a|b"})"#
        );
        assert_eq!(q[0].by, ["destination_service_name"]);
        let p1 = q.iter().find(|q| q.origin.starts_with("panel 1")).unwrap();
        assert_eq!(
            p1.expr,
            r#"histogram_quantile(0.5, sum by (le, s) (rate(m{s=~".*",n=~".*"}[30s])))"#
        );
        assert_eq!(p1.by, ["s"]);
        let p3 = q.iter().find(|q| q.origin.starts_with("panel 3")).unwrap();
        assert_eq!(p3.expr, r#"sum(m{s=~".*"})"#);
        assert!(p3.by.is_empty());
    }
}
