//! Proves the Dubbo decode path does not allocate: a counting global allocator around decoding
//! every captured frame, iterating its attachments and reading exception fields.
//!
//! A `GlobalAlloc` impl is `unsafe` and the workspace forbids `unsafe_code` in every target, so
//! (as zookeeper_alloc.rs does) this test is compiled only when asked for:
//!
//! ```sh
//! RUSTFLAGS="--cfg meltemi_alloc_tests --cap-lints=warn" \
//!     cargo test -p meltemi-codec --test dubbo_alloc
//! ```
#![allow(unexpected_cfgs)]
#![cfg(meltemi_alloc_tests)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use meltemi_codec::dubbo::{self, Message, RequestPayload, ResponsePayload};
use meltemi_codec::Limits;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_does_not_allocate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/dubbo/");
    let mut frames = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bin") {
            frames.push(std::fs::read(p).unwrap());
        }
    }
    assert!(frames.len() >= 20);
    let limits = Limits::default();
    let before = ALLOCS.load(Ordering::SeqCst);
    let mut entries = 0usize;
    for f in &frames {
        for cut in [0, 10, 16, f.len() - 1] {
            let _ = dubbo::decode(&f[..cut], &limits);
        }
        let _ = dubbo::decode_header(f, &limits).unwrap();
        let (m, _) = dubbo::decode(f, &limits).unwrap().frame().unwrap();
        let att = match m {
            Message::Request(r) => match r.payload {
                RequestPayload::Invocation(inv) => inv.attachments,
                _ => None,
            },
            Message::Response(r) => match r.payload {
                ResponsePayload::Result(res) => {
                    let _ = (res.exception_class(), res.exception_message());
                    res.attachments
                }
                _ => None,
            },
        };
        if let Some(a) = att {
            entries += a.iter().count();
            let _ = a.get("group");
        }
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert!(entries > 30, "{entries}");
    assert_eq!(
        after - before,
        0,
        "decode allocated {} times",
        after - before
    );
}
