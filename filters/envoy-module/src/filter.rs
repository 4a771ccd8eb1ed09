//! Per-connection glue of the network filter, written against [`NetworkHost`] only.
//!
//! Today it is a pass-through observer that sits before `tcp_proxy`: it counts bytes each way
//! and, for Redis, whole commands; it never changes or holds the stream (every data hook
//! returns Continue). `tcp_proxy` consumes the whole read buffer on every `onData` (it asserts
//! so), hence each read hook sees only new bytes and the streaming counter sees every byte once.

use crate::config::{Config, Protocol};
use crate::host::{CalloutOutcome, Direction, Level, NetworkHost};
use crate::resp::{RespCounter, ValueCounter};
use std::sync::Arc;

/// What a data hook tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// One connection's state.
#[derive(Debug)]
pub struct Filter {
    config: Arc<Config>,
    commands: Option<RespCounter>,
    protocol_error_counted: bool,
    probes_in_flight: u32,
}

impl Filter {
    pub fn new(config: Arc<Config>) -> Self {
        let commands = match config.protocol {
            Protocol::Redis => Some(RespCounter::new()),
            _ => None,
        };
        Filter {
            config,
            commands,
            protocol_error_counted: false,
            probes_in_flight: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn on_new_connection(&mut self, host: &mut impl NetworkHost) -> Flow {
        host.increment_counter(self.config.metrics.connections, 1);
        Flow::Continue
    }

    /// Client bytes arrived; `len` is the size of Envoy's read buffer.
    pub fn on_read(&mut self, host: &mut impl NetworkHost, len: usize, _end_stream: bool) -> Flow {
        let config = Arc::clone(&self.config);
        let m = &config.metrics;
        if len > 0 {
            host.increment_counter(m.downstream_rx_bytes, len as u64);
            host.record_histogram(m.downstream_read_bytes, len as u64);
        }
        let mut probe_hit = false;
        let mut done = 0u64;
        {
            let chunks = host.chunks(Direction::Downstream);
            if let Some(marker) = &config.panic_on {
                if contains(&chunks, marker) {
                    // Test-only (see config docs): proves the hooks contain panics.
                    panic!("test-only panic marker seen in client bytes");
                }
            }
            if let Some(probe) = &config.probe {
                probe_hit = contains(&chunks, &probe.on);
            }
            if !probe_hit {
                if let Some(counter) = &mut self.commands {
                    done = chunks.iter().map(|c| counter.feed(c)).sum();
                }
            }
        }
        if done > 0 {
            host.increment_counter(m.commands, done);
        }
        if let Some(counter) = &self.commands {
            if counter.broken() && !self.protocol_error_counted {
                self.protocol_error_counted = true;
                host.increment_counter(m.protocol_errors, 1);
            }
        }
        if probe_hit {
            return self.start_probe(host);
        }
        Flow::Continue
    }

    /// Upstream bytes are about to be written to the client.
    pub fn on_write(&mut self, host: &mut impl NetworkHost, len: usize, _end_stream: bool) -> Flow {
        if len > 0 {
            host.increment_counter(self.config.metrics.upstream_rx_bytes, len as u64);
        }
        Flow::Continue
    }

    /// The test probe: take the client's bytes out of the stream and ask the bridge instead.
    fn start_probe(&mut self, host: &mut impl NetworkHost) -> Flow {
        let config = Arc::clone(&self.config);
        let Some(probe) = &config.probe else {
            return Flow::Continue;
        };
        let held = host.buffered(Direction::Downstream);
        host.drain(Direction::Downstream, held);
        let headers: [(&str, &[u8]); 4] = [
            (":method", b"POST"),
            (":path", b"/meltemi/probe"),
            ("host", probe.cluster.as_bytes()),
            ("content-type", b"application/octet-stream"),
        ];
        match host.http_callout(&probe.cluster, &headers, &probe.body, probe.timeout_ms) {
            Ok(_) => self.probes_in_flight += 1,
            Err(e) => {
                host.increment_counter(config.metrics.callouts_failed, 1);
                host.log(
                    Level::Warn,
                    &format!(
                        "meltemi: probe callout to {} not started: {e:?}",
                        probe.cluster
                    ),
                );
                host.write_to_client(b"-ERR meltemi probe failed\r\n", false);
            }
        }
        Flow::Stop
    }

    /// A callout finished. `status` is the `:status` of the answer, if any.
    pub fn on_callout_done(
        &mut self,
        host: &mut impl NetworkHost,
        outcome: CalloutOutcome,
        status: Option<&[u8]>,
        body: &[&[u8]],
    ) {
        self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        let m = &self.config.metrics;
        if outcome == CalloutOutcome::Success && status == Some(b"200") {
            host.increment_counter(m.callouts_ok, 1);
            for chunk in body {
                host.write_to_client(chunk, false);
            }
        } else {
            host.increment_counter(m.callouts_failed, 1);
            host.write_to_client(b"-ERR meltemi probe failed\r\n", false);
        }
    }
}

/// True if `needle` occurs in the concatenation of `chunks`.
fn contains(chunks: &[&[u8]], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return false;
    }
    let find = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    match chunks {
        [] => false,
        [one] => find(one),
        // Rare (only with a marker configured and data split across chunks): copy to search
        // across chunk borders.
        many => find(&many.concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeNetworkHost, FakeRegistry};
    use crate::host::Close;

    fn config(json: &str) -> Arc<Config> {
        Arc::new(Config::parse(json.as_bytes(), &mut FakeRegistry::default()).unwrap())
    }

    fn read(f: &mut Filter, h: &mut FakeNetworkHost, chunks: &[&[u8]]) -> Flow {
        h.downstream = chunks.iter().map(|c| c.to_vec()).collect();
        let len = h.buffered(Direction::Downstream);
        let flow = f.on_read(h, len, false);
        // tcp_proxy consumes everything after a Continue.
        if flow == Flow::Continue {
            h.downstream.clear();
        }
        flow
    }

    #[test]
    fn counts_bytes_and_commands_across_reads_and_chunks() {
        let cfg = config(r#"{"protocol":"redis"}"#);
        let m = cfg.metrics;
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        assert_eq!(f.on_new_connection(&mut h), Flow::Continue);
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        assert_eq!(
            read(&mut f, &mut h, &[&set[..10], &set[10..20]]),
            Flow::Continue
        );
        assert_eq!(h.counter(m.commands), 0);
        assert_eq!(
            read(
                &mut f,
                &mut h,
                &[&set[20..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"]
            ),
            Flow::Continue
        );
        assert_eq!(h.counter(m.commands), 2);
        assert_eq!(h.counter(m.downstream_rx_bytes), set.len() as u64 + 20);
        h.upstream = vec![b"+OK\r\n$1\r\nv\r\n".to_vec()];
        assert_eq!(f.on_write(&mut h, 12, false), Flow::Continue);
        assert_eq!(h.counter(m.upstream_rx_bytes), 12);
        assert_eq!(h.counter(m.connections), 1);
        assert!(h.closed.is_none() && h.written_to_client.is_empty());
    }

    #[test]
    fn non_resp_bytes_count_one_protocol_error_and_pass() {
        let cfg = config(r#"{"protocol":"redis"}"#);
        let m = cfg.metrics;
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        assert_eq!(read(&mut f, &mut h, &[b"*2\r\nxx\r\n"]), Flow::Continue);
        assert_eq!(read(&mut f, &mut h, &[b"more"]), Flow::Continue);
        assert_eq!(h.counter(m.protocol_errors), 1);
    }

    #[test]
    fn tcp_protocol_counts_bytes_only() {
        let cfg = config(r#"{"protocol":"tcp"}"#);
        let m = cfg.metrics;
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        read(&mut f, &mut h, &[b"*1\r\n$4\r\nPING\r\n"]);
        assert_eq!(h.counter(m.commands), 0);
        assert_eq!(h.counter(m.downstream_rx_bytes), 14);
    }

    #[test]
    #[should_panic(expected = "test-only panic marker")]
    fn panic_marker_panics_even_across_chunks() {
        let mut f = Filter::new(config(r#"{"protocol":"redis","panic_on":"MELTEMI-PANIC"}"#));
        let mut h = FakeNetworkHost::default();
        read(&mut f, &mut h, &[b"xxMELTEMI-", b"PANICyy"]);
    }

    #[test]
    fn probe_drains_calls_out_and_answers_the_client() {
        let cfg =
            config(r#"{"protocol":"redis","probe":{"on":"MELTEMI-PROBE","cluster":"bridge"}}"#);
        let m = cfg.metrics;
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost::default();
        assert_eq!(read(&mut f, &mut h, &[b"MELTEMI-PROBE\r\n"]), Flow::Stop);
        assert!(
            h.downstream.is_empty(),
            "probe bytes never reach the upstream"
        );
        let c = &h.callouts[0];
        assert_eq!(c.cluster, "bridge");
        assert_eq!(c.body, b"*1\r\n$4\r\nPING\r\n");
        assert!(c.headers.iter().any(|(k, v)| k == "host" && v == b"bridge"));
        f.on_callout_done(
            &mut h,
            CalloutOutcome::Success,
            Some(b"200"),
            &[b"+PO", b"NG\r\n"],
        );
        assert_eq!(h.written_to_client, b"+PONG\r\n");
        assert_eq!(h.counter(m.callouts_ok), 1);
        f.on_callout_done(&mut h, CalloutOutcome::Success, Some(b"503"), &[]);
        assert_eq!(h.counter(m.callouts_failed), 1);
        assert!(h.closed.is_none());
    }

    #[test]
    fn probe_that_cannot_start_answers_an_error() {
        let cfg = config(r#"{"protocol":"redis","probe":{"on":"P!","cluster":"nope"}}"#);
        let m = cfg.metrics;
        let mut f = Filter::new(cfg);
        let mut h = FakeNetworkHost {
            fail_callout: Some(crate::host::CalloutError::ClusterNotFound),
            ..Default::default()
        };
        assert_eq!(read(&mut f, &mut h, &[b"P!"]), Flow::Stop);
        assert_eq!(h.counter(m.callouts_failed), 1);
        assert!(h.written_to_client.starts_with(b"-ERR"));
        assert!(h.logs.borrow()[0].1.contains("ClusterNotFound"));
        assert_ne!(h.closed, Some(Close::NoFlush));
    }
}
