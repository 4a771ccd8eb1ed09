//! The usual `process_*` metrics of a Prometheus client (the names every dashboard and alert
//! knows: `process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read from Linux's
//! `/proc/self` at scrape time. `prometheus-client` does not ship a process collector; this is
//! the small Linux part of one. A field `/proc` does not give (another OS) is left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS: f64 = 100.0;

/// Registers with [`prometheus_client::registry::Registry::register_collector`].
#[derive(Debug)]
pub struct ProcessCollector;

/// What one scrape reads.
#[derive(Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: i64,
    pub threads: i64,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

/// Parses `/proc/self/stat` (fields after the `(comm)`, which may hold spaces) and the rest.
pub fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut s = parse_stat(&stat)?;
    s.resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| kib_field(&t, "VmRSS:"))
        .map(|k| k * 1024);
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    s.start_time_seconds = boot.zip(s.start_time_seconds).map(|(b, t)| b + t);
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as i64);
    s.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
    Some(s)
}

fn kib_field(text: &str, key: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `proc(5)`: after `(comm)`, field 3 is the state; utime 14, stime 15, num_threads 20,
/// starttime 22 (ticks after boot), vsize 23 (bytes). `start_time_seconds` holds the ticks
/// after boot in seconds until [`sample`] adds the boot time.
fn parse_stat(stat: &str) -> Option<Sample> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) / TICKS,
        virtual_bytes: field(23)? as i64,
        threads: field(20)? as i64,
        start_time_seconds: Some(field(22)? / TICKS),
        ..Sample::default()
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = sample() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, v: Option<f64>| match v {
            Some(v) => {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
            }
            None => Ok(()),
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            s.resident_bytes.map(|v| v as f64),
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            Some(s.virtual_bytes as f64),
        )?;
        gauge(
            "process_threads",
            "Number of OS threads in the process",
            Some(s.threads as f64),
        )?;
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            s.start_time_seconds,
        )?;
        gauge(
            "process_open_fds",
            "Number of open file descriptors",
            s.open_fds.map(|v| v as f64),
        )?;
        gauge(
            "process_max_fds",
            "Maximum number of open file descriptors",
            s.max_fds.map(|v| v as f64),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_comm_with_spaces() {
        // proc(5) layout; comm "(a b) c" has spaces and a parenthesis.
        let line = "1234 ((a b) c) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 12345 987654321 2000 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.threads, 7);
        assert_eq!(s.virtual_bytes, 987_654_321);
        assert_eq!(s.start_time_seconds, Some(123.45));
    }

    #[test]
    fn this_process_reads() {
        let s = sample().unwrap();
        assert!(s.resident_bytes.unwrap() > 0);
        assert!(s.threads >= 1);
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.start_time_seconds.unwrap() > 1.6e9);
    }
}
