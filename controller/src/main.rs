//! `meltemi`: the control plane command line.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use meltemi_controller::bootstrap::{bootstrap, BootstrapOptions};
use meltemi_controller::inputs::{AdapterChoice, Inputs, Settings};
use meltemi_controller::render::{render_all, to_yaml};
use meltemi_controller::serve::Shared;
use meltemi_controller::validate::{validate_with, Severity};
use meltemi_controller::{crd, mesh_bootstrap, reconcile, serve};

/// mimalloc: a render allocates and frees millions of small JSON nodes across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "meltemi",
    version,
    about = "Meltemi control plane: L7 traffic of Dubbo, Thrift, Kafka, ZooKeeper and Redis on stock Envoy/Istio"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Render EnvoyFilters from manifests (ServiceEntry, Service, DestinationRule, MetaRouter, ...).
    Render {
        #[command(flatten)]
        r: RenderArgs,
    },
    /// A complete Envoy bootstrap: listeners per service port, clusters per subset, our filters.
    Bootstrap {
        #[command(flatten)]
        r: RenderArgs,
        /// Listener port = service port + offset (unless annotated meltemi.io/listen-port).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        port_offset: i32,
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        listen_address: String,
        /// host:port of `meltemi serve-routes`; needs --route-discovery-cluster.
        #[arg(long)]
        routes_address: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
    /// Check manifests; every problem with its object and field path. Exit 1 on errors.
    Validate {
        #[command(flatten)]
        r: RenderArgs,
        /// Warnings (fields set but not applied, unknown fields, ...) are errors.
        #[arg(long)]
        strict: bool,
    },
    /// Serve versioned route tables rendered from a directory, re-rendering when files change.
    ServeRoutes {
        #[command(flatten)]
        r: RenderArgs,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// How often the directory is checked for changes.
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
    },
    /// The in-cluster controller.
    Run {
        #[command(flatten)]
        r: RenderArgs,
        /// Route tables, /metrics and /healthz.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: String,
    },
    /// Print our CRDs (deploy/crds.yaml).
    Crds,
    /// The ConfigMap a pod names in `sidecar.istio.io/bootstrapOverride` to add the module's
    /// route-discovery poller to its sidecar (one per namespace given).
    BootstrapOverride {
        #[arg(long, default_value = meltemi_controller::mesh_bootstrap::DEFAULT_NAME)]
        name: String,
        /// Namespaces of the opting pods (repeat the flag).
        #[arg(short = 'n', long = "namespace", required = true)]
        namespaces: Vec<String>,
        #[arg(long, default_value = "meltemi")]
        module_name: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
struct RenderArgs {
    /// Manifest directory or file (not used by `run`).
    #[arg(short = 'f', long = "filename")]
    dir: Option<PathBuf>,
    #[arg(long, default_value = "istio-system")]
    root_namespace: String,
    #[arg(long, value_enum, default_value_t = AdapterChoice::Auto)]
    adapter: AdapterChoice,
    #[arg(long, default_value = "/var/local/lib/meltemi/meltemi_wasm.wasm")]
    wasm_path: String,
    #[arg(long, default_value = "meltemi")]
    module_name: String,
    /// Do not patch virtualInbound.
    #[arg(long)]
    no_inbound: bool,
    /// Envoy cluster of the route endpoint; turns on route discovery (no listener update per route change).
    #[arg(long)]
    route_discovery_cluster: Option<String>,
    #[arg(long, default_value_t = 0)]
    route_refresh_ms: u32,
    #[arg(long)]
    access_log: bool,
    /// The mesh has auto mTLS off (meshConfig.enableAutoMtls: false): bridge twins stay plaintext
    /// unless a DestinationRule sets ISTIO_MUTUAL.
    #[arg(long)]
    no_auto_mtls: bool,
    /// Istio-style request metrics (needs deploy/istio/meshconfig-stats.yaml in the mesh).
    #[arg(long)]
    istio_metrics: bool,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Namespace of manifests that name none.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
}

impl RenderArgs {
    fn settings(&self) -> Settings {
        Settings {
            root_namespace: self.root_namespace.clone(),
            adapter: self.adapter,
            wasm_path: self.wasm_path.clone(),
            module_name: self.module_name.clone(),
            inbound: !self.no_inbound,
            route_discovery_cluster: self.route_discovery_cluster.clone(),
            route_refresh_ms: self.route_refresh_ms,
            access_log: self.access_log,
            auto_mtls: !self.no_auto_mtls,
            istio_metrics: self.istio_metrics,
            cluster_domain: self.cluster_domain.clone(),
            default_namespace: self.namespace.clone(),
        }
    }

    fn load(&self) -> Result<Inputs, String> {
        let dir = self.dir.as_deref().ok_or("-f DIR is required")?;
        let (inputs, errors) = Inputs::load_dir(dir, self.settings())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in &errors {
            eprintln!("error: {e}");
        }
        if errors.is_empty() {
            Ok(inputs)
        } else {
            Err(format!("{} manifest error(s)", errors.len()))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meltemi: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Render { r } => {
            let inputs = r.load()?;
            let out = render_all(&inputs).map_err(|e| e.to_string())?;
            let mut failed = false;
            for (k, rep) in &out.reports {
                for p in &rep.problems.errors {
                    failed = true;
                    eprintln!(
                        "error: {} {}/{}: {}: {}",
                        k.kind, k.namespace, k.name, p.path, p.message
                    );
                }
                for p in &rep.problems.warnings {
                    eprintln!(
                        "warning: {} {}/{}: {}: {}",
                        k.kind, k.namespace, k.name, p.path, p.message
                    );
                }
            }
            print!("{}", to_yaml(&out.filters));
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Bootstrap {
            r,
            port_offset,
            admin_port,
            listen_address,
            routes_address,
            output,
        } => {
            let inputs = r.load()?;
            let opts = BootstrapOptions {
                listen_address,
                port_offset,
                admin_port,
                routes_address,
            };
            let b = bootstrap(&inputs, &opts).map_err(|e| e.to_string())?;
            match output {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&b).map_err(|e| e.to_string())?
                ),
                Format::Yaml => print!(
                    "{}",
                    serde_yaml_ng::to_string(&b).map_err(|e| e.to_string())?
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Validate { r, strict } => {
            let dir = r.dir.as_deref().ok_or("-f DIR is required")?;
            let (inputs, errors) = Inputs::load_dir(dir, r.settings())
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let findings = validate_with(&inputs, &errors, strict);
            for f in &findings {
                println!("{f}");
            }
            let errors = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            let warnings = findings.len() - errors;
            println!(
                "{} object(s): {errors} error(s), {warnings} warning(s)",
                inputs.service_entries.len()
                    + inputs.services.len()
                    + inputs.destination_rules.len()
                    + inputs.virtual_services.len()
                    + inputs.meta_routers.len()
                    + inputs.redis_services.len()
                    + inputs.redis_destinations.len()
            );
            Ok(if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::ServeRoutes { r, listen, poll_ms } => {
            runtime()?.block_on(serve_routes(r, listen, poll_ms))
        }
        Cmd::Run { r, listen } => runtime()?.block_on(run(r, listen)),
        Cmd::Crds => {
            print!("{}", crd::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::BootstrapOverride {
            name,
            namespaces,
            module_name,
        } => {
            let mut text = String::new();
            for ns in &namespaces {
                let cm = mesh_bootstrap::config_map(&name, ns, &module_name);
                text += "---\n";
                text += &serde_yaml_ng::to_string(&cm).map_err(|e| e.to_string())?;
            }
            // An error (a closed pipe), not a panic as `print!` would.
            std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())
                .map_err(|e| format!("stdout: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

/// Newest modification time under `dir` (files and folders).
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(dir).ok()?;
    let mut newest = meta.modified().ok();
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            newest = newest.max(newest_mtime(&e.path()));
        }
    }
    newest
}

async fn serve_routes(r: RenderArgs, listen: String, poll_ms: u64) -> Result<ExitCode, String> {
    let shared = Arc::new(Shared::default());
    let dir = r.dir.clone().ok_or("-f DIR is required")?;
    let publish = |shared: &Shared| -> Result<(), String> {
        let inputs = r.load()?;
        let out = render_all(&inputs).map_err(|e| e.to_string())?;
        let changed = shared.store.update(&out.route_tables);
        shared.metrics.route_updates.inc_by(changed.len() as u64);
        for k in &changed {
            tracing::info!(table = %k, version = shared.store.get(k).map(|x| x.0).unwrap_or(0), "route table published");
        }
        Ok(())
    };
    publish(&shared)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    tracing::info!(%listen, "serving route tables");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve_until(listener, shared.clone(), async {
        let _ = stopped.await;
    }));
    let mut last = newest_mtime(&dir);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
        }
        let now = newest_mtime(&dir);
        if now != last {
            last = now;
            if let Err(e) = publish(&shared) {
                tracing::warn!(error = %e, "not published; keeping the previous tables");
            }
        }
    }
    stop_gracefully(stop, server).await;
    Ok(ExitCode::SUCCESS)
}

/// Stops the endpoint: no new connections, the requests in progress are answered (for at most
/// a few seconds).
async fn stop_gracefully(
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let _ = stop.send(());
    let abort = server.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        abort.abort();
    }
}

async fn run(r: RenderArgs, listen: String) -> Result<ExitCode, String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("kubernetes client: {e}"))?;
    let shared = Arc::new(Shared::default());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve_until(listener, shared.clone(), async {
        let _ = stopped.await;
    }));
    reconcile::run(client, r.settings(), shared, shutdown_signal()).await;
    stop_gracefully(stop, server).await;
    Ok(ExitCode::SUCCESS)
}
