#![no_main]
//! kafka codec fuzz target (in progress).
use libfuzzer_sys::fuzz_target;
fuzz_target!(|_data: &[u8]| {});
