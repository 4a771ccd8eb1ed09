//! The exported event hooks (`envoy_dynamic_module_on_*`), one file per Envoy extension the
//! `.so` implements:
//! - `network`: the network filter (`envoy.filters.network.dynamic_modules`), one object per
//!   connection;
//! - `bridge`: the HTTP-to-TCP upstream bridge (`envoy.upstreams.http.dynamic_modules`), one
//!   object per bridged request;
//! - `bootstrap`: the bootstrap extension (`envoy.bootstrap.dynamic_modules`) that polls route
//!   discovery from a main-thread timer.
//!
//! This file holds what they share: the program hook, panic containment, the [`Slot`] that
//! holds a per-connection (per-request) object, and reading the buffers Envoy lends.
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
//! (else `cx_active`/`request_active` never come down for that connection; see `network`).
//!
//! Every file here holds `unsafe` (pointer casts, `#[no_mangle]` exports), so each is allowed
//! `unsafe_code`; every block says why it holds.

use crate::abi::{self, EnvoyBuffer};
use crate::host::{self, Level};
use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

#[allow(unsafe_code)]
mod bootstrap;
#[allow(unsafe_code)]
mod bridge;
#[allow(unsafe_code)]
mod network;

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

/// `envoy_dynamic_module_on_program_init`: returns the ABI version string.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    let _ = catch_unwind(install_panic_hook);
    abi::ABI_VERSION.as_ptr().cast()
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
