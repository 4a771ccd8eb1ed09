//! Raw FFI surface: the part of Envoy's dynamic-module ABI that the network filter, the
//! HTTP-to-TCP upstream bridge and the route-discovery bootstrap extension use.
//!
//! Every item mirrors a declaration of `source/extensions/dynamic_modules/abi/abi.h` as shipped
//! with Envoy v1.40.0 (ABI "v0.2.0"; the header's own promise is that v0.1.y modules stay
//! compatible with v0.2.x). The C name is given in each doc comment; argument order and types
//! follow the header exactly. Every callback declared here is exported by the official 1.40.0
//! binary (`strings envoy | grep ^envoy_dynamic_module_callback_`).
//!
//! C enums are `int`-sized; values that Envoy hands to us are modelled as `#[repr(transparent)]`
//! newtypes over `u32` with associated constants, so that an unexpected value from a newer Envoy
//! is data, never undefined behaviour.
//!
//! Nothing here is safe to call directly: use [`crate::host`].
#![allow(missing_docs)]

use std::ffi::{c_char, c_void};

/// The ABI version this module is built against (`ENVOY_DYNAMIC_MODULES_ABI_VERSION` of 1.40).
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

// ------------------------------------------------------------------------------------------
// Common types
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }
}

/// `envoy_dynamic_module_type_module_http_header`: a header owned by the module.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

/// `envoy_dynamic_module_type_envoy_http_header`: a header owned by Envoy's HeaderMap.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

/// `envoy_dynamic_module_type_log_level`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub u32);
impl LogLevel {
    pub const TRACE: Self = Self(0);
    pub const DEBUG: Self = Self(1);
    pub const INFO: Self = Self(2);
    pub const WARN: Self = Self(3);
    pub const ERROR: Self = Self(4);
    pub const CRITICAL: Self = Self(5);
}

/// `envoy_dynamic_module_type_http_callout_init_result`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalloutInitResult(pub u32);
impl CalloutInitResult {
    pub const SUCCESS: Self = Self(0);
    pub const MISSING_REQUIRED_HEADERS: Self = Self(1);
    pub const CLUSTER_NOT_FOUND: Self = Self(2);
    pub const DUPLICATE_CALLOUT_ID: Self = Self(3);
    pub const CANNOT_CREATE_REQUEST: Self = Self(4);
}

/// `envoy_dynamic_module_type_http_callout_result`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalloutResult(pub u32);
impl CalloutResult {
    pub const SUCCESS: Self = Self(0);
    pub const RESET: Self = Self(1);
    pub const EXCEED_RESPONSE_BUFFER_LIMIT: Self = Self(2);
}

/// `envoy_dynamic_module_type_metrics_result`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsResult(pub u32);
impl MetricsResult {
    pub const SUCCESS: Self = Self(0);
}

// ------------------------------------------------------------------------------------------
// Network filter types
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_type_network_filter_config_envoy_ptr` (`void*`).
pub type NetworkFilterConfigEnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_network_filter_config_module_ptr` (`const void*`).
pub type NetworkFilterConfigModulePtr = *const c_void;
/// `envoy_dynamic_module_type_network_filter_envoy_ptr` (`void*`).
pub type NetworkFilterEnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_network_filter_module_ptr` (`const void*`).
pub type NetworkFilterModulePtr = *const c_void;
/// `envoy_dynamic_module_type_network_filter_scheduler_module_ptr` (`void*`): made by Envoy in
/// `..._network_filter_scheduler_new`, owned by the module until `..._scheduler_delete`.
pub type NetworkFilterSchedulerPtr = *mut c_void;

/// `envoy_dynamic_module_type_on_network_filter_data_status`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkFilterDataStatus(pub u32);
impl NetworkFilterDataStatus {
    pub const CONTINUE: Self = Self(0);
    pub const STOP_ITERATION: Self = Self(1);
}

/// `envoy_dynamic_module_type_network_connection_close_type`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCloseType(pub u32);
impl ConnectionCloseType {
    pub const FLUSH_WRITE: Self = Self(0);
    pub const NO_FLUSH: Self = Self(1);
    pub const FLUSH_WRITE_AND_DELAY: Self = Self(2);
    pub const ABORT: Self = Self(3);
    pub const ABORT_RESET: Self = Self(4);
}

/// `envoy_dynamic_module_type_network_connection_event`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionEvent(pub u32);
impl ConnectionEvent {
    pub const REMOTE_CLOSE: Self = Self(0);
    pub const LOCAL_CLOSE: Self = Self(1);
    pub const CONNECTED: Self = Self(2);
    pub const CONNECTED_ZERO_RTT: Self = Self(3);
}

// ------------------------------------------------------------------------------------------
// Upstream HTTP-to-TCP bridge types
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_type_upstream_http_tcp_bridge_config_envoy_ptr` (`void*`).
pub type BridgeConfigEnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_upstream_http_tcp_bridge_config_module_ptr` (`const void*`).
pub type BridgeConfigModulePtr = *const c_void;
/// `envoy_dynamic_module_type_upstream_http_tcp_bridge_envoy_ptr` (`void*`).
pub type BridgeEnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_upstream_http_tcp_bridge_module_ptr` (`const void*`).
pub type BridgeModulePtr = *const c_void;

