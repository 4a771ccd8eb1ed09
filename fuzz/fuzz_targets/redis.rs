#![no_main]
//! Redis codec invariants: no panic; `used <= input`; "need more" asks for more than the input
//! and never 0; every strict prefix of a decoded frame is "need more" with a bound no larger
//! than the frame; the frame decodes the same from exactly its own bytes; decoding never
//! allocates (counting allocator).
use libfuzzer_sys::fuzz_target;
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
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;
use meltemi_codec::redis::{decode_request, decode_response};
use meltemi_codec::{Decoded, Limits};

macro_rules! check {
    ($data:expr, $decode:expr) => {{
        let data: &[u8] = $data;
        let decode = $decode;
        match decode(data) {
            Ok(Decoded::Frame { frame, used }) => {
                assert!(used > 0 && used <= data.len());
                let again = decode(&data[..used]).expect("own bytes decode");
                assert_eq!(again, Decoded::Frame { frame, used });
                for cut in 0..used {
                    match decode(&data[..cut]) {
                        Ok(Decoded::NeedMore(n)) => {
                            assert!(n.bytes() > cut, "need {n:?} at cut {cut}");
                            assert!(n.bytes() <= used, "need {n:?} > frame {used}");
                        }
                        other => panic!("prefix {cut} of {used}: {other:?}"),
                    }
                }
            }
            Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > data.len() && n.bytes() != 0),
            Err(e) => assert!(e.offset() <= data.len(), "{e}"),
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_frame: if sel & 1 == 0 {
            1 << 20
        } else {
            64 + usize::from(sel) * 4
        },
        max_depth: usize::from(sel >> 4) + 1,
    };
    let before = ALLOCS.load(Ordering::Relaxed);
    let r = decode_request(data, &limits);
    let s = decode_response(data, &limits);
    assert_eq!(ALLOCS.load(Ordering::Relaxed), before, "decode allocated");
    drop((r, s));
    check!(data, |b| decode_request(b, &limits));
    check!(data, |b| decode_response(b, &limits));
    if let Ok(Decoded::Frame { frame, .. }) = decode_request(data, &limits) {
        let args: Vec<&[u8]> = frame.args().collect();
        assert_eq!(args.len(), frame.argc);
        if frame.argc > 0 {
            assert_eq!(args[0], frame.name);
        }
        if let Some(k) = frame.key {
            assert!(args.contains(&k));
        }
    }
});
