//! The exported event hooks (`envoy_dynamic_module_on_*`).
//!
//! Each hook is a thin shell: turn Envoy's opaque pointers back into our objects, build the host
//! for this hook, call the glue inside `catch_unwind`. A panic never unwinds into Envoy: it is
//! logged once (one line with the message and location), counted in `panics`, and the affected
//! connection is closed (a bridged request is answered 500); the object is marked failed so later
//! hooks of that connection do nothing. Other connections and Envoy keep running.
//!
//! Pointer conventions: config hooks return `Box::into_raw(Box<Arc<Config>>)`; per-connection
//! (per-request) hooks return `Box::into_raw(Box<Slot<Filter>>)` (`Slot<Bridge>`), released by
//! the matching destroy hook. Envoy calls every hook of one connection on that connection's
//! worker thread, never concurrently, but it does call back *re-entrantly*: writing to the client
//! from a hook runs the write filter chain, i.e. our own `on_network_filter_write`, before the
//! write returns (measured: a callout answer written in `http_callout_done` showed up in the
//! write hook). [`Slot`] keeps the `&mut` unique: a re-entrant hook finds the slot busy and
//! returns without touching the object. One re-entry must not be lost: closing the connection
//! from a hook (a decode error, a panic) raises the close event inside `close`, so the slot
//! remembers it and the hook that closed runs the filter's close handling before it returns
//! (else `cx_active`/`request_active` never come down for that connection).

use crate::abi::{self, EnvoyBuffer};
use crate::bridge::{Bridge, BridgeConfig};
use crate::config::Config;
use crate::filter::{Filter, Flow};
use crate::host::{
    self, CalloutOutcome, Close, ConfigStats, EnvoyBridgeHost, EnvoyNetworkHost,
    EnvoyNetworkMetrics, Level, NetworkHost,
};
use crate::rds::{self, Discovery};
use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

thread_local! {
    /// The message and location of the last panic on this thread, captured by our hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the default panic hook (which would print to Envoy's stderr) with one that keeps the
/// message for the single log line the catching hook writes.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info.to_string();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(msg));
        }));
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(m) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
        // One log line: the std message puts the payload on its own line.
        return m.replace('\n', " ");
    }
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

fn log_panic(hook: &str, payload: &(dyn Any + Send), what: &str) {
    let msg = panic_message(payload);
    // Logging itself must not unwind into Envoy either.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        host::log(
            Level::Error,
            &format!("meltemi: panic in {hook}: {msg}; {what}"),
        )
    }));
}

/// A per-connection (per-request) object as Envoy holds it: exclusive access for one hook at a
/// time, re-entry detected, failure remembered.
pub(crate) struct Slot<T> {
    busy: Cell<bool>,
    failed: Cell<bool>,
    /// A close event arrived while a hook held the slot (the filter closed the connection).
    close_deferred: Cell<bool>,
    inner: UnsafeCell<T>,
}

impl<T> Slot<T> {
    fn new(inner: T) -> Self {
        Slot {
            busy: Cell::new(false),
            failed: Cell::new(false),
            close_deferred: Cell::new(false),
            inner: UnsafeCell::new(inner),
        }
    }
}

/// # Safety
/// `b` must describe readable bytes valid for the running hook (or be null/empty).
unsafe fn envoy_bytes<'a>(b: EnvoyBuffer) -> &'a [u8] {
    if b.ptr.is_null() || b.length == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(b.ptr.cast::<u8>(), b.length) }
}

fn status(flow: Flow) -> abi::NetworkFilterDataStatus {
    match flow {
        Flow::Continue => abi::NetworkFilterDataStatus::CONTINUE,
        Flow::Stop => abi::NetworkFilterDataStatus::STOP_ITERATION,
    }
}