// ------------------------------------------------------------------------------------------
// Bootstrap extension types
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_type_bootstrap_extension_config_envoy_ptr` (`void*`).
pub type BootstrapConfigEnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_bootstrap_extension_config_module_ptr` (`const void*`).
pub type BootstrapConfigModulePtr = *const c_void;
/// `envoy_dynamic_module_type_bootstrap_extension_envoy_ptr` (`void*`).
pub type BootstrapEnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_bootstrap_extension_module_ptr` (`const void*`).
pub type BootstrapModulePtr = *const c_void;
/// `envoy_dynamic_module_type_bootstrap_extension_timer_module_ptr` (`void*`): allocated by
/// Envoy in `..._timer_new`, owned by the module until `..._timer_delete`.
pub type BootstrapTimerPtr = *mut c_void;
/// `envoy_dynamic_module_type_event_cb`: `void (*)(void* context)`.
pub type EventCb = Option<unsafe extern "C" fn(context: *mut c_void)>;

// ------------------------------------------------------------------------------------------
// Callbacks (implemented by Envoy)
// ------------------------------------------------------------------------------------------

extern "C" {
    // ---- logging ----
    /// `void envoy_dynamic_module_callback_log(level, module_buffer message)`.
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    /// `bool envoy_dynamic_module_callback_log_enabled(level)`.
    pub fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    // ---- network filter: buffers ----
    pub fn envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_get_read_buffer_size(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        result_buffer_vector: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_get_write_buffer_size(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        result_buffer_vector: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_drain_read_buffer(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        length: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_network_filter_drain_write_buffer(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        length: usize,
    ) -> bool;

    /// Appends to the read buffer of the running read hook. Declared without a return value:
    /// 1.40 returns `bool` (true when added) and older headers `void`; ignoring the register
    /// is sound for both.
    pub fn envoy_dynamic_module_callback_network_filter_append_read_buffer(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        data: ModuleBuffer,
    );
    /// Prepends to the write buffer of the running write hook (see `append_read_buffer`).
    pub fn envoy_dynamic_module_callback_network_filter_prepend_write_buffer(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        data: ModuleBuffer,
    );
    /// Appends to the write buffer of the running write hook (see `append_read_buffer`).
    pub fn envoy_dynamic_module_callback_network_filter_append_write_buffer(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        data: ModuleBuffer,
    );

    // ---- network filter: connection ----
    /// Writes directly to the downstream connection; `end_stream` half-closes after writing.
    /// `envoy_dynamic_module_callback_network_filter_scheduler_new`: a handle that posts
    /// `envoy_dynamic_module_on_network_filter_scheduled` onto this connection's worker (NULL
    /// when the connection has no dispatcher yet). Call on the worker.
    pub fn envoy_dynamic_module_callback_network_filter_scheduler_new(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
    ) -> NetworkFilterSchedulerPtr;
    /// `envoy_dynamic_module_callback_network_filter_scheduler_commit`: callable from any
    /// thread; the hook runs later on the worker if the filter still exists.
    pub fn envoy_dynamic_module_callback_network_filter_scheduler_commit(
        scheduler: NetworkFilterSchedulerPtr,
        event_id: u64,
    );
    /// `envoy_dynamic_module_callback_network_filter_scheduler_delete`.
    pub fn envoy_dynamic_module_callback_network_filter_scheduler_delete(
        scheduler: NetworkFilterSchedulerPtr,
    );
    pub fn envoy_dynamic_module_callback_network_filter_write(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        data: ModuleBuffer,
        end_stream: bool,
    );
    pub fn envoy_dynamic_module_callback_network_filter_continue_reading(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
    );
    pub fn envoy_dynamic_module_callback_network_filter_close(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        close_type: ConnectionCloseType,
    );
    pub fn envoy_dynamic_module_callback_network_filter_get_connection_id(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
    ) -> u64;

    // ---- network filter: metrics ----
    pub fn envoy_dynamic_module_callback_network_filter_config_define_counter(
        config_envoy_ptr: NetworkFilterConfigEnvoyPtr,
        name: ModuleBuffer,
        counter_id_ptr: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_network_filter_config_define_gauge(
        config_envoy_ptr: NetworkFilterConfigEnvoyPtr,
        name: ModuleBuffer,
        gauge_id_ptr: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_network_filter_config_define_histogram(
        config_envoy_ptr: NetworkFilterConfigEnvoyPtr,
        name: ModuleBuffer,
        histogram_id_ptr: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_network_filter_increment_counter(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        id: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_network_filter_set_gauge(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        id: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_network_filter_increment_gauge(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        id: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_network_filter_decrement_gauge(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        id: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_network_filter_record_histogram_value(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        id: usize,
        value: u64,
    ) -> MetricsResult;

    // ---- network filter: HTTP callout ----
    /// The headers must contain `:method`, `:path` and `host`.
    pub fn envoy_dynamic_module_callback_network_filter_http_callout(
        filter_envoy_ptr: NetworkFilterEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;

    // ---- network filter config: metrics outside a connection (any thread) ----
    /// Adds to a counter defined in config_new, without a connection (the id `define_counter`
    /// gave; unknown ids give MetricNotFound). Checked against the 1.40.0 binary's code: three
    /// arguments `(config, id, value)`, the same counter table as the per-connection call.
    pub fn envoy_dynamic_module_callback_network_filter_config_increment_counter(
        config_envoy_ptr: NetworkFilterConfigEnvoyPtr,
        id: usize,
        value: u64,
    ) -> MetricsResult;
    /// Sets a gauge defined in config_new, without a connection.
    pub fn envoy_dynamic_module_callback_network_filter_config_set_gauge(
        config_envoy_ptr: NetworkFilterConfigEnvoyPtr,
        id: usize,
        value: u64,
    ) -> MetricsResult;

    // ---- bootstrap extension (main thread only) ----
    /// A main-thread timer of this bootstrap extension config; fires
    /// `on_bootstrap_extension_timer_fired` once per `..._timer_enable`.
    pub fn envoy_dynamic_module_callback_bootstrap_extension_timer_new(
        config_envoy_ptr: BootstrapConfigEnvoyPtr,
    ) -> BootstrapTimerPtr;
    /// Arms (or re-arms) the timer to fire after `delay_milliseconds`.
    pub fn envoy_dynamic_module_callback_bootstrap_extension_timer_enable(
        timer_ptr: BootstrapTimerPtr,
        delay_milliseconds: u64,
    );
    /// Frees the timer (main thread).
    pub fn envoy_dynamic_module_callback_bootstrap_extension_timer_delete(
        timer_ptr: BootstrapTimerPtr,
    );
    /// An HTTP callout from the main thread; the answer arrives in
    /// `on_bootstrap_extension_http_callout_done`. Before the server is initialized Envoy
    /// answers ClusterNotFound.
    pub fn envoy_dynamic_module_callback_bootstrap_extension_http_callout(
        config_envoy_ptr: BootstrapConfigEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;
    /// Reads a gauge of the whole server by name (`server.state`: 0 = live); false if absent.
    /// Takes the *extension* pointer (not the config's). Checked against the 1.40.0 binary's
    /// code: `(extension, name, value_out)`.
    pub fn envoy_dynamic_module_callback_bootstrap_extension_get_gauge_value(
        extension_envoy_ptr: BootstrapEnvoyPtr,
        name: ModuleBuffer,
        value_ptr: *mut u64,
    ) -> bool;
    /// Marks this extension's init target ready: Envoy holds its listeners until then.
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_signal_init_complete(
        config_envoy_ptr: BootstrapConfigEnvoyPtr,
    );

    // ---- upstream HTTP-to-TCP bridge ----
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_header(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        total_count_out: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_headers_size(
        bridge_envoy_ptr: BridgeEnvoyPtr,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_headers(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    /// Added in 1.40 (the Rust SDK used to pass a fixed 64-slot array): size the array first.
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_buffer_chunks_size(
        bridge_envoy_ptr: BridgeEnvoyPtr,
    ) -> usize;
    /// Fills `result_buffer` (sized by `..._get_request_buffer_chunks_size`) with the chunks of the
    /// body being encoded now (valid during `on_upstream_http_tcp_bridge_encode_data` only) and
    /// writes the chunk count to `result_buffer_length`.
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_request_buffer(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        result_buffer: *mut EnvoyBuffer,
        result_buffer_length: *mut usize,
    );
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_response_buffer_chunks_size(
        bridge_envoy_ptr: BridgeEnvoyPtr,
    ) -> usize;
    /// Like the request getter, for the bytes delivered by the current `on_upstream_data`.
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_get_response_buffer(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        result_buffer: *mut EnvoyBuffer,
        result_buffer_length: *mut usize,
    );
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_send_upstream_data(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        data: ModuleBuffer,
        end_stream: bool,
    );
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_send_response(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        status_code: u32,
        headers_vector: *mut ModuleHttpHeader,
        headers_vector_size: usize,
        body: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_send_response_headers(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        status_code: u32,
        headers_vector: *mut ModuleHttpHeader,
        headers_vector_size: usize,
        end_stream: bool,
    );
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_send_response_data(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        data: ModuleBuffer,
        end_stream: bool,
    );
    pub fn envoy_dynamic_module_callback_upstream_http_tcp_bridge_send_response_trailers(
        bridge_envoy_ptr: BridgeEnvoyPtr,
        trailers_vector: *mut ModuleHttpHeader,
        trailers_vector_size: usize,
    );
}
