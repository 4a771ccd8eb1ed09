//! The safe host layer: small traits the glue code is written against, their implementation over
//! Envoy's raw pointers, and a fake for native unit tests.
//!
//! Every `unsafe` block of the crate that calls into Envoy lives here (the exported hooks in
//! [`crate::ffi`] hold the rest: turning Envoy's opaque pointers back into our objects).
//!
//! Lifetimes: an [`EnvoyNetworkHost`] / [`EnvoyBridgeHost`] is built at the start of one event
//! hook and dropped at its end. Buffers Envoy lends are only valid until the hook returns, so the
//! slices handed out borrow the host value and cannot escape the hook.

use crate::abi::{self, EnvoyBuffer, ModuleBuffer, ModuleHttpHeader};
use std::fmt;

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

impl CalloutOutcome {
    pub(crate) fn from_abi(r: abi::CalloutResult) -> Self {
        match r {
            abi::CalloutResult::SUCCESS => CalloutOutcome::Success,
            abi::CalloutResult::RESET => CalloutOutcome::Reset,
            abi::CalloutResult::EXCEED_RESPONSE_BUFFER_LIMIT => {
                CalloutOutcome::ExceedResponseBufferLimit
            }
            other => CalloutOutcome::Other(other.0),
        }
    }
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

/// Logs through Envoy's `[dynamic_modules]` logger.
pub fn log(level: Level, msg: &str) {
    let level = match level {
        Level::Debug => abi::LogLevel::DEBUG,
        Level::Info => abi::LogLevel::INFO,
        Level::Warn => abi::LogLevel::WARN,
        Level::Error => abi::LogLevel::ERROR,
    };
    // SAFETY: `msg` outlives the call; Envoy copies the message before returning.
    unsafe {
        abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::from_bytes(msg.as_bytes()))
    }
}

fn callout_started(r: abi::CalloutInitResult, id: u64) -> Result<u64, CalloutError> {
    match r {
        abi::CalloutInitResult::SUCCESS => Ok(id),
        abi::CalloutInitResult::MISSING_REQUIRED_HEADERS => {
            Err(CalloutError::MissingRequiredHeaders)
        }
        abi::CalloutInitResult::CLUSTER_NOT_FOUND => Err(CalloutError::ClusterNotFound),
        abi::CalloutInitResult::DUPLICATE_CALLOUT_ID => Err(CalloutError::DuplicateCalloutId),
        abi::CalloutInitResult::CANNOT_CREATE_REQUEST => Err(CalloutError::CannotCreateRequest),
        other => Err(CalloutError::Other(other.0)),
    }
}

fn module_headers(headers: &[(&str, &[u8])]) -> Vec<ModuleHttpHeader> {
    headers
        .iter()
        .map(|(k, v)| ModuleHttpHeader {
            key_ptr: k.as_ptr().cast(),
            key_length: k.len(),
            value_ptr: v.as_ptr().cast(),
            value_length: v.len(),
        })
        .collect()
}

