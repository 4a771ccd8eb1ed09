//! Where the built filter artifacts are.
//!
//! `scripts/build-artifacts.sh` (called by `.ci/run` and the demo) builds the dynamic module in
//! the `release` profile and the wasm filter in the `release-wasm` profile for `wasm32-wasip1`,
//! into the cargo target dir. Tests find that dir from their own executable's path
//! (`<target>/debug/deps/<test>`), or from `MELTEMI_MODULE_DIR` / `MELTEMI_WASM` when set.

use std::path::PathBuf;

/// The cargo target dir the running test binary was built into.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/<profile>/deps/<exe>
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

/// The directory holding `libmeltemi.so` (for `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
pub fn module_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MELTEMI_MODULE_DIR") {
        return PathBuf::from(d);
    }
    target_dir().join("release")
}

/// The dynamic module, checked to exist.
pub fn module_path() -> PathBuf {
    let p = module_dir().join("libmeltemi.so");
    assert!(
        p.is_file(),
        "{} is missing: build it first with scripts/build-artifacts.sh",
        p.display()
    );
    p
}

/// The proxy-wasm filter, checked to exist.
pub fn wasm_path() -> PathBuf {
    let p = std::env::var_os("MELTEMI_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            target_dir()
                .join("wasm32-wasip1")
                .join("release-wasm")
                .join("meltemi_wasm.wasm")
        });
    assert!(
        p.is_file(),
        "{} is missing: build it first with scripts/build-artifacts.sh",
        p.display()
    );
    p
}
