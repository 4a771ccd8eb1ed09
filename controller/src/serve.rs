//! The controller's HTTP endpoint: versioned route tables for the dynamic module (route changes
//! without a listener update), the controller's own Prometheus metrics, and health.
//!
//! `GET /routes/v1/<stat_prefix>` answers the listener's `RouteTable` as JSON with `ETag: "<version>"`;
//! `If-None-Match` with the current version answers 304 (a poll costs a few bytes).
//! `GET /routes/v1` lists `{stat_prefix: version}`. `GET /metrics`, `GET /healthz`.
//!
//! Versions: a table's version grows by one whenever its content changes, starting from the
//! store's creation time in milliseconds, so a restarted controller still serves higher versions
//! than any table a filter holds. The HTTP/1.1 handling is deliberately minimal (GET only, no
//! bodies, keep-alive); it faces the sidecars' callouts and Prometheus, not browsers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use meltemi_proto::RouteTable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct Entry {
    table: RouteTable,
    json: Arc<String>,
}

/// Route tables by stat prefix, with versions assigned on change.
#[derive(Debug)]
pub struct RouteStore {
    floor: u64,
    tables: RwLock<BTreeMap<String, Entry>>,
}

impl RouteStore {
    pub fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::with_floor(now)
    }

    /// Versions start above `floor` (tests use a fixed one).
    pub fn with_floor(floor: u64) -> Self {
        Self {
            floor,
            tables: RwLock::new(BTreeMap::new()),
        }
    }

    /// Replaces the set of tables; returns the keys whose version changed. A table that disappears
    /// is served empty (with a new version) so filters drop its routes.
    pub fn update(&self, new: &BTreeMap<String, RouteTable>) -> Vec<String> {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        let mut changed = Vec::new();
        let keys: Vec<String> = tables.keys().chain(new.keys()).cloned().collect();
        for key in keys {
            let entry = tables.entry(key.clone()).or_default();
            // The primary cluster is the table's likeliest destination; a filter whose listener
            // (tcp_proxy) has another keeps its own and detours this one. A table that
            // disappears keeps the one it had.
            let (services, primary_cluster) = match new.get(&key) {
                Some(t) => (t.services.clone(), t.primary_cluster.clone()),
                None => (Vec::new(), entry.table.primary_cluster.clone()),
            };
            if entry.table.version != 0
                && entry.table.services == services
                && entry.table.primary_cluster == primary_cluster
            {
                continue;
            }
            let version = (entry.table.version + 1)
                .max(self.floor + 1)
                .max(new.get(&key).map(|t| t.version).unwrap_or(0));
            entry.table = RouteTable {
                version,
                services,
                primary_cluster,
                retry_budget: None,
            };
            entry.json = Arc::new(entry.table.to_json());
            changed.push(key);
        }
        changed.sort();
        changed.dedup();
        changed
    }

    pub fn get(&self, key: &str) -> Option<(u64, Arc<String>)> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.get(key).map(|e| (e.table.version, e.json.clone()))
    }

    pub fn versions(&self) -> BTreeMap<String, u64> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables
            .iter()
            .map(|(k, e)| (k.clone(), e.table.version))
            .collect()
    }
}

impl Default for RouteStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The controller's own metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    pub reconcile_errors: AtomicU64,
    pub applied: AtomicU64,
    pub pruned: AtomicU64,
    pub route_requests: AtomicU64,
    pub route_not_modified: AtomicU64,
    pub route_updates: AtomicU64,
}

impl Metrics {
    fn render(&self, store: &RouteStore) -> String {
        let c = |n: &str, help: &str, v: &AtomicU64| {
            format!(
                "# HELP meltemi_{n} {help}\n# TYPE meltemi_{n} counter\nmeltemi_{n} {}\n",
                v.load(Ordering::Relaxed)
            )
        };
        let mut s = String::new();
        s += &c("reconciles_total", "Reconcile passes.", &self.reconciles);
        s += &c(
            "reconcile_errors_total",
            "Reconcile passes that failed (retried with backoff).",
            &self.reconcile_errors,
        );
        s += &c(
            "envoyfilters_applied_total",
            "EnvoyFilters applied (server-side apply).",
            &self.applied,
        );
        s += &c(
            "envoyfilters_pruned_total",
            "EnvoyFilters deleted because nothing renders them any more.",
            &self.pruned,
        );
        s += &c(
            "route_requests_total",
            "Route table requests served.",
            &self.route_requests,
        );
        s += &c(
            "route_not_modified_total",
            "Route table requests answered 304.",
            &self.route_not_modified,
        );
        s += &c(
            "route_table_updates_total",
            "Route table versions published.",
            &self.route_updates,
        );
        let v = store.versions();
        s +=
            "# HELP meltemi_route_tables Route tables served.\n# TYPE meltemi_route_tables gauge\n";
        s += &format!("meltemi_route_tables {}\n", v.len());
        s
    }
}

/// Shared state of the endpoint.
#[derive(Debug, Default)]
pub struct Shared {
    pub store: RouteStore,
    pub metrics: Metrics,
}

