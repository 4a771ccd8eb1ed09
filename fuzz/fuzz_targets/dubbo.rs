#![no_main]
//! Dubbo codec fuzz target. Invariants: no panic; `used <= input`; "need more" asks for more than
//! the input and never 0; every strict prefix of a decoded frame is NeedMore (never another frame
//! and never an error, since a frame's validity is decided by its complete bytes); attachment
//! iteration of a decoded frame yields exactly `len()` entries; the header-only decoder agrees.
use libfuzzer_sys::fuzz_target;
use meltemi_codec::dubbo::{self, Message, RequestPayload, ResponsePayload};
use meltemi_codec::{Decoded, Limits};

fn check_attachments(m: &Message<'_>) {
    let att = match m {
        Message::Request(r) => match &r.payload {
            RequestPayload::Invocation(inv) => inv.attachments,
            _ => None,
        },
        Message::Response(r) => match &r.payload {
            ResponsePayload::Result(res) => {
                let _ = res.exception_class();
                let _ = res.exception_message();
                res.attachments
            }
            _ => None,
        },
    };
    if let Some(a) = att {
        assert_eq!(a.iter().count(), a.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame: 1 << 20,
        max_depth: 16,
    };
    let full = dubbo::decode(data, &limits);
    let head = dubbo::decode_header(data, &limits);
    match full {
        Ok(Decoded::Frame { frame, used }) => {
            assert!(used <= data.len() && used >= dubbo::HEADER_LEN);
            assert!(matches!(head, Ok(Decoded::Frame { used: u, .. }) if u == used));
            check_attachments(&frame);
            for cut in 0..used {
                match dubbo::decode(&data[..cut], &limits) {
                    Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > cut && n.bytes() <= used),
                    other => panic!("prefix {cut} of a {used}-byte frame gave {other:?}"),
                }
            }
        }
        Ok(Decoded::NeedMore(n)) => {
            assert!(n.bytes() > data.len() && n.bytes() != 0);
            assert_eq!(head, Ok(Decoded::NeedMore(n)));
        }
        Err(_) => {}
    }
});
