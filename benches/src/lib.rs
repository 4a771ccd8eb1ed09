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

    /// Shared by the end-to-end harnesses.
    pub fn free_listen_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
