//! The safe host layer: small traits the glue code is written against, and the plain types they
//! speak in. Split three ways:
//! - this file: the traits ([`NetworkHost`], [`BridgeHost`], [`MetricsRegistry`]) and plain
//!   types; no `unsafe` and nothing of Envoy.
//! - `envoy`: their implementation over Envoy's raw pointers. Every `unsafe` block of the
//!   crate that calls into Envoy lives there (the exported hooks in `crate::ffi` hold the rest:
//!   turning Envoy's opaque pointers back into our objects). Re-exported here.
//! - `fake` (test builds): in-memory hosts that record what the glue did.
//!
//! Lifetimes: an [`EnvoyNetworkHost`] / [`EnvoyBridgeHost`] is built at the start of one event
//! hook and dropped at its end. Buffers Envoy lends are only valid until the hook returns, so the
//! slices handed out borrow the host value and cannot escape the hook.

use std::fmt;

// The only file of the host layer with `unsafe` (see the module docs).
#[allow(unsafe_code)]
mod envoy;
#[cfg(test)]
pub mod fake;

pub use envoy::{
    bootstrap_callout, log, ConfigStats, EnvoyBridgeHost, EnvoyNetworkHost, EnvoyNetworkMetrics,
};

/// Wakes a connection's worker from another thread: the filter's `on_scheduled` runs there
/// later (if the connection still exists). Dropping it releases Envoy's handle.
pub trait Wake: Send + Sync {
    fn wake(&self, event: u64);
}

/// Which side of the connection a buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream (Envoy's read buffer).
    Downstream,
    /// Upstream to client (Envoy's write buffer).
    Upstream,
}

/// How to close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Flush what is queued for the client, then close.
    FlushWrite,
    /// Drop what is queued and close now.
    NoFlush,
    /// Close with a TCP reset.
    Reset,
}

/// A counter handle, valid for the config that defined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterId(pub usize);
/// A histogram handle, valid for the config that defined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramId(pub usize);
/// A gauge handle, valid for the config that defined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaugeId(pub usize);

/// Log levels the glue uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Why a callout could not start (Envoy's `http_callout_init_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutError {
    MissingRequiredHeaders,
    ClusterNotFound,
    DuplicateCalloutId,
    CannotCreateRequest,
    /// A value this build does not know.
    Other(u32),
}

/// How a callout ended (Envoy's `http_callout_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutOutcome {
    Success,
    Reset,
    ExceedResponseBufferLimit,
    Other(u32),
}

/// Defines metrics while a config is being created (main thread).
pub trait MetricsRegistry {
    fn define_counter(&mut self, name: &str) -> Option<CounterId>;
    fn define_histogram(&mut self, name: &str) -> Option<HistogramId>;
    fn define_gauge(&mut self, name: &str) -> Option<GaugeId>;
}

/// Chunks a read or write hook sees: a hook runs on every read and write of every
/// connection, so up to [`Chunks::INLINE`] slices (nearly every read: Envoy reads into one
/// or two slices) live on the stack, more on the heap.
pub struct Chunks<'a> {
    inline: [&'a [u8]; Chunks::INLINE],
    n: usize,
    heap: Vec<&'a [u8]>,
}

impl Chunks<'_> {
    /// Slices kept without a heap allocation.
    pub const INLINE: usize = 8;
}

impl<'a> FromIterator<&'a [u8]> for Chunks<'a> {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut c = Chunks {
            inline: [&[]; Chunks::INLINE],
            n: 0,
            heap: Vec::new(),
        };
        for s in iter.into_iter().filter(|s| !s.is_empty()) {
            if c.heap.is_empty() && c.n < Chunks::INLINE {
                c.inline[c.n] = s;
                c.n += 1;
            } else {
                if c.heap.is_empty() {
                    c.heap.extend_from_slice(&c.inline[..c.n]);
                }
                c.heap.push(s);
            }
        }
        c
    }
}

