//! The host traits over Envoy's raw pointers: every `unsafe` call into Envoy the glue makes.
//! See the parent module for the lifetimes.

use super::{
    BridgeHost, CalloutError, CalloutOutcome, Chunks, Close, CounterId, Direction, GaugeId,
    HistogramId, Level, MetricsRegistry, NetworkHost, Wake,
};
use crate::abi::{self, EnvoyBuffer, ModuleBuffer, ModuleHttpHeader};

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

/// Envoy's network-filter scheduler: `commit` from any thread posts the connection's
/// `on_network_filter_scheduled` onto its worker; dropped = `scheduler_delete`.
struct EnvoyScheduler(abi::NetworkFilterSchedulerPtr);

// SAFETY: Envoy's scheduler only posts to the worker's dispatcher (thread-safe `post`) and holds
// a weak pointer to the filter; commit is documented as callable from any thread. The module
// serialises commit and delete (the owner holds the value behind a mutex).
unsafe impl Send for EnvoyScheduler {}
// SAFETY: as for `Send`: `commit` takes `&self` and only posts.
unsafe impl Sync for EnvoyScheduler {}

impl Wake for EnvoyScheduler {
    fn wake(&self, event: u64) {
        // SAFETY: the pointer came from scheduler_new and is deleted only in `drop`, which
        // cannot run while `&self` is borrowed.
        unsafe { abi::envoy_dynamic_module_callback_network_filter_scheduler_commit(self.0, event) }
    }
}

impl Drop for EnvoyScheduler {
    fn drop(&mut self) {
        // SAFETY: from scheduler_new, deleted exactly once here.
        unsafe { abi::envoy_dynamic_module_callback_network_filter_scheduler_delete(self.0) }
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

    fn scheduler(&mut self) -> Option<Box<dyn Wake>> {
        // SAFETY: `self.filter` is the live filter of the running hook (on its worker).
        let p =
            unsafe { abi::envoy_dynamic_module_callback_network_filter_scheduler_new(self.filter) };
        if p.is_null() {
            return None;
        }
        Some(Box::new(EnvoyScheduler(p)))
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
