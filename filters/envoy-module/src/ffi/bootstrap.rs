//! The bootstrap extension's hooks (`envoy_dynamic_module_on_bootstrap_extension_*`): the
//! route-discovery poller, all on the main thread.
//!
//! Configured as `envoy.bootstrap.dynamic_modules` with this module; its config string must be
//! empty or `{}`. A main-thread timer ticks every `TICK_MS`; each tick starts a `GET` for every
//! registered listener whose interval has passed and that has no poll in flight. Envoy holds
//! its listeners until the extension signals init complete: the poller signals once every
//! listener's first poll answered (or failed), or after `INIT_WAIT`, so a fresh Envoy starts
//! with the current tables instead of the listener's placeholder ones.

use super::{callout_answer, envoy_bytes, log_panic};
use crate::abi::{self, EnvoyBuffer};
use crate::host::{self, CalloutOutcome, Level};
use crate::rds::{self, Discovery};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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