/// Turns Envoy-lent chunks into slices that live as long as `_owner`.
///
/// # Safety
/// Each chunk must point to `length` readable bytes (or be null with length 0) that stay valid
/// for as long as `_owner` is borrowed, i.e. until the current event hook returns.
unsafe fn chunks_as_slices<'a, T: ?Sized, C: FromIterator<&'a [u8]>>(
    _owner: &'a T,
    chunks: &[EnvoyBuffer],
) -> C {
    chunks
        .iter()
        .filter(|c| !c.ptr.is_null() && c.length > 0)
        // SAFETY: guaranteed by the caller (see the function contract).
        .map(|c| unsafe { std::slice::from_raw_parts(c.ptr.cast::<u8>(), c.length) })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Envoy implementations
// ------------------------------------------------------------------------------------------

/// [`MetricsRegistry`] over a network filter config pointer (valid during `config_new`).
#[derive(Debug)]
pub struct EnvoyNetworkMetrics {
    config: abi::NetworkFilterConfigEnvoyPtr,
}

impl EnvoyNetworkMetrics {
    /// # Safety
    /// `config` must be the pointer Envoy passed to the running `on_network_filter_config_new`.
    pub unsafe fn new(config: abi::NetworkFilterConfigEnvoyPtr) -> Self {
        EnvoyNetworkMetrics { config }
    }
}

impl MetricsRegistry for EnvoyNetworkMetrics {
    fn define_counter(&mut self, name: &str) -> Option<CounterId> {
        let mut id = 0usize;
        // SAFETY: `self.config` is live during config_new (constructor contract); `name` and `id`
        // outlive the call and Envoy copies the name.
        let r = unsafe {
            abi::envoy_dynamic_module_callback_network_filter_config_define_counter(
                self.config,
                ModuleBuffer::from_bytes(name.as_bytes()),
                &mut id,
            )
        };
        (r == abi::MetricsResult::SUCCESS).then_some(CounterId(id))
    }

    fn define_histogram(&mut self, name: &str) -> Option<HistogramId> {
        let mut id = 0usize;
        // SAFETY: as in `define_counter`.
        let r = unsafe {
            abi::envoy_dynamic_module_callback_network_filter_config_define_histogram(
                self.config,
                ModuleBuffer::from_bytes(name.as_bytes()),
                &mut id,
            )
        };
        (r == abi::MetricsResult::SUCCESS).then_some(HistogramId(id))
    }

    fn define_gauge(&mut self, name: &str) -> Option<GaugeId> {
        let mut id = 0usize;
        // SAFETY: as in `define_counter`.
        let r = unsafe {
            abi::envoy_dynamic_module_callback_network_filter_config_define_gauge(
                self.config,
                ModuleBuffer::from_bytes(name.as_bytes()),
                &mut id,
            )
        };
        (r == abi::MetricsResult::SUCCESS).then_some(GaugeId(id))
    }
}

/// A listener config's Envoy pointer, for its stats outside any connection (route discovery
/// driven by the bootstrap extension reports through it).
#[derive(Debug)]
pub struct ConfigStats {
    config: abi::NetworkFilterConfigEnvoyPtr,
}

// SAFETY: Envoy's config-level metric calls only touch the config's stat handles, whose updates
// are atomic; the pointer is used only while the owner (`rds::Discovery`) holds it under a mutex
// that the config's destroy hook takes to drop it before Envoy frees the config.
unsafe impl Send for ConfigStats {}

impl ConfigStats {
    /// # Safety
    /// `config` must be the pointer Envoy passed to `on_network_filter_config_new`, and the
    /// value must be dropped before (or in) the matching `on_network_filter_config_destroy`.
    pub unsafe fn new(config: abi::NetworkFilterConfigEnvoyPtr) -> Self {
        ConfigStats { config }
    }

    pub fn increment_counter(&self, id: CounterId, by: u64) {
        // SAFETY: the config is alive (constructor contract); unknown ids give MetricNotFound.
        unsafe {
            abi::envoy_dynamic_module_callback_network_filter_config_increment_counter(
                self.config,
                id.0,
                by,
            );
        }
    }

    pub fn set_gauge(&self, id: GaugeId, value: u64) {
        // SAFETY: as in `increment_counter`.
        unsafe {
            abi::envoy_dynamic_module_callback_network_filter_config_set_gauge(
                self.config,
                id.0,
                value,
            );
        }
    }
}

/// Starts an HTTP callout from the bootstrap extension (main thread); the answer arrives in
/// `on_bootstrap_extension_http_callout_done` with the returned id.
///
/// # Safety
/// `config` must be the live pointer of a bootstrap extension config, on the main thread.
pub unsafe fn bootstrap_callout(
    config: abi::BootstrapConfigEnvoyPtr,
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout_ms: u64,
) -> Result<u64, CalloutError> {
    // SAFETY: `config` is live, on the main thread (caller).
    unsafe {
        start_callout(
            abi::envoy_dynamic_module_callback_bootstrap_extension_http_callout,
            config,
            cluster,
            headers,
            body,
            timeout_ms,
        )
    }
}

/// The shape shared by the network filter's and the bootstrap extension's callout calls.
type CalloutFn = unsafe extern "C" fn(
    *mut std::ffi::c_void,
    *mut u64,
    ModuleBuffer,
    *mut ModuleHttpHeader,
    usize,
    ModuleBuffer,
    u64,
) -> abi::CalloutInitResult;

/// # Safety
/// `target` must be the live pointer `start` expects, on the thread it expects.
unsafe fn start_callout(
    start: CalloutFn,
    target: *mut std::ffi::c_void,
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout_ms: u64,
) -> Result<u64, CalloutError> {
    let mut hdrs = module_headers(headers);
    let mut id = 0u64;
    // SAFETY: `target` is live (caller); every pointer (cluster, header array and the strings
    // it points to, body, id) outlives the call, and Envoy copies headers and body into its
    // request before returning.
    let r = unsafe {
        start(
            target,
            &mut id,
            ModuleBuffer::from_bytes(cluster.as_bytes()),
            hdrs.as_mut_ptr(),
            hdrs.len(),
            ModuleBuffer::from_bytes(body),
            timeout_ms,
        )
    };
    callout_started(r, id)
}

/// [`NetworkHost`] over the `DynamicModuleNetworkFilter` pointer of the running hook.
#[derive(Debug)]
pub struct EnvoyNetworkHost {
    filter: abi::NetworkFilterEnvoyPtr,
}

impl EnvoyNetworkHost {
    /// # Safety
    /// `filter` must be the filter pointer Envoy passed to the event hook that is running now,
    /// and the value must be dropped before that hook returns.
    pub unsafe fn new(filter: abi::NetworkFilterEnvoyPtr) -> Self {
        EnvoyNetworkHost { filter }
    }
}

impl NetworkHost for EnvoyNetworkHost {
    fn chunks(&self, dir: Direction) -> Chunks<'_> {
        // SAFETY: `self.filter` is live for this hook (constructor contract).
        let n = unsafe {
            match dir {
                Direction::Downstream => {
                    abi::envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(
                        self.filter,
                    )
                }
                Direction::Upstream => {
                    abi::envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(
                        self.filter,
                    )
                }
            }
        };
        if n == 0 {
            return Chunks::from_iter([]);
        }
        let mut stack = [EnvoyBuffer::EMPTY; Chunks::INLINE];
        let mut heap = Vec::new();
        let raw: &mut [EnvoyBuffer] = if n <= Chunks::INLINE {
            &mut stack[..n]
        } else {
            heap.resize(n, EnvoyBuffer::EMPTY);
            &mut heap
        };
        // SAFETY: `raw` has room for the `n` chunks Envoy just reported (header PRECONDITION);
        // nothing runs on this worker between the two calls, so the count cannot change.
        let ok = unsafe {
            match dir {
                Direction::Downstream => {
                    abi::envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(
                        self.filter,
                        raw.as_mut_ptr(),
                    )
                }
                Direction::Upstream => {
                    abi::envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(
                        self.filter,
                        raw.as_mut_ptr(),
                    )
                }
            }
        };
        if !ok {
            return Chunks::from_iter([]);
        }
        // SAFETY: the header guarantees the chunks until the end of the current callback; the
        // slices borrow `self`, which is dropped before the hook returns.
        unsafe { chunks_as_slices(self, raw) }
    }

    fn buffered(&self, dir: Direction) -> usize {
        // SAFETY: `self.filter` is live for this hook.
        unsafe {
            match dir {
                Direction::Downstream => {
                    abi::envoy_dynamic_module_callback_network_filter_get_read_buffer_size(
                        self.filter,
                    )
                }
                Direction::Upstream => {
                    abi::envoy_dynamic_module_callback_network_filter_get_write_buffer_size(
                        self.filter,
                    )
                }
            }
        }
    }

    fn drain(&mut self, dir: Direction, n: usize) -> bool {
        // SAFETY: `self.filter` is live; `&mut self` means no chunk slice handed out by
        // `chunks(&self)` is still alive, so draining cannot leave one dangling.
        unsafe {
            match dir {
                Direction::Downstream => {
                    abi::envoy_dynamic_module_callback_network_filter_drain_read_buffer(
                        self.filter,
                        n,
                    )
                }
                Direction::Upstream => {
                    abi::envoy_dynamic_module_callback_network_filter_drain_write_buffer(
                        self.filter,
                        n,
                    )
                }
            }
        }
    }

    fn write_to_client(&mut self, data: &[u8], end_stream: bool) {
        // SAFETY: `self.filter` is live; Envoy copies `data` into the connection's buffer.
        unsafe {
            abi::envoy_dynamic_module_callback_network_filter_write(
                self.filter,
                ModuleBuffer::from_bytes(data),
                end_stream,
            )
        }
    }

    fn append(&mut self, dir: Direction, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: `self.filter` is live for this hook; Envoy copies `data` before returning and
        // ignores the call outside the matching data hook (no current buffer).
        unsafe {
            match dir {
                Direction::Downstream => {
                    abi::envoy_dynamic_module_callback_network_filter_append_read_buffer(
                        self.filter,
                        ModuleBuffer::from_bytes(data),
                    )
                }
                Direction::Upstream => {
                    abi::envoy_dynamic_module_callback_network_filter_append_write_buffer(
                        self.filter,
                        ModuleBuffer::from_bytes(data),
                    )
                }
            }
        }
    }

    fn prepend_write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: as in `append`.
        unsafe {
            abi::envoy_dynamic_module_callback_network_filter_prepend_write_buffer(
                self.filter,
                ModuleBuffer::from_bytes(data),
            )
        }
    }

    fn close(&mut self, how: Close) {
        let t = match how {
            Close::FlushWrite => abi::ConnectionCloseType::FLUSH_WRITE,
            Close::NoFlush => abi::ConnectionCloseType::NO_FLUSH,
            Close::Reset => abi::ConnectionCloseType::ABORT_RESET,
        };
        // SAFETY: `self.filter` is live; closing is legal from any hook of this connection.
        unsafe { abi::envoy_dynamic_module_callback_network_filter_close(self.filter, t) }
    }

    fn increment_counter(&mut self, id: CounterId, by: u64) {
        // SAFETY: `self.filter` is live; an unknown id only yields MetricNotFound.
        unsafe {
            abi::envoy_dynamic_module_callback_network_filter_increment_counter(
                self.filter,
                id.0,
                by,
            );
        }
    }

    fn gauge_add(&mut self, id: GaugeId, delta: i64) {
        // SAFETY: as in `increment_counter`.
        unsafe {
            if delta >= 0 {
                abi::envoy_dynamic_module_callback_network_filter_increment_gauge(
                    self.filter,
                    id.0,
                    delta as u64,
                );
            } else {
                abi::envoy_dynamic_module_callback_network_filter_decrement_gauge(
                    self.filter,
                    id.0,
                    delta.unsigned_abs(),
                );
            }
        }
    }

    fn set_gauge(&mut self, id: GaugeId, value: u64) {
        // SAFETY: as in `increment_counter`.
        unsafe {
            abi::envoy_dynamic_module_callback_network_filter_set_gauge(self.filter, id.0, value);
        }
    }

    fn record_histogram(&mut self, id: HistogramId, value: u64) {
        // SAFETY: as in `increment_counter`.
        unsafe {
            abi::envoy_dynamic_module_callback_network_filter_record_histogram_value(
                self.filter,
                id.0,
                value,
            );
        }
    }

    fn http_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutError> {
        // SAFETY: `self.filter` is live for this hook.
        unsafe {
            start_callout(
                abi::envoy_dynamic_module_callback_network_filter_http_callout,
                self.filter,
                cluster,
                headers,
                body,
                timeout_ms,
            )
        }
    }

    fn connection_id(&self) -> u64 {
        // SAFETY: `self.filter` is live for this hook.
        unsafe { abi::envoy_dynamic_module_callback_network_filter_get_connection_id(self.filter) }
    }

    fn log(&self, level: Level, msg: &str) {
        log(level, msg)
    }
}