// ------------------------------------------------------------------------------------------
// Program
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_on_program_init`: returns the ABI version string.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    let _ = catch_unwind(install_panic_hook);
    abi::ABI_VERSION.as_ptr().cast()
}

// ------------------------------------------------------------------------------------------
// Network filter
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_on_network_filter_config_new` (main thread).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_config_new(
    config_envoy_ptr: abi::NetworkFilterConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> abi::NetworkFilterConfigModulePtr {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Envoy owns both buffers for the duration of this hook.
        let (name, json) = unsafe { (envoy_bytes(name), envoy_bytes(config)) };
        let name = String::from_utf8_lossy(name);
        // SAFETY: `config_envoy_ptr` is the pointer of this running config_new.
        let mut registry = unsafe { EnvoyNetworkMetrics::new(config_envoy_ptr) };
        match Config::parse(json, &mut registry) {
            Ok(c) => {
                if let Some(d) = &c.discovery {
                    // SAFETY: the pointer of this config_new; `detach` in config_destroy drops it.
                    d.attach(unsafe { ConfigStats::new(config_envoy_ptr) });
                    rds::register(d);
                }
                Box::into_raw(Box::new(Arc::new(c))) as abi::NetworkFilterConfigModulePtr
            }
            Err(e) => {
                host::log(
                    Level::Error,
                    &format!("meltemi: refusing network filter config (filter_name {name:?}): {e}"),
                );
                std::ptr::null()
            }
        }
    }));
    r.unwrap_or_else(|p| {
        log_panic("on_network_filter_config_new", &*p, "refusing the config");
        std::ptr::null()
    })
}

/// `envoy_dynamic_module_on_network_filter_config_destroy`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_config_destroy(
    config_module_ptr: abi::NetworkFilterConfigModulePtr,
) {
    if config_module_ptr.is_null() {
        return;
    }
    let r = catch_unwind(|| {
        // SAFETY: the pointer came from `Box::into_raw` in config_new and Envoy destroys it once.
        let config = unsafe { Box::from_raw(config_module_ptr as *mut Arc<Config>) };
        // Envoy frees its config object after this hook: nothing may use its pointer later.
        if let Some(d) = &config.discovery {
            d.detach();
        }
        drop(config);
    });
    if let Err(p) = r {
        log_panic("on_network_filter_config_destroy", &*p, "config leaked");
    }
}

/// `envoy_dynamic_module_on_network_filter_new` (worker thread, one per connection).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_new(
    config_module_ptr: abi::NetworkFilterConfigModulePtr,
    _filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
) -> abi::NetworkFilterModulePtr {
    if config_module_ptr.is_null() {
        return std::ptr::null();
    }
    let r = catch_unwind(|| {
        // SAFETY: the config outlives its filters (Envoy holds it by shared_ptr in each filter);
        // `Arc<Config>` is only read here, so sharing it across workers is fine.
        let config = unsafe { &*(config_module_ptr as *const Arc<Config>) };
        let slot = Slot::new(Filter::new(Arc::clone(config)));
        Box::into_raw(Box::new(slot)) as abi::NetworkFilterModulePtr
    });
    r.unwrap_or_else(|p| {
        log_panic("on_network_filter_new", &*p, "Envoy closes the connection");
        std::ptr::null()
    })
}

/// Runs `f` on the connection's filter inside `catch_unwind`; fails closed on a panic.
/// Returns `on_skip` without running `f` when the filter already failed or is re-entered.
fn with_filter<R>(
    hook: &'static str,
    filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
    filter_module_ptr: abi::NetworkFilterModulePtr,
    on_skip: R,
    on_failure: R,
    f: impl FnOnce(&mut Filter, &mut EnvoyNetworkHost) -> R,
) -> R {
    if filter_module_ptr.is_null() {
        return on_failure;
    }
    // SAFETY: the pointer came from `Box::into_raw` in filter_new and stays valid until
    // filter_destroy; only shared references to the slot are made here.
    let slot = unsafe { &*(filter_module_ptr as *const Slot<Filter>) };
    if slot.failed.get() {
        return on_failure;
    }
    if slot.busy.replace(true) {
        return on_skip;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `busy` was false, so no other reference into `inner` exists (hooks of one
        // connection run on one thread); this one ends with the closure.
        let filter = unsafe { &mut *slot.inner.get() };
        // SAFETY: `filter_envoy_ptr` is the pointer of the running hook; `host` dies with it.
        let mut host = unsafe { EnvoyNetworkHost::new(filter_envoy_ptr) };
        let out = f(filter, &mut host);
        // The connection closed inside `f` (it called `close`): Envoy's close event found the
        // slot busy. Envoy deletes the filter only after the running hook, so handle it now.
        if slot.close_deferred.take() {
            filter.on_close(&mut host);
        }
        out
    }));
    let out = match r {
        Ok(v) => v,
        Err(p) => {
            slot.failed.set(true);
            let msg = panic_message(&*p);
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: the `&mut` of the closure above is gone; reading the immutable config.
                let panics = unsafe { &*slot.inner.get() }.config().metrics.panics;
                // SAFETY: as above; a fresh host, the panicking one is gone.
                let mut host = unsafe { EnvoyNetworkHost::new(filter_envoy_ptr) };
                host.increment_counter(panics, 1);
                host::log(
                    Level::Error,
                    &format!(
                        "meltemi: panic in {hook} on connection {}: {msg}; closing the connection",
                        host.connection_id()
                    ),
                );
                // Still `busy`: the close event Envoy raises re-entrantly is deferred to here.
                host.close(Close::NoFlush);
                if slot.close_deferred.take() {
                    // SAFETY: the only reference into `inner` (the closure's is gone). The
                    // filter panicked mid-hook, but its close handling only releases gauges
                    // (idempotent) and runs inside this `catch_unwind`.
                    unsafe { &mut *slot.inner.get() }.on_close(&mut host);
                }
            }));
            on_failure
        }
    };
    slot.busy.set(false);
    out
}

