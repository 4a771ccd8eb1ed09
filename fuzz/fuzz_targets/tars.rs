#![no_main]
//! TARS codec fuzz target. Invariants, both directions: no panic; `used <= input`; "need more"
//! asks for more than the input and never 0 (the exact total once the length is known); every
//! strict prefix of a decoded packet is NeedMore; map iteration yields exactly `len()` entries;
//! head mode on any prefix never errors where the whole packet decoded, and agrees on the
//! request id and the length.
use libfuzzer_sys::fuzz_target;
use meltemi_codec::tars::{self, StrMap};
use meltemi_codec::{Decoded, Limits, Need};

fn maps(ms: &[StrMap<'_>]) {
    for m in ms {
        assert_eq!(m.iter().count(), m.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame: 1 << 20,
        max_depth: 16,
    };
    match tars::decode_request(data, &limits) {
        Ok(Decoded::Frame { frame, used }) => {
            assert!(used <= data.len() && used >= tars::HEADER_LEN);
            maps(&[frame.context, frame.status]);
            for cut in 0..used {
                match tars::decode_request(&data[..cut], &limits) {
                    Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > cut && n.bytes() <= used),
                    other => panic!("prefix {cut} of a {used}-byte packet gave {other:?}"),
                }
                match tars::decode_request_head(&data[..cut], &limits) {
                    Ok(Decoded::Frame { frame: h, used: u }) => {
                        assert_eq!((u, h.request_id, h.function), (used, frame.request_id, frame.function));
                    }
                    Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > cut),
                    Err(e) => panic!("head of {cut} bytes: {e}"),
                }
            }
        }
        Ok(Decoded::NeedMore(n)) => {
            assert!(n.bytes() > data.len());
            if data.len() >= tars::HEADER_LEN {
                assert!(matches!(n, Need::Exact(_)));
            }
        }
        Err(_) => {}
    }
    match tars::decode_response(data, &limits) {
        Ok(Decoded::Frame { frame, used }) => {
            assert!(used <= data.len());
            maps(&[frame.context, frame.status]);
            for cut in 0..used {
                match tars::decode_response_head(&data[..cut], &limits) {
                    Ok(Decoded::Frame { frame: h, used: u }) => {
                        assert_eq!((u, h.request_id), (used, frame.request_id));
                    }
                    Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > cut),
                    Err(e) => panic!("head of {cut} bytes: {e}"),
                }
            }
        }
        Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > data.len()),
        Err(_) => {}
    }
});
