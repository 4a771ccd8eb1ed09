//! The network filter's hooks (`envoy_dynamic_module_on_network_filter_*`): one [`Filter`] per
//! connection in a [`Slot`], run by [`with_filter`] on the connection's worker.

use super::{callout_answer, envoy_bytes, log_panic, panic_message, Slot};
use crate::abi::{self, EnvoyBuffer};
use crate::config::Config;
use crate::filter::{Filter, Flow};
use crate::host::{
    self, CalloutOutcome, Close, ConfigStats, EnvoyNetworkHost, EnvoyNetworkMetrics, Level,
    NetworkHost,
};
use crate::rds;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

fn status(flow: Flow) -> abi::NetworkFilterDataStatus {
    match flow {
        Flow::Continue => abi::NetworkFilterDataStatus::CONTINUE,
        Flow::Stop => abi::NetworkFilterDataStatus::STOP_ITERATION,
    }
}

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

/// `envoy_dynamic_module_on_network_filter_scheduled`: posted by `scheduler_commit` from a
/// module thread; runs on the connection's worker, only while the filter exists.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_scheduled(
    filter_envoy_ptr: abi::NetworkFilterEnvoyPtr,
    filter_module_ptr: abi::NetworkFilterModulePtr,
    event_id: u64,
) {
    with_filter(
        "on_network_filter_scheduled",
        filter_envoy_ptr,
        filter_module_ptr,
        (),
        (),
        |f, h| f.on_scheduled(h, event_id),
    )
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
