//! Meltemi's Envoy dynamic-module adapter: a native `.so` (`libmeltemi.so`) that Envoy >= 1.40
//! loads for `dynamic_module_config: {name: meltemi}`.
//!
//! What it holds:
//! - [`abi`]: our own `extern "C"` declarations of the slice of Envoy's dynamic-module ABI we use
//!   (network filter, HTTP callout, HTTP-to-TCP upstream bridge, metrics, logging), written from
//!   Envoy v1.40.0's `abi.h` (ABI "v0.2.0"). Envoy's Rust SDK is not on crates.io.
//! - [`host`]: the safe layer. The glue talks to [`host::NetworkHost`] / [`host::BridgeHost`];
//!   the Envoy implementations hold the `unsafe` calls, [`host::fake`] runs the glue natively.
//! - [`filter`]: the network filter glue (today a pass-through observer before `tcp_proxy`:
//!   bytes each way, Redis commands, a test-only callout probe).
//! - [`bridge`]: the HTTP-to-TCP bridge glue (a callout's body goes to an upstream TCP
//!   connection, whole replies come back as the HTTP answer).
//! - [`rds`]: route discovery, newer route tables fetched and swapped in for every connection
//!   without a listener update (polled by the bootstrap extension below, or on traffic).
//! - `ffi`: the exported `envoy_dynamic_module_on_*` hooks (network filter, bridge, and the
//!   route-discovery bootstrap extension: a main-thread timer); every one runs inside
//!   `catch_unwind` and fails closed (closes the connection, counts `panics`, logs once).
//!
//! What it deliberately does not do: parse protocols (that is `meltemi-codec`; a private RESP
//! counter stands in until `meltemi_codec::redis::decode_request` lands, see [`resp`]) or decide
//! policy (that is `meltemi-engine`). `unsafe` is allowed in this crate only; every block says
//! why it holds.

// The workspace denies `unsafe_code`; the FFI layer (the ABI declarations, the exported hooks
// and the Envoy side of the host traits) is where it is allowed, and every block carries a
// `// SAFETY:` line. The glue modules stay under the workspace's deny.
#[allow(unsafe_code)]
pub mod abi;
pub mod bridge;
mod clock;
pub mod config;
pub mod detour;
#[allow(unsafe_code)]
mod ffi;
pub mod filter;
mod held;
pub mod host;
pub mod rds;
pub mod resp;
pub mod routing;
