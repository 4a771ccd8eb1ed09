//! A counting global allocator shared by the `*_alloc` tests: each test binary that declares
//! `mod common;` counts every allocation and reallocation, per thread, so that the test harness's
//! own threads (output capture, the timeout monitor) cannot make a decode look allocating.
#![allow(unsafe_code)]
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Allocations (and reallocations) made by the calling thread since it started.
pub fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

fn count() {
    // `try_with`: during thread teardown the slot may be gone; such allocations are not ours.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

pub struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; only adds a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System` through `alloc`/`realloc` above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