/// [`BridgeHost`] over the `HttpTcpBridge` pointer of the running bridge hook.
#[derive(Debug)]
pub struct EnvoyBridgeHost {
    bridge: abi::BridgeEnvoyPtr,
}

impl EnvoyBridgeHost {
    /// # Safety
    /// `bridge` must be the bridge pointer Envoy passed to the hook that is running now, and the
    /// value must be dropped before that hook returns.
    pub unsafe fn new(bridge: abi::BridgeEnvoyPtr) -> Self {
        EnvoyBridgeHost { bridge }
    }

    fn buffer_chunks(&self, response: bool) -> Vec<&[u8]> {
        // SAFETY: `self.bridge` is live for this hook (constructor contract).
        let n = unsafe {
            if response {
                abi::envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_response_buffer_chunks_size(self.bridge)
            } else {
                abi::envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_buffer_chunks_size(self.bridge)
            }
        };
        if n == 0 {
            return Vec::new();
        }
        let mut raw = vec![EnvoyBuffer::EMPTY; n];
        let mut filled = 0usize;
        // SAFETY: `raw` holds the `n` slots Envoy just asked for; `filled` outlives the call.
        unsafe {
            if response {
                abi::envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_response_buffer(
                    self.bridge,
                    raw.as_mut_ptr(),
                    &mut filled,
                )
            } else {
                abi::envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_buffer(
                    self.bridge,
                    raw.as_mut_ptr(),
                    &mut filled,
                )
            }
        };
        raw.truncate(filled.min(n));
        // SAFETY: the buffers stay valid for the running hook; the slices borrow `self`.
        unsafe { chunks_as_slices::<_, Vec<&[u8]>>(self, &raw) }
    }
}