/// Serves until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = handle(conn, &shared).await;
        });
    }
}

const MAX_HEAD: usize = 16 * 1024;

async fn handle(mut conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                return conn.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
            }
            let mut chunk = [0u8; 2048];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut if_none_match = None;
        let mut close = request_line.ends_with("HTTP/1.0");
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "if-none-match" => if_none_match = Some(v.to_string()),
                    "connection" => close = v.eq_ignore_ascii_case("close"),
                    "content-length" if v != "0" => close = true, // no bodies expected
                    _ => {}
                }
            }
        }
        let path = target.split('?').next().unwrap_or("");
        let (status, ctype, etag, body) = respond(method, path, if_none_match.as_deref(), shared);
        let mut resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(e) = etag {
            resp += &format!("etag: \"{e}\"\r\n");
        }
        if close {
            resp += "connection: close\r\n";
        }
        resp += "\r\n";
        conn.write_all(resp.as_bytes()).await?;
        conn.write_all(body.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

fn respond(
    method: &str,
    path: &str,
    if_none_match: Option<&str>,
    shared: &Shared,
) -> (&'static str, &'static str, Option<u64>, String) {
    const JSON: &str = "application/json";
    if method != "GET" && method != "HEAD" {
        return (
            "405 Method Not Allowed",
            "text/plain",
            None,
            "GET only\n".into(),
        );
    }
    match path {
        "/healthz" | "/readyz" => ("200 OK", "text/plain", None, "ok\n".into()),
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4",
            None,
            shared.metrics.render(&shared.store),
        ),
        "/routes/v1" | "/routes/v1/" => (
            "200 OK",
            JSON,
            None,
            serde_json::to_string(&shared.store.versions()).unwrap_or_default(),
        ),
        p => match p.strip_prefix("/routes/v1/") {
            None => ("404 Not Found", "text/plain", None, "not found\n".into()),
            Some(key) => {
                shared
                    .metrics
                    .route_requests
                    .fetch_add(1, Ordering::Relaxed);
                match shared.store.get(key) {
                    None => (
                        "404 Not Found",
                        "text/plain",
                        None,
                        format!("no route table {key:?}\n"),
                    ),
                    Some((v, _))
                        if if_none_match.map(|t| t.trim_matches('"'))
                            == Some(v.to_string().as_str()) =>
                    {
                        shared
                            .metrics
                            .route_not_modified
                            .fetch_add(1, Ordering::Relaxed);
                        ("304 Not Modified", JSON, Some(v), String::new())
                    }
                    Some((v, json)) => ("200 OK", JSON, Some(v), json.as_ref().clone()),
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meltemi_proto::{Route, RouteAction, ServiceRoutes};

    fn table(cluster: &str) -> RouteTable {
        RouteTable {
            version: 3,
            primary_cluster: "outbound|1||p".into(),
            retry_budget: None,
            services: vec![ServiceRoutes {
                name: "*".into(),
                routes: vec![Route {
                    name: "r".into(),
                    action: Some(RouteAction::cluster(cluster)),
                    ..Default::default()
                }],
                rate_limit: None,
            }],
        }
    }

    #[test]
    fn versions_grow_only_on_change() {
        let store = RouteStore::with_floor(1000);
        let mut m = BTreeMap::from([("a".to_string(), table("x"))]);
        assert_eq!(store.update(&m), ["a"]);
        assert_eq!(store.get("a").unwrap().0, 1001);
        assert!(store.update(&m).is_empty());
        m.insert("a".into(), table("y"));
        assert_eq!(store.update(&m), ["a"]);
        assert_eq!(store.get("a").unwrap().0, 1002);
        // Removed: served empty with a new version.
        assert_eq!(store.update(&BTreeMap::new()), ["a"]);
        let (v, json) = store.get("a").unwrap();
        assert_eq!(v, 1003);
        let served = RouteTable::from_json(&json).unwrap();
        assert_eq!(served.services.len(), 0);
        // The listener's primary cluster is served (filters refuse any other), also when empty.
        assert_eq!(served.primary_cluster, "outbound|1||p");
    }

    #[tokio::test]
    async fn http_get_etag_and_keepalive() {
        let shared = Arc::new(Shared {
            store: RouteStore::with_floor(10),
            metrics: Metrics::default(),
        });
        shared
            .store
            .update(&BTreeMap::from([("out_1".to_string(), table("x"))]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, shared.clone()));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /routes/v1/out_1 HTTP/1.1\r\nhost: x\r\n\r\nGET /routes/v1/out_1 HTTP/1.1\r\nif-none-match: \"11\"\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        assert!(got.contains("etag: \"11\""), "{got}");
        assert!(got.contains(r#"{"version":"11","services":[{"name":"*","routes":[{"name":"r","action":{"cluster":"x"}}]}],"primaryCluster":"outbound|1||p"}"#), "{got}");
        assert!(got.contains("HTTP/1.1 304 Not Modified"), "{got}");
        assert_eq!(shared.metrics.route_not_modified.load(Ordering::Relaxed), 1);
    }
}