impl<'a> std::ops::Deref for Chunks<'a> {
    type Target = [&'a [u8]];
    fn deref(&self) -> &[&'a [u8]] {
        if self.heap.is_empty() {
            &self.inline[..self.n]
        } else {
            &self.heap
        }
    }
}

impl<'a, 'b> IntoIterator for &'b Chunks<'a> {
    type Item = &'b &'a [u8];
    type IntoIter = std::slice::Iter<'b, &'a [u8]>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Chunks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|c| c.len()))
            .finish()
    }
}

/// What the per-connection glue may do to its connection.
pub trait NetworkHost {
    /// The bytes Envoy holds for `dir` now, as Envoy's own chunks (no copy, empty ones left out).
    fn chunks(&self, dir: Direction) -> Chunks<'_>;
    /// Total bytes Envoy holds for `dir`.
    fn buffered(&self, dir: Direction) -> usize;
    /// Drains `n` bytes from the front of `dir`'s buffer; false if Envoy refused.
    fn drain(&mut self, dir: Direction, n: usize) -> bool;
    /// Writes bytes to the client (`end_stream` half-closes after them).
    fn write_to_client(&mut self, data: &[u8], end_stream: bool);
    /// Adds bytes to the end of `dir`'s buffer (valid in that direction's data hook only).
    fn append(&mut self, dir: Direction, data: &[u8]);
    /// Adds bytes to the front of the write buffer (valid in the write hook only).
    fn prepend_write(&mut self, data: &[u8]);
    /// Closes the connection.
    fn close(&mut self, how: Close);
    fn increment_counter(&mut self, id: CounterId, by: u64);
    fn record_histogram(&mut self, id: HistogramId, value: u64);
    fn gauge_add(&mut self, id: GaugeId, delta: i64);
    fn set_gauge(&mut self, id: GaugeId, value: u64);
    /// Starts an HTTP callout; the answer arrives in `on_network_filter_http_callout_done` with
    /// the returned id. `headers` must carry `:method`, `:path` and `host`.
    fn http_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutError>;
    /// A handle another thread uses to run this connection's `on_scheduled` on its worker;
    /// `None` when Envoy gives none.
    fn scheduler(&mut self) -> Option<Box<dyn Wake>>;
    /// Envoy's id of this connection (for log lines).
    fn connection_id(&self) -> u64;
    /// Logs one line (through Envoy's `[dynamic_modules]` logger in the real host).
    fn log(&self, level: Level, msg: &str);
}

/// What a bridge instance (one per HTTP request on a bridged cluster) may do.
pub trait BridgeHost {
    /// The first value of a request header.
    fn request_header(&self, key: &str) -> Option<&[u8]>;
    /// The request body chunks being encoded now (valid in `encode_data` only).
    fn request_chunks(&self) -> Vec<&[u8]>;
    /// The bytes the upstream TCP connection just delivered (valid in `on_upstream_data` only).
    fn response_chunks(&self) -> Vec<&[u8]>;
    /// Writes bytes to the upstream TCP connection.
    fn send_upstream(&mut self, data: &[u8], end_stream: bool);
    /// Answers the HTTP request in one piece.
    fn send_response(&mut self, status: u32, headers: &[(&str, &[u8])], body: &[u8]);
}

#[cfg(test)]
mod chunk_tests {
    use super::Chunks;

    #[test]
    fn chunks_keep_order_leave_out_empty_ones_and_spill_past_the_inline_slots() {
        let parts: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; usize::from(i % 3)]).collect();
        for n in [0, 1, 8, 9, 12, 20] {
            let c: Chunks<'_> = parts[..n].iter().map(Vec::as_slice).collect();
            let want: Vec<&[u8]> = parts[..n]
                .iter()
                .map(Vec::as_slice)
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(&*c, want.as_slice(), "{n} parts");
            assert_eq!((&c).into_iter().count(), want.len());
        }
    }
}
