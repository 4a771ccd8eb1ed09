//! Where the built filter artifacts are.
//!
//! `scripts/build-artifacts.sh` (called by `.ci/run` and the demo) builds the dynamic module in
//! the `release` profile and the wasm filter in the `release-wasm` profile for `wasm32-wasip1`,
//! into the cargo target dir. Tests find that dir from their own executable's path
//! (`<target>/debug/deps/<test>`), or from `MELTEMI_MODULE_DIR` / `MELTEMI_WASM` when set.

use std::path::PathBuf;

/// The cargo target dir the running binary was built into: `<target>/<profile>/deps/<test>`
/// for tests and benches, `<target>/<profile>/<bin>` for binaries (the bench harnesses).
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().map(|d| match d.file_name() {
        Some(n) if n == "deps" || n == "examples" => d.parent().unwrap_or(d),
        _ => d,
    });
    dir.and_then(|profile| profile.parent())
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

/// How to get the artifacts, for the messages when one is missing.
pub const BUILD_HINT: &str =
    "build it first with `bash scripts/build-artifacts.sh` (with the same \
     CARGO_TARGET_DIR; scripts/env.sh sets it), or point MELTEMI_MODULE_DIR / MELTEMI_WASM at it";

/// The dynamic module, if it is there (else the path where it was looked for).
pub fn find_module() -> Result<PathBuf, PathBuf> {
    let p = module_dir().join("libmeltemi.so");
    if p.is_file() {
        Ok(p)
    } else {
        Err(p)
    }
}

/// The proxy-wasm filter, if it is there (else the path where it was looked for).
pub fn find_wasm() -> Result<PathBuf, PathBuf> {
    let p = std::env::var_os("MELTEMI_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            target_dir()
                .join("wasm32-wasip1")
                .join("release-wasm")
                .join("meltemi_wasm.wasm")
        });
    if p.is_file() {
        Ok(p)
    } else {
        Err(p)
    }
}

/// The dynamic module, checked to exist.
pub fn module_path() -> PathBuf {
    find_module().unwrap_or_else(|p| panic!("{} is missing: {BUILD_HINT}", p.display()))
}

/// The proxy-wasm filter, checked to exist.
pub fn wasm_path() -> PathBuf {
    find_wasm().unwrap_or_else(|p| panic!("{} is missing: {BUILD_HINT}", p.display()))
}