/// `envoy_dynamic_module_on_network_filter_new_connection`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_new_connection(
    filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
    filter_module_ptr: abi::NetworkFilterModulePtr,
) -> abi::NetworkFilterDataStatus {
    with_filter(
        "on_network_filter_new_connection",
        filter_envoy_ptr,
        filter_module_ptr,
        abi::NetworkFilterDataStatus::CONTINUE,
        abi::NetworkFilterDataStatus::STOP_ITERATION,
        |f, h| status(f.on_new_connection(h)),
    )
}

/// `envoy_dynamic_module_on_network_filter_read` (client -> upstream bytes).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_read(
    filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
    filter_module_ptr: abi::NetworkFilterModulePtr,
    data_length: usize,
    end_stream: bool,
) -> abi::NetworkFilterDataStatus {
    with_filter(
        "on_network_filter_read",
        filter_envoy_ptr,
        filter_module_ptr,
        abi::NetworkFilterDataStatus::CONTINUE,
        abi::NetworkFilterDataStatus::STOP_ITERATION,
        |f, h| status(f.on_read(h, data_length, end_stream)),
    )
}

/// `envoy_dynamic_module_on_network_filter_write` (upstream -> client bytes).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_write(
    filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
    filter_module_ptr: abi::NetworkFilterModulePtr,
    data_length: usize,
    end_stream: bool,
) -> abi::NetworkFilterDataStatus {
    with_filter(
        "on_network_filter_write",
        filter_envoy_ptr,
        filter_module_ptr,
        // Re-entered: bytes the module itself writes to the client; not upstream bytes.
        abi::NetworkFilterDataStatus::CONTINUE,
        abi::NetworkFilterDataStatus::STOP_ITERATION,
        |f, h| status(f.on_write(h, data_length, end_stream)),
    )
}

/// `envoy_dynamic_module_on_network_filter_event`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_event(
    filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
    filter_module_ptr: abi::NetworkFilterModulePtr,
    event: abi::ConnectionEvent,
) {
    let close =
        event == abi::ConnectionEvent::REMOTE_CLOSE || event == abi::ConnectionEvent::LOCAL_CLOSE;
    if close && !filter_module_ptr.is_null() {
        // SAFETY: from `Box::into_raw` in filter_new, valid until filter_destroy; only a
        // shared reference, and only the `Cell`s are touched.
        let slot = unsafe { &*(filter_module_ptr as *const Slot<Filter>) };
        if slot.busy.get() {
            // Raised by our own `close` inside a running hook: that hook handles it.
            slot.close_deferred.set(true);
            return;
        }
    }
    with_filter(
        "on_network_filter_event",
        filter_envoy_ptr,
        filter_module_ptr,
        (),
        (),
        |f, h| {
            if close {
                f.on_close(h);
            }
        },
    )
}

