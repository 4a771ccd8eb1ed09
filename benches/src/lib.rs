//! Benchmarks live in `benches/benches/` (criterion, per codec) and `src/bin/` (the end-to-end
//! harnesses through the real Envoy). This library holds what the harnesses share.
#![forbid(unsafe_code)]

pub mod driver;

/// Measurement helpers shared by the end-to-end harnesses (`e2e-*`).
pub mod e2e {
    /// Envoy's CPU time so far, in ns: the sum over its threads of `/proc/<pid>/task/*/schedstat`.
    pub fn envoy_cpu_ns(pid: u32) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Busy and total jiffies of CPU 0 (from `/proc/stat`), to see how much of CPU 0 others took.
    pub fn cpu0_jiffies() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu0 ")) else {
            return (0, 0);
        };
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (total - idle, total)
    }

    /// Traffic shapes from `--shapes 1x16,16x1` (connections x requests in flight each); the
    /// default when `arg` is `None`.
    pub fn shapes(arg: Option<String>) -> Vec<(usize, usize)> {
        arg.unwrap_or_else(|| "1x16,16x1".into())
            .split(',')
            .filter_map(|s| {
                let (c, d) = s.split_once('x')?;
                Some((c.parse().ok()?, d.parse().ok()?))
            })
            .collect()
    }

    /// Shared by the end-to-end harnesses.
    pub fn median(mut v: Vec<f64>) -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }

    /// Shared by the end-to-end harnesses.
    pub fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// CPUs online (not `available_parallelism`, which sees this process's pinning).
    pub fn online_cpus() -> String {
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Checks, before the first round, that the Envoy binary and the artifacts the selected
    /// set-ups load (`module`: the `.so`, `wasm`: the `.wasm`, `extra`: other files, e.g. a
    /// baseline's) are there; otherwise says what is missing and how to get it, and exits with
    /// status 2.
    pub fn require(harness: &str, module: bool, wasm: bool, extra: &[std::path::PathBuf]) {
        use meltemi_testkit::artifacts::{find_module, find_wasm, BUILD_HINT};
        let mut missing = Vec::new();
        if let Err(e) = meltemi_testkit::find_envoy_binary() {
            missing.push(e);
        }
        let artifact = |found: Result<std::path::PathBuf, std::path::PathBuf>, what: &str| {
            found
                .err()
                .map(|p| format!("{what} {} is missing: {BUILD_HINT}", p.display()))
        };
        if module {
            missing.extend(artifact(find_module(), "the dynamic module"));
        }
        if wasm {
            missing.extend(artifact(find_wasm(), "the wasm filter"));
        }
        for p in extra.iter().filter(|p| !p.is_file()) {
            missing.push(format!("{} is missing", p.display()));
        }
        if !missing.is_empty() {
            eprintln!("{harness}: cannot run, nothing measured:");
            for m in &missing {
                eprintln!("- {m}");
            }
            std::process::exit(2);
        }
    }

    /// Shared by the end-to-end harnesses.
    pub fn free_listen_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
