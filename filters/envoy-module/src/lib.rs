//! Envoy dynamic-module adapter (in progress).