impl BridgeHost for EnvoyBridgeHost {
    fn request_header(&self, key: &str) -> Option<&[u8]> {
        let mut out = EnvoyBuffer::EMPTY;
        // SAFETY: `self.bridge` is live; `key`/`out` outlive the call; a null total pointer is
        // allowed by Envoy's implementation.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_header(
                self.bridge,
                ModuleBuffer::from_bytes(key.as_bytes()),
                &mut out,
                0,
                std::ptr::null_mut(),
            )
        };
        if !ok {
            return None;
        }
        // SAFETY: the value lives in the request header map for the rest of the request; it is
        // handed out borrowing `self`, which lives no longer than this hook.
        unsafe { chunks_as_slices::<_, Vec<&[u8]>>(self, &[out]) }
            .into_iter()
            .next()
            .or(Some(&[]))
    }

    fn request_chunks(&self) -> Vec<&[u8]> {
        self.buffer_chunks(false)
    }

    fn response_chunks(&self) -> Vec<&[u8]> {
        self.buffer_chunks(true)
    }

    fn send_upstream(&mut self, data: &[u8], end_stream: bool) {
        // SAFETY: `self.bridge` is live; Envoy copies `data` before returning.
        unsafe {
            abi::envoy_dynamic_module_callback_upstream_http_tcp_bridge_send_upstream_data(
                self.bridge,
                ModuleBuffer::from_bytes(data),
                end_stream,
            )
        }
    }

    fn send_response(&mut self, status: u32, headers: &[(&str, &[u8])], body: &[u8]) {
        let mut hdrs = module_headers(headers);
        let ptr = if hdrs.is_empty() {
            std::ptr::null_mut()
        } else {
            hdrs.as_mut_ptr()
        };
        // SAFETY: `self.bridge` is live; headers and body outlive the call and Envoy copies them
        // into its own header map and buffer.
        unsafe {
            abi::envoy_dynamic_module_callback_upstream_http_tcp_bridge_send_response(
                self.bridge,
                status,
                ptr,
                hdrs.len(),
                ModuleBuffer::from_bytes(body),
            )
        }
    }
}

