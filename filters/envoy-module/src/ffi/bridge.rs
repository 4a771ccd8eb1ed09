//! The HTTP-to-TCP upstream bridge's hooks (`envoy_dynamic_module_on_upstream_http_tcp_bridge_*`):
//! one [`Bridge`] per bridged request in a [`Slot`], run by [`with_bridge`].

use super::{envoy_bytes, log_panic, Slot};
use crate::abi::{self, EnvoyBuffer};
use crate::bridge::{Bridge, BridgeConfig};
use crate::host::{self, EnvoyBridgeHost, Level};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

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