/// `envoy_dynamic_module_on_network_filter_http_callout_done`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the ABI's shape
pub extern "C" fn envoy_dynamic_module_on_network_filter_http_callout_done(
    filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
    filter_module_ptr: abi::NetworkFilterModulePtr,
    callout_id: u64,
    result: abi::CalloutResult,
    headers: *mut abi::EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *mut EnvoyBuffer,
    body_chunks_size: usize,
) {
    with_filter(
        "on_network_filter_http_callout_done",
        filter_envoy_ptr,
        filter_module_ptr,
        (),
        (),
        |f, h| {
            // SAFETY: Envoy guarantees `headers_size` headers and `body_chunks_size` chunks (or
            // null) valid until this hook returns; the slices do not outlive it.
            let (status, body) =
                unsafe { callout_answer(headers, headers_size, body_chunks, body_chunks_size) };
            f.on_callout_done(
                h,
                callout_id,
                CalloutOutcome::from_abi(result),
                status,
                &body,
            )
        },
    )
}

/// The `:status` and the body chunks of a callout's answer.
///
/// # Safety
/// `headers`/`chunks` must point to `headers_size`/`chunks_size` values (or be null) whose
/// bytes stay valid for the running hook; the result must not outlive it.
unsafe fn callout_answer<'a>(
    headers: *const abi::EnvoyHttpHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) -> (Option<&'a [u8]>, Vec<&'a [u8]>) {
    // SAFETY: guaranteed by the caller.
    let (headers, chunks) = unsafe {
        (
            raw_slice(headers, headers_size),
            raw_slice(chunks, chunks_size),
        )
    };
    // SAFETY: chunk bytes are valid for the running hook (caller).
    let body = chunks.iter().map(|c| unsafe { envoy_bytes(*c) }).collect();
    (status_of(headers), body)
}

/// The `:status` value of a callout's answer headers (valid for the running hook).
fn status_of(headers: &[abi::EnvoyHttpHeader]) -> Option<&[u8]> {
    headers.iter().find_map(|hd| {
        // SAFETY: Envoy's header bytes are valid for the running hook, as the slice is.
        let key = unsafe {
            envoy_bytes(EnvoyBuffer {
                ptr: hd.key_ptr,
                length: hd.key_length,
            })
        };
        (key == b":status").then(|| {
            // SAFETY: as above.
            unsafe {
                envoy_bytes(EnvoyBuffer {
                    ptr: hd.value_ptr,
                    length: hd.value_length,
                })
            }
        })
    })
}

/// # Safety
/// `ptr` must point to `len` initialised values valid for the running hook, or be null.
unsafe fn raw_slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// `envoy_dynamic_module_on_network_filter_destroy`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_destroy(
    filter_module_ptr: abi::NetworkFilterModulePtr,
) {
    if filter_module_ptr.is_null() {
        return;
    }
    let r = catch_unwind(|| {
        // SAFETY: from `Box::into_raw` in filter_new; Envoy calls destroy exactly once, last.
        drop(unsafe { Box::from_raw(filter_module_ptr as *mut Slot<Filter>) });
    });
    if let Err(p) = r {
        log_panic("on_network_filter_destroy", &*p, "filter leaked");
    }
}

