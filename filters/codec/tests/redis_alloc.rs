//! Proves the Redis decode path does not allocate: a counting global allocator around
//! decoding every captured frame (requests and replies, RESP2 and RESP3), prefixes and errors.
//!
//! A `#[global_allocator]` needs `unsafe impl GlobalAlloc`, which the workspace's
//! `unsafe_code = "forbid"` refuses in every target, so this file is compiled only on request:
//!
//!     RUSTFLAGS="--cfg meltemi_alloc_test --cap-lints=warn" \
//!         cargo test -p meltemi-codec --test redis_alloc
//!
//! (The fuzz target `fuzz/fuzz_targets/redis.rs`, outside the workspace, counts allocations
//! on every fuzz input too.)
#![allow(unexpected_cfgs)]
#![cfg(meltemi_alloc_test)]
use meltemi_codec::redis::{decode_request, decode_response, Command};
use meltemi_codec::{Decoded, Limits};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System` with this layout (every path above allocates there).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for dealloc; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn decode_does_not_allocate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/redis");
    let mut files: Vec<(bool, Vec<u8>)> = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().path();
        let n = name.to_string_lossy().into_owned();
        if n.ends_with(".bin") {
            files.push((n.ends_with(".c2s.bin"), std::fs::read(&name).unwrap()));
        }
    }
    let extra: Vec<u8> =
        b"*?\r\n|1\r\n+a\r\n+b\r\n$?\r\n;2\r\nhi\r\n;0\r\n%1\r\n:1\r\n#t\r\n.\r\n".to_vec();
    let limits = Limits::default();
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut frames = 0usize;
    let mut keys = 0usize;
    for (is_req, buf) in &files {
        let mut p = 0;
        while p < buf.len() {
            let used = if *is_req {
                match decode_request(&buf[p..], &limits).unwrap() {
                    Decoded::Frame { frame, used } => {
                        keys +=
                            usize::from(frame.key.is_some() && frame.command != Command::Unknown);
                        keys += frame.args().count();
                        used
                    }
                    Decoded::NeedMore(_) => unreachable!(),
                }
            } else {
                match decode_response(&buf[p..], &limits).unwrap() {
                    Decoded::Frame { used, .. } => used,
                    Decoded::NeedMore(_) => unreachable!(),
                }
            };
            // A prefix (NeedMore) and a broken tail (error) must not allocate either.
            let _ = decode_response(&buf[p..p + used / 2], &limits);
            let _ = decode_request(&buf[p..p + used / 2], &limits);
            frames += 1;
            p += used;
        }
    }
    assert!(matches!(
        decode_response(&extra, &limits),
        Ok(Decoded::Frame { .. })
    ));
    assert!(decode_response(b"*1\r\nX", &limits).is_err());
    assert!(decode_request(b"get \"x", &limits).is_ok());
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        0,
        "decode allocated ({frames} frames, {keys} keys)"
    );
    assert!(frames > 2000);
}
