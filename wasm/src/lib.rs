//! proxy-wasm network filter (in progress).