// ------------------------------------------------------------------------------------------
// Upstream HTTP-to-TCP bridge
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_config_new` (created lazily per worker).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_config_new(
    _config_envoy_ptr: abi::BridgeConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> abi::BridgeConfigModulePtr {
    let r = catch_unwind(|| {
        // SAFETY: Envoy owns both buffers for the duration of this hook.
        let (name, json) = unsafe { (envoy_bytes(name), envoy_bytes(config)) };
        match BridgeConfig::parse(json) {
            Ok(c) => Box::into_raw(Box::new(Arc::new(c))) as abi::BridgeConfigModulePtr,
            Err(e) => {
                host::log(
                    Level::Error,
                    &format!(
                        "meltemi: refusing bridge config (bridge_name {:?}): {e}",
                        String::from_utf8_lossy(name)
                    ),
                );
                std::ptr::null()
            }
        }
    });
    r.unwrap_or_else(|p| {
        log_panic(
            "on_upstream_http_tcp_bridge_config_new",
            &*p,
            "refusing the config",
        );
        std::ptr::null()
    })
}

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_config_destroy`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_config_destroy(
    config_module_ptr: abi::BridgeConfigModulePtr,
) {
    if config_module_ptr.is_null() {
        return;
    }
    let r = catch_unwind(|| {
        // SAFETY: from `Box::into_raw` in bridge config_new; destroyed once.
        drop(unsafe { Box::from_raw(config_module_ptr as *mut Arc<BridgeConfig>) });
    });
    if let Err(p) = r {
        log_panic(
            "on_upstream_http_tcp_bridge_config_destroy",
            &*p,
            "config leaked",
        );
    }
}

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_new` (one per bridged request).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_new(
    config_module_ptr: abi::BridgeConfigModulePtr,
    _bridge_envoy_ptr: abi::BridgeEnvoyPtr,
) -> abi::BridgeModulePtr {
    if config_module_ptr.is_null() {
        return std::ptr::null();
    }
    let r = catch_unwind(|| {
        // SAFETY: the config pointer came from bridge config_new and outlives its bridges;
        // it is only read.
        let config = unsafe { &*(config_module_ptr as *const Arc<BridgeConfig>) };
        Box::into_raw(Box::new(Slot::new(Bridge::with_config(config)))) as abi::BridgeModulePtr
    });
    r.unwrap_or_else(|p| {
        log_panic("on_upstream_http_tcp_bridge_new", &*p, "request fails");
        std::ptr::null()
    })
}

/// Runs `f` on the request's bridge inside `catch_unwind`; answers 500 on a panic.
fn with_bridge(
    hook: &'static str,
    bridge_envoy_ptr: abi::BridgeEnvoyPtr,
    bridge_module_ptr: abi::BridgeModulePtr,
    f: impl FnOnce(&mut Bridge, &mut EnvoyBridgeHost),
) {
    if bridge_module_ptr.is_null() {
        return;
    }
    // SAFETY: from `Box::into_raw` in bridge_new, valid until bridge_destroy. Envoy defers the
    // bridge's deletion past the running hook (its C++ touches `this` after calling us), so a
    // response sent inside `f` does not free the slot under our feet.
    let slot = unsafe { &*(bridge_module_ptr as *const Slot<Bridge>) };
    if slot.failed.get() || slot.busy.replace(true) {
        return;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: not busy before, so this is the only reference into `inner`.
        let bridge = unsafe { &mut *slot.inner.get() };
        // SAFETY: the pointer of the running hook; `host` dies with it.
        let mut host = unsafe { EnvoyBridgeHost::new(bridge_envoy_ptr) };
        f(bridge, &mut host)
    }));
    if let Err(p) = r {
        slot.failed.set(true);
        log_panic(hook, &*p, "answering 500");
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the closure's `&mut` is gone; this is again the only reference.
            let bridge = unsafe { &mut *slot.inner.get() };
            // SAFETY: as above.
            let mut host = unsafe { EnvoyBridgeHost::new(bridge_envoy_ptr) };
            bridge.answer(&mut host, 500, b"meltemi bridge: internal error");
        }));
    }
    slot.busy.set(false);
}

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_encode_headers`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_encode_headers(
    bridge_envoy_ptr: abi::BridgeEnvoyPtr,
    bridge_module_ptr: abi::BridgeModulePtr,
    end_of_stream: bool,
) {
    with_bridge(
        "on_upstream_http_tcp_bridge_encode_headers",
        bridge_envoy_ptr,
        bridge_module_ptr,
        |b, h| b.on_encode_headers(h, end_of_stream),
    )
}

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_encode_data`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_encode_data(
    bridge_envoy_ptr: abi::BridgeEnvoyPtr,
    bridge_module_ptr: abi::BridgeModulePtr,
    end_of_stream: bool,
) {
    with_bridge(
        "on_upstream_http_tcp_bridge_encode_data",
        bridge_envoy_ptr,
        bridge_module_ptr,
        |b, h| b.on_encode_data(h, end_of_stream),
    )
}

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_encode_trailers`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_encode_trailers(
    bridge_envoy_ptr: abi::BridgeEnvoyPtr,
    bridge_module_ptr: abi::BridgeModulePtr,
) {
    with_bridge(
        "on_upstream_http_tcp_bridge_encode_trailers",
        bridge_envoy_ptr,
        bridge_module_ptr,
        |b, h| b.on_encode_trailers(h),
    )
}

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_on_upstream_data`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_on_upstream_data(
    bridge_envoy_ptr: abi::BridgeEnvoyPtr,
    bridge_module_ptr: abi::BridgeModulePtr,
    end_of_stream: bool,
) {
    with_bridge(
        "on_upstream_http_tcp_bridge_on_upstream_data",
        bridge_envoy_ptr,
        bridge_module_ptr,
        |b, h| b.on_upstream_data(h, end_of_stream),
    )
}

/// `envoy_dynamic_module_on_upstream_http_tcp_bridge_destroy`.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_upstream_http_tcp_bridge_destroy(
    bridge_module_ptr: abi::BridgeModulePtr,
) {
    if bridge_module_ptr.is_null() {
        return;
    }
    let r = catch_unwind(|| {
        // SAFETY: from `Box::into_raw` in bridge_new; destroyed once, last.
        drop(unsafe { Box::from_raw(bridge_module_ptr as *mut Slot<Bridge>) });
    });
    if let Err(p) = r {
        log_panic("on_upstream_http_tcp_bridge_destroy", &*p, "bridge leaked");
    }
}

// ------------------------------------------------------------------------------------------
// Bootstrap extension: the route-discovery poller
// ------------------------------------------------------------------------------------------
//
// Configured as `envoy.bootstrap.dynamic_modules` with this module; its config string must be
// empty or `{}`. A main-thread timer ticks every `TICK_MS`; each tick starts a `GET` for every
// registered listener whose interval has passed and that has no poll in flight. Envoy holds
// its listeners until the extension signals init complete: the poller signals once every
// listener's first poll answered (or failed), or after `INIT_WAIT`, so a fresh Envoy starts
// with the current tables instead of the listener's placeholder ones.

/// Poll-timer granularity: a route change lands within interval + this + one callout.
const TICK_MS: u64 = 100;
/// Longest wait for the first answers before Envoy's listeners are let go.
const INIT_WAIT: Duration = Duration::from_secs(3);

struct Poller {
    envoy: abi::BootstrapConfigEnvoyPtr,
    /// The extension object's pointer (for server-wide stats), while it exists.
    extension: Option<abi::BootstrapEnvoyPtr>,
    timer: abi::BootstrapTimerPtr,
    pending: HashMap<u64, Weak<Discovery>>,
    started: Instant,
    /// Envoy is live (`server.state` 0): the init target no longer needs signalling.
    live: bool,
}

impl Poller {
    fn tick(&mut self) {
        // Re-armed first: a panic below (caught by the hook) must not stop the polling.
        // SAFETY: the timer was created for this config and is deleted only in its destroy.
        unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_timer_enable(self.timer, TICK_MS)
        };
        let now = crate::clock::now_ns();
        let all = rds::registered();
        for d in &all {
            if d.in_flight.load(Ordering::Acquire) || !d.claim_poll(now) {
                continue;
            }
            let started = d.with_request(|cluster, headers| {
                // SAFETY: `self.envoy` is this live config's pointer; timer hooks run on the
                // main thread.
                unsafe {
                    host::bootstrap_callout(self.envoy, cluster, headers, b"", rds::POLL_TIMEOUT_MS)
                }
            });
            match started {
                Ok(id) => {
                    d.in_flight.store(true, Ordering::Release);
                    self.pending.insert(id, Arc::downgrade(d));
                }
                Err(_) => {
                    d.with_config_sink(|s| d.on_answer(false, None, &[], s));
                }
            }
        }
        if !self.live && (all.iter().all(|d| d.answered()) || self.started.elapsed() >= INIT_WAIT) {
            // Repeated until the server is live: a signal before Envoy initializes the target
            // is lost (it does so only once every cluster is initialized, which with DNS or
            // xDS clusters takes a while), a later one is a no-op. (The extension's "worker
            // thread initialized" hook comes before that, while workers are created.)
            // SAFETY: the live config pointer, main thread.
            unsafe {
                abi::envoy_dynamic_module_callback_bootstrap_extension_config_signal_init_complete(
                    self.envoy,
                )
            };
            self.live = self.server_state() == Some(0);
        }
    }

    /// The `server.state` gauge (0 = live).
    fn server_state(&self) -> Option<u64> {
        let ext = self.extension?;
        let name = "server.state";
        let mut v = 0u64;
        // SAFETY: the extension pointer is live between its new and destroy hooks (cleared
        // there); the name and out-value outlive the call; main thread.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_get_gauge_value(
                ext,
                abi::ModuleBuffer::from_bytes(name.as_bytes()),
                &mut v,
            )
        };
        found.then_some(v)
    }

    fn on_done(&mut self, id: u64, ok: bool, status: Option<&[u8]>, body: &[&[u8]]) {
        let Some(d) = self.pending.remove(&id).and_then(|w| w.upgrade()) else {
            return;
        };
        d.in_flight.store(false, Ordering::Release);
        d.with_config_sink(|s| d.on_answer(ok, status, body, s));
    }
}

/// Runs `f` on the poller of a bootstrap config inside `catch_unwind`.
fn with_poller(
    hook: &'static str,
    config_module_ptr: abi::BootstrapConfigModulePtr,
    f: impl FnOnce(&mut Poller),
) {
    if config_module_ptr.is_null() {
        return;
    }
    // SAFETY: from `Box::into_raw` in bootstrap config_new, alive until its destroy; all
    // bootstrap hooks run on the main thread, the mutex only guards against re-entry.
    let poller = unsafe { &*(config_module_ptr as *const Mutex<Poller>) };
    let r = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(mut p) = poller.try_lock() {
            f(&mut p);
        }
    }));
    if let Err(p) = r {
        log_panic(hook, &*p, "route discovery continues on the next tick");
    }
}

/// `envoy_dynamic_module_on_bootstrap_extension_config_new` (main thread).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_config_new(
    config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> abi::BootstrapConfigModulePtr {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Envoy owns both buffers for the duration of this hook.
        let (name, json) = unsafe { (envoy_bytes(name), envoy_bytes(config)) };
        let text = String::from_utf8_lossy(json);
        let ok = text.trim().is_empty()
            || matches!(serde_json::from_str::<serde_json::Value>(&text),
                Ok(serde_json::Value::Object(o)) if o.is_empty());
        if !ok {
            host::log(
                Level::Error,
                &format!(
                    "meltemi: refusing bootstrap extension config (extension_name {:?}): expected empty or {{}}, got {text:?}",
                    String::from_utf8_lossy(name)
                ),
            );
            return std::ptr::null();
        }
        // SAFETY: the pointer of this running config_new, on the main thread.
        let timer = unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_timer_new(config_envoy_ptr)
        };
        if timer.is_null() {
            return std::ptr::null();
        }
        // SAFETY: the timer was just created; the first tick polls every listener at once.
        unsafe { abi::envoy_dynamic_module_callback_bootstrap_extension_timer_enable(timer, 0) };
        rds::set_bootstrap_polling(true);
        let poller = Poller {
            envoy: config_envoy_ptr,
            extension: None,
            timer,
            pending: HashMap::new(),
            started: Instant::now(),
            live: false,
        };
        Box::into_raw(Box::new(Mutex::new(poller))) as abi::BootstrapConfigModulePtr
    }));
    r.unwrap_or_else(|p| {
        log_panic(
            "on_bootstrap_extension_config_new",
            &*p,
            "refusing the config",
        );
        std::ptr::null()
    })
}

/// `envoy_dynamic_module_on_bootstrap_extension_config_destroy` (main thread).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_config_destroy(
    config_module_ptr: abi::BootstrapConfigModulePtr,
) {
    if config_module_ptr.is_null() {
        return;
    }
    let r = catch_unwind(|| {
        rds::set_bootstrap_polling(false);
        // SAFETY: from `Box::into_raw` in config_new; Envoy destroys it once.
        let poller = unsafe { Box::from_raw(config_module_ptr as *mut Mutex<Poller>) };
        let p = poller.into_inner().unwrap_or_else(|e| e.into_inner());
        for d in p.pending.values().filter_map(Weak::upgrade) {
            d.in_flight.store(false, Ordering::Release);
        }
        // SAFETY: our timer, deleted once, on the main thread.
        unsafe { abi::envoy_dynamic_module_callback_bootstrap_extension_timer_delete(p.timer) };
    });
    if let Err(p) = r {
        log_panic(
            "on_bootstrap_extension_config_destroy",
            &*p,
            "poller leaked",
        );
    }
}

/// `envoy_dynamic_module_on_bootstrap_extension_new`: the extension object only lends its
/// pointer to the config's poller (server-wide stats); it is the config module pointer itself.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_new(
    config_module_ptr: abi::BootstrapConfigModulePtr,
    extension_envoy_ptr: abi::BootstrapEnvoyPtr,
) -> abi::BootstrapModulePtr {
    with_poller("on_bootstrap_extension_new", config_module_ptr, |p| {
        p.extension = Some(extension_envoy_ptr)
    });
    config_module_ptr
}

/// `envoy_dynamic_module_on_bootstrap_extension_destroy` (before the config's destroy: the
/// extension holds the config).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_destroy(
    extension_module_ptr: abi::BootstrapModulePtr,
) {
    with_poller(
        "on_bootstrap_extension_destroy",
        extension_module_ptr,
        |p| p.extension = None,
    );
}

/// `envoy_dynamic_module_on_bootstrap_extension_server_initialized` (main thread).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_server_initialized(
    _extension_envoy_ptr: abi::BootstrapEnvoyPtr,
    _extension_module_ptr: abi::BootstrapModulePtr,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_worker_thread_initialized` (main thread, as
/// workers are created: measured before the init manager runs).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_worker_thread_initialized(
    _extension_envoy_ptr: abi::BootstrapEnvoyPtr,
    _extension_module_ptr: abi::BootstrapModulePtr,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_drain_started` (main thread).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_drain_started(
    _extension_envoy_ptr: abi::BootstrapEnvoyPtr,
    _extension_module_ptr: abi::BootstrapModulePtr,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_shutdown`: nothing to flush; completes at once
/// (Envoy waits for the completion before it exits).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_shutdown(
    _extension_envoy_ptr: abi::BootstrapEnvoyPtr,
    _extension_module_ptr: abi::BootstrapModulePtr,
    completion_callback: abi::EventCb,
    completion_context: *mut std::ffi::c_void,
) {
    if let Some(cb) = completion_callback {
        // SAFETY: Envoy's callback with its own context, called exactly once as required.
        unsafe { cb(completion_context) };
    }
}

