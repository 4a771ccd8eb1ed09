//! Meltemi's control plane: reads Istio services (ServiceEntry/Service ports named by protocol),
//! DestinationRule subsets and our route CRDs (Aeraki's `MetaRouter`, `RedisService`,
//! `RedisDestination`, accepted unchanged), and renders
//! - `EnvoyFilter`s that put the Meltemi filter (the proxy-wasm `.wasm` or the dynamic module `.so`)
//!   before `tcp_proxy` in the sidecar listeners of exactly those service ports ([`render`]);
//! - a complete Envoy bootstrap for running without Kubernetes ([`bootstrap`]);
//! - versioned route tables served over HTTP, so route edits reach live connections without a
//!   listener update ([`serve`]), and the sidecar bootstrap override that adds the module's
//!   route-discovery poller in a mesh ([`mesh_bootstrap`]).
//!
//! The render is pure (inputs in, objects out); the Kubernetes side ([`reconcile`]) only lists,
//! applies with server-side apply under one field manager, prunes and writes status.
//!
//! Not here: the filters themselves, and anything that talks to Envoy directly (no xDS server).
#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod crd;
pub mod fields;
pub mod inputs;
pub mod istio;
pub mod mesh_bootstrap;
pub mod model;
pub mod mtls;
pub mod process;
pub mod reconcile;
pub mod render;
pub mod routes;
pub mod schema;
pub mod serve;
pub mod validate;
