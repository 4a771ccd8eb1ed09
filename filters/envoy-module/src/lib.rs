//! Meltemi's Envoy dynamic-module adapter: a native `.so` (`libmeltemi.so`) that Envoy >= 1.40
//! loads for `dynamic_module_config: {name: meltemi}`.
//!
//! What it holds (imports go one way: `ffi` -> `filter`/`bridge` -> `detour` -> `config` ->
//! `rds` -> `routing` -> `clock`, and everything -> `host` -> `abi`):
//! - [`abi`]: our own `extern "C"` declarations of the slice of Envoy's dynamic-module ABI we use
//!   (network filter, HTTP callout, HTTP-to-TCP upstream bridge, bootstrap extension, metrics,
//!   logging), written from Envoy v1.40.0's `abi.h` (ABI "v0.2.0"). Envoy's Rust SDK is not on
//!   crates.io.
//! - [`host`]: the safe layer. The glue talks to [`host::NetworkHost`] / [`host::BridgeHost`];
//!   `host/envoy.rs` implements them over Envoy's pointers (the `unsafe` calls), `host/fake.rs`
//!   runs the glue in native unit tests.
//! - [`filter`]: the network filter glue (an observer before `tcp_proxy`; with routes, the fast
//!   path and the detour of [`detour`]).
//! - [`bridge`]: the HTTP-to-TCP bridge glue (a callout's body goes to an upstream TCP
//!   connection, whole replies come back as the HTTP answer).
//! - [`config`]: the listener's compiled config; [`routing`]: one compiled route table with its
//!   limiters and stats; [`rds`]: route discovery, newer route tables fetched and swapped in for
//!   every connection without a listener update (polled by the bootstrap extension below, or on
//!   traffic).
//! - `ffi`: the exported `envoy_dynamic_module_on_*` hooks, one file per Envoy extension
//!   (`ffi/network.rs`, `ffi/bridge.rs`, `ffi/bootstrap.rs`: a main-thread timer for route
//!   discovery); every one runs inside `catch_unwind` and fails closed (closes the connection,
//!   counts `panics`, logs once).
//!
//! What it deliberately does not do: parse protocols (that is `meltemi-codec`, Redis included:
//! the bridge counts RESP values with the codec's walker) or decide policy (that is
//! `meltemi-engine`). `unsafe` is allowed in this crate only; every block says why it holds.

// The workspace denies `unsafe_code`; it is allowed only on the files that hold `unsafe`: the
// ABI declarations (`abi.rs`), the exported hooks (`ffi/`, every file of it) and the Envoy side
// of the host traits (`host/envoy.rs`, allowed in `host/mod.rs`). Every block carries a
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
pub mod redis;
pub mod routing;
pub mod shards;