/// `envoy_dynamic_module_on_bootstrap_extension_config_scheduled` (unused: no scheduler).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_config_scheduled(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    _config_module_ptr: abi::BootstrapConfigModulePtr,
    _event_id: u64,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_http_callout_done` (main thread).
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the ABI's shape
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_http_callout_done(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    config_module_ptr: abi::BootstrapConfigModulePtr,
    callout_id: u64,
    result: abi::CalloutResult,
    headers: *mut abi::EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *mut EnvoyBuffer,
    body_chunks_size: usize,
) {
    with_poller(
        "on_bootstrap_extension_http_callout_done",
        config_module_ptr,
        |p| {
            // SAFETY: as in the network filter's callout hook: valid for this hook only.
            let (status, body) =
                unsafe { callout_answer(headers, headers_size, body_chunks, body_chunks_size) };
            let ok = CalloutOutcome::from_abi(result) == CalloutOutcome::Success;
            p.on_done(callout_id, ok, status, &body);
        },
    )
}

/// `envoy_dynamic_module_on_bootstrap_extension_timer_fired` (main thread).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_timer_fired(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    config_module_ptr: abi::BootstrapConfigModulePtr,
    _timer_ptr: abi::BootstrapTimerPtr,
) {
    with_poller(
        "on_bootstrap_extension_timer_fired",
        config_module_ptr,
        Poller::tick,
    )
}

/// `envoy_dynamic_module_on_bootstrap_extension_file_changed` (unused: no file watches).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_file_changed(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    _config_module_ptr: abi::BootstrapConfigModulePtr,
    _path: EnvoyBuffer,
    _events: u32,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_admin_request` (unused: no admin handlers are
/// registered); answers 404.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_admin_request(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    _config_module_ptr: abi::BootstrapConfigModulePtr,
    _method: EnvoyBuffer,
    _path: EnvoyBuffer,
    _body: EnvoyBuffer,
) -> u32 {
    404
}

/// `envoy_dynamic_module_on_bootstrap_extension_cluster_add_or_update` (unused).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_cluster_add_or_update(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    _config_module_ptr: abi::BootstrapConfigModulePtr,
    _cluster_name: EnvoyBuffer,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_cluster_removal` (unused).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_cluster_removal(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    _config_module_ptr: abi::BootstrapConfigModulePtr,
    _cluster_name: EnvoyBuffer,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_listener_add_or_update` (unused).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_listener_add_or_update(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    _config_module_ptr: abi::BootstrapConfigModulePtr,
    _listener_name: EnvoyBuffer,
) {
}

/// `envoy_dynamic_module_on_bootstrap_extension_listener_removal` (unused).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_listener_removal(
    _config_envoy_ptr: abi::BootstrapConfigEnvoyPtr,
    _config_module_ptr: abi::BootstrapConfigModulePtr,
    _listener_name: EnvoyBuffer,
) {
}