// ------------------------------------------------------------------------------------------
// Fakes for native tests
// ------------------------------------------------------------------------------------------

/// In-memory hosts that record what the glue did.
pub mod fake {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake metrics registry: names in definition order.
    #[derive(Debug, Default)]
    pub struct FakeRegistry {
        pub counters: Vec<String>,
        pub histograms: Vec<String>,
        pub gauges: Vec<String>,
        /// Refuse definitions (to test config failure paths).
        pub refuse: bool,
    }

    impl MetricsRegistry for FakeRegistry {
        fn define_counter(&mut self, name: &str) -> Option<CounterId> {
            if self.refuse {
                return None;
            }
            self.counters.push(name.to_owned());
            Some(CounterId(self.counters.len() - 1))
        }
        fn define_histogram(&mut self, name: &str) -> Option<HistogramId> {
            if self.refuse {
                return None;
            }
            self.histograms.push(name.to_owned());
            Some(HistogramId(self.histograms.len() - 1))
        }
        fn define_gauge(&mut self, name: &str) -> Option<GaugeId> {
            if self.refuse {
                return None;
            }
            self.gauges.push(name.to_owned());
            Some(GaugeId(self.gauges.len() - 1))
        }
    }

    /// A recorded callout.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Callout {
        pub id: u64,
        pub cluster: String,
        pub headers: Vec<(String, Vec<u8>)>,
        pub body: Vec<u8>,
        pub timeout_ms: u64,
    }

    /// A fake connection. Buffers are lists of chunks, as Envoy hands them.
    #[derive(Debug, Default)]
    pub struct FakeNetworkHost {
        pub downstream: Vec<Vec<u8>>,
        pub upstream: Vec<Vec<u8>>,
        pub written_to_client: Vec<u8>,
        pub closed: Option<Close>,
        /// Counter totals by id.
        pub counters: BTreeMap<usize, u64>,
        pub histograms: BTreeMap<usize, Vec<u64>>,
        pub gauges: BTreeMap<usize, i64>,
        pub callouts: Vec<Callout>,
        /// Make the next callout fail to start.
        pub fail_callout: Option<CalloutError>,
        pub logs: std::cell::RefCell<Vec<(Level, String)>>,
    }

    impl FakeNetworkHost {
        pub fn counter(&self, id: CounterId) -> u64 {
            self.counters.get(&id.0).copied().unwrap_or(0)
        }
        fn buf(&mut self, dir: Direction) -> &mut Vec<Vec<u8>> {
            match dir {
                Direction::Downstream => &mut self.downstream,
                Direction::Upstream => &mut self.upstream,
            }
        }
    }

    impl NetworkHost for FakeNetworkHost {
        fn chunks(&self, dir: Direction) -> Chunks<'_> {
            let b = match dir {
                Direction::Downstream => &self.downstream,
                Direction::Upstream => &self.upstream,
            };
            b.iter().map(Vec::as_slice).collect()
        }
        fn buffered(&self, dir: Direction) -> usize {
            self.chunks(dir).iter().map(|c| c.len()).sum()
        }
        fn drain(&mut self, dir: Direction, mut n: usize) -> bool {
            let b = self.buf(dir);
            let total: usize = b.iter().map(Vec::len).sum();
            if n > total {
                return false;
            }
            while n > 0 {
                let first = &mut b[0];
                if first.len() <= n {
                    n -= first.len();
                    b.remove(0);
                } else {
                    first.drain(..n);
                    n = 0;
                }
            }
            true
        }
        fn write_to_client(&mut self, data: &[u8], _end_stream: bool) {
            self.written_to_client.extend_from_slice(data);
        }
        fn append(&mut self, dir: Direction, data: &[u8]) {
            if !data.is_empty() {
                self.buf(dir).push(data.to_vec());
            }
        }
        fn prepend_write(&mut self, data: &[u8]) {
            if !data.is_empty() {
                self.upstream.insert(0, data.to_vec());
            }
        }
        fn close(&mut self, how: Close) {
            self.closed.get_or_insert(how);
        }
        fn increment_counter(&mut self, id: CounterId, by: u64) {
            *self.counters.entry(id.0).or_default() += by;
        }
        fn record_histogram(&mut self, id: HistogramId, value: u64) {
            self.histograms.entry(id.0).or_default().push(value);
        }
        fn gauge_add(&mut self, id: GaugeId, delta: i64) {
            *self.gauges.entry(id.0).or_default() += delta;
        }
        fn set_gauge(&mut self, id: GaugeId, value: u64) {
            self.gauges.insert(id.0, value as i64);
        }
        fn http_callout(
            &mut self,
            cluster: &str,
            headers: &[(&str, &[u8])],
            body: &[u8],
            timeout_ms: u64,
        ) -> Result<u64, CalloutError> {
            if let Some(e) = self.fail_callout.take() {
                return Err(e);
            }
            let id = self.callouts.len() as u64 + 1;
            self.callouts.push(Callout {
                id,
                cluster: cluster.to_owned(),
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                    .collect(),
                body: body.to_vec(),
                timeout_ms,
            });
            Ok(id)
        }
        fn connection_id(&self) -> u64 {
            7
        }
        fn log(&self, level: Level, msg: &str) {
            self.logs.borrow_mut().push((level, msg.to_owned()));
        }
    }

    /// An answer a fake bridge sent: status, headers, body.
    pub type FakeResponse = (u32, Vec<(String, Vec<u8>)>, Vec<u8>);

    /// A fake bridge instance.
    #[derive(Debug, Default)]
    pub struct FakeBridgeHost {
        pub request_headers: Vec<(String, Vec<u8>)>,
        pub request: Vec<Vec<u8>>,
        pub response: Vec<Vec<u8>>,
        pub sent_upstream: Vec<u8>,
        pub upstream_end_stream: bool,
        pub responses: Vec<FakeResponse>,
    }

    impl BridgeHost for FakeBridgeHost {
        fn request_header(&self, key: &str) -> Option<&[u8]> {
            self.request_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_slice())
        }
        fn request_chunks(&self) -> Vec<&[u8]> {
            self.request.iter().map(Vec::as_slice).collect()
        }
        fn response_chunks(&self) -> Vec<&[u8]> {
            self.response.iter().map(Vec::as_slice).collect()
        }
        fn send_upstream(&mut self, data: &[u8], end_stream: bool) {
            self.sent_upstream.extend_from_slice(data);
            self.upstream_end_stream |= end_stream;
        }
        fn send_response(&mut self, status: u32, headers: &[(&str, &[u8])], body: &[u8]) {
            self.responses.push((
                status,
                headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                    .collect(),
                body.to_vec(),
            ));
        }
    }

    /// The messages of a captured Thrift stream (`filters/codec/testdata/thrift/<name>`), one
    /// whole message (framed or unframed) each.
    #[cfg(test)]
    pub fn thrift_capture(name: &str) -> Vec<Vec<u8>> {
        use meltemi_codec::{thrift, Decoded, Limits};
        let p = format!(
            "{}/../codec/testdata/thrift/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let stream = std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let mut out = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let Ok(Decoded::Frame { used, .. }) = thrift::decode_request(rest, &Limits::default())
            else {
                panic!("{p}: not a whole message at {}", stream.len() - rest.len())
            };
            out.push(rest[..used].to_vec());
            rest = &rest[used..];
        }
        out
    }
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
