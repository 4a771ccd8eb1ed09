//! The controller's HTTP endpoint: versioned route tables for the dynamic module (route changes
//! without a listener update), the controller's own Prometheus metrics, and health.
//!
//! `GET /routes/v1/<stat_prefix>` answers the listener's `RouteTable` as JSON with `ETag: "<version>"`;
//! `If-None-Match` with the current version answers 304 (a poll costs a few bytes).
//! `GET /routes/v1` lists `{stat_prefix: version}`. `GET /metrics`, `GET /healthz`.
//!
//! Versions: a table's version grows by one whenever its content changes, starting from the
//! store's creation time in milliseconds, so a restarted controller still serves higher versions
//! than any table a filter holds. Served by axum (hyper: HTTP/1.1 with keep-alive and HTTP/2), with
//! a request timeout, a bound on concurrent requests and graceful shutdown; it faces the
//! sidecars' callouts and Prometheus.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use meltemi_proto::RouteTable;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

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

/// The controller's own metrics, in Prometheus naming (`meltemi_*_total` counters), plus the
/// usual `process_*` metrics; encoded by `prometheus-client` (OpenMetrics text).
#[derive(Debug, Default)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub applied: Counter,
    pub pruned: Counter,
    pub route_requests: Counter,
    pub route_not_modified: Counter,
    pub route_updates: Counter,
}

impl Metrics {
    /// The metrics as OpenMetrics text.
    fn render(&self, store: &RouteStore) -> String {
        let mut r = Registry::default();
        let mut counter = |name: &str, help: &str, c: &Counter| {
            r.register(name, help, c.clone());
        };
        counter("meltemi_reconciles", "Reconcile passes", &self.reconciles);
        counter(
            "meltemi_reconcile_errors",
            "Reconcile passes that failed (retried with backoff)",
            &self.reconcile_errors,
        );
        counter(
            "meltemi_envoyfilters_applied",
            "EnvoyFilters applied (server-side apply)",
            &self.applied,
        );
        counter(
            "meltemi_envoyfilters_pruned",
            "EnvoyFilters deleted because nothing renders them any more",
            &self.pruned,
        );
        counter(
            "meltemi_route_requests",
            "Route table requests served",
            &self.route_requests,
        );
        counter(
            "meltemi_route_not_modified",
            "Route table requests answered 304",
            &self.route_not_modified,
        );
        counter(
            "meltemi_route_table_updates",
            "Route table versions published",
            &self.route_updates,
        );
        let tables = Gauge::<i64>::default();
        tables.set(store.versions().len() as i64);
        r.register("meltemi_route_tables", "Route tables served", tables);
        r.register_collector(Box::new(crate::process::ProcessCollector));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

/// Shared state of the endpoint.
#[derive(Debug, Default)]
pub struct Shared {
    pub store: RouteStore,
    pub metrics: Metrics,
}

/// How long one request may take before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests served at once; more wait (the sidecars poll every few seconds each).
const MAX_CONCURRENT: usize = 1024;

/// The endpoint as an axum router (HTTP/1.1 with keep-alive, and HTTP/2).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/routes/v1", get(list))
        .route("/routes/v1/", get(list))
        .route("/routes/v1/{key}", get(route_table))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(
            ServiceBuilder::new()
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                ))
                .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT)),
        )
        .with_state(shared)
}

/// Serves until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    serve_until(listener, shared, std::future::pending()).await
}

/// Serves until `shutdown` completes, then finishes the requests in progress (graceful).
pub async fn serve_until(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(&shared.store),
    )
}

async fn list(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.store.versions()).into_response()
}

async fn route_table(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    shared.metrics.route_requests.inc();
    let Some((version, json)) = shared.store.get(&key) else {
        return (StatusCode::NOT_FOUND, format!("no route table {key:?}\n")).into_response();
    };
    let etag = format!("\"{version}\"");
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"'));
    let json_type = (header::CONTENT_TYPE, "application/json".to_string());
    if held == Some(version.to_string().as_str()) {
        shared.metrics.route_not_modified.inc();
        return (StatusCode::NOT_MODIFIED, [json_type, (header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [json_type, (header::ETAG, etag)],
        json.as_ref().clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meltemi_proto::{Route, RouteAction, ServiceRoutes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

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
        assert_eq!(shared.metrics.route_not_modified.get(), 1);
    }

    async fn start() -> (Arc<Shared>, std::net::SocketAddr) {
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
        (shared, addr)
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_with_process_metrics() {
        let (shared, addr) = start().await;
        shared.metrics.reconciles.inc();
        let got = get(addr, "/metrics").await;
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        assert!(got.contains("application/openmetrics-text"), "{got}");
        for line in [
            "# TYPE meltemi_reconciles counter",
            "meltemi_reconciles_total 1",
            "meltemi_route_tables 1",
            "# TYPE process_cpu_seconds counter",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "# EOF",
        ] {
            assert!(got.contains(line), "{line:?} missing in {got}");
        }
        let missing = get(addr, "/nope").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let health = get(addr, "/healthz").await;
        assert!(
            health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
            "{health}"
        );
    }

    /// HTTP/2 without TLS (prior knowledge), as a gRPC client on the same server stack would
    /// speak it; checked with curl's own HTTP/2 client.
    #[tokio::test]
    async fn http2_prior_knowledge() {
        let (_shared, addr) = start().await;
        let url = format!("http://{addr}/routes/v1/out_1");
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-s", "-i", "--http2-prior-knowledge", &url])
                .output()
        })
        .await
        .unwrap()
        .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/2 200"), "{text}");
        assert!(text.contains("etag: \"11\""), "{text}");
    }

    #[tokio::test]
    async fn graceful_shutdown_ends_the_server() {
        let shared = Arc::new(Shared::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_until(listener, shared, async {
            let _ = stopped.await;
        }));
        assert!(get(addr, "/healthz").await.ends_with("ok\n"));
        stop.send(()).unwrap();
        let done = tokio::time::timeout(Duration::from_secs(5), server).await;
        // The server task ends (its listener is dropped): whether a connect to the port fails
        // afterwards is not asserted, another test may be handed the freed port at once.
        assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
    }
}
