#![no_main]
//! Kafka codec fuzz target. Invariants, for requests and for responses of both header
//! versions: no panic; `used <= input`; "need more" asks for more than the input and never 0;
//! every strict prefix of a decoded frame is "need more" (never a frame, never an error);
//! bytes after a frame change nothing; walking topics and partitions never panics; decoding,
//! and walking what it returns, never allocates (counting allocator: this workspace, unlike the
//! main one, allows the `unsafe impl` it needs); an encoded error response decodes back as one
//! whole frame with the request's correlation id.
use libfuzzer_sys::fuzz_target;
use meltemi_codec::kafka::{
    decode_request, decode_response, encode_error_response, peek_correlation_id, Request,
};
use meltemi_codec::{Decoded, Limits};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
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

fn check_need(d: &Decoded<impl Sized>, len: usize) {
    if let Decoded::NeedMore(n) = d {
        assert!(
            n.bytes() > len && n.bytes() != 0,
            "need {n:?} with {len} bytes"
        );
    }
}

/// Walks everything a request exposes; returns a checksum so nothing is optimized away.
fn walk(r: &Request<'_>) -> usize {
    let mut s = r.body.len() + r.header.client_id.map_or(0, str::len);
    for (t, v) in r.header.tagged_fields.iter() {
        s = s.wrapping_add(t as usize).wrapping_add(v.len());
    }
    if let Some(topics) = r.topics() {
        for t in topics {
            match t {
                Ok(t) => {
                    for p in t.partitions {
                        s = s.wrapping_add(p as usize);
                    }
                }
                Err(_) => s = s.wrapping_add(1),
            }
        }
    }
    s.wrapping_add(usize::from(r.expects_response()))
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame: 1 << 20,
        max_depth: 8,
    };
    let before = ALLOCS.load(Ordering::Relaxed);

    // Requests.
    let d = decode_request(data, &limits);
    let mut sum = 0usize;
    if let Ok(d) = &d {
        check_need(d, data.len());
        if let Decoded::Frame { frame, used } = d {
            assert!(*used <= data.len());
            sum = sum.wrapping_add(walk(frame));
            for k in 0..*used {
                match decode_request(&data[..k], &limits) {
                    Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > k && n.bytes() <= *used),
                    other => panic!("prefix {k} of {used}: {other:?}"),
                }
            }
        }
    }
    // Responses, both header versions.
    for hv in [0u8, 1] {
        if let Ok(r) = decode_response(data, hv, &limits) {
            check_need(&r, data.len());
            if let Decoded::Frame { frame, used } = r {
                assert!(used <= data.len());
                assert_eq!(peek_correlation_id(data), Some(frame.correlation_id));
                sum = sum.wrapping_add(frame.body.len() + frame.tagged_fields.iter().count());
                for k in 0..used {
                    assert!(matches!(
                        decode_response(&data[..k], hv, &limits),
                        Ok(Decoded::NeedMore(_))
                    ));
                }
            }
        }
    }
    assert_eq!(ALLOCS.load(Ordering::Relaxed), before, "decode allocated");
    std::hint::black_box(sum);

    // Trailing bytes change nothing; error responses decode back.
    if let Ok(Decoded::Frame { frame, used }) = d {
        let mut more = data.to_vec();
        more.extend_from_slice(b"\x00\x00\x00\x08trailing");
        assert_eq!(
            decode_request(&more, &limits),
            Ok(Decoded::Frame { frame, used })
        );
        let mut out = Vec::new();
        if let Ok(n) = encode_error_response(&frame, 42, &mut out) {
            assert_eq!(n, out.len());
            let big = Limits {
                max_frame: usize::MAX,
                max_depth: 8,
            };
            match decode_response(&out, frame.response_header_version(), &big) {
                Ok(Decoded::Frame { frame: resp, used }) => {
                    assert_eq!(used, n);
                    assert_eq!(resp.correlation_id, frame.header.correlation_id);
                    let (k, v) = (frame.header.api_key, frame.header.api_version);
                    if let Some(e) = resp.error_code(k, v) {
                        assert_eq!(e, 42);
                    }
                }
                other => panic!("error response does not decode: {other:?}"),
            }
        }
    }
});
