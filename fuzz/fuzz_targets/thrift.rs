#![no_main]
//! Thrift codec fuzz target. Invariants: no panic; `used <= input`; NeedMore asks for more than
//! the input and never 0; every strict prefix of a decoded frame is NeedMore (asking for no more
//! than the frame), never a frame or an error; the encoder round-trips.
use libfuzzer_sys::fuzz_target;
use meltemi_codec::thrift::{
    decode, decode_unframed, AppExceptionReply, AppExceptionType, Error, Frame, MessageType,
    Protocol, ReplyStatus, Transport,
};
use meltemi_codec::{Decoded, Limits};

fn run<'a>(mode: u8, buf: &'a [u8], l: &Limits) -> Result<Decoded<Frame<'a>>, Error> {
    match mode % 4 {
        0 | 1 => decode(buf, l),
        2 => decode_unframed(buf, Protocol::LaxBinary, l),
        _ => decode_unframed(buf, Protocol::Compact, l),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let limits = Limits {
        max_frame: if ctl & 0x10 != 0 { 256 } else { 1 << 20 },
        max_depth: if ctl & 0x20 != 0 { 3 } else { 32 },
    };
    match run(ctl, input, &limits) {
        Ok(Decoded::Frame { frame, used }) => {
            assert!(used <= input.len() && used > 0);
            assert!(used <= limits.max_frame);
            if let Some(h) = frame.header {
                let _ = h.headers().count();
                let _ = h.transforms().count();
            }
            // The frame alone decodes to the same frame.
            let again = run(ctl, &input[..used], &limits).expect("frame alone");
            assert_eq!(again, Decoded::Frame { frame, used });
            let step = if used > 2048 { used / 512 } else { 1 };
            for cut in (0..used).step_by(step) {
                match run(ctl, &input[..cut], &limits) {
                    Ok(Decoded::NeedMore(n)) => {
                        assert!(n.bytes() > cut && n.bytes() <= used, "cut {cut}: {n:?} of {used}");
                    }
                    other => panic!("prefix {cut} of {used}: {other:?}"),
                }
            }
        }
        Ok(Decoded::NeedMore(n)) => {
            assert!(n.bytes() > input.len());
            assert!(n.bytes() <= limits.max_frame.max(4));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // Encoder round trip on names/messages taken from the input.
    if input.len() >= 6 {
        let split = usize::from(input[0]).min(input.len() - 5);
        let name = String::from_utf8_lossy(&input[5..5 + split]);
        let message = String::from_utf8_lossy(&input[5 + split..]);
        let transport = [Transport::Framed, Transport::Unframed, Transport::Header][usize::from(input[1] % 3)];
        let protocol = [Protocol::Binary, Protocol::LaxBinary, Protocol::Compact][usize::from(input[2] % 3)];
        let seq_id = i32::from_be_bytes([input[1], input[2], input[3], input[4]]);
        let kind = AppExceptionType::from_i32(i32::from(input[3] as i8) * 1000 + i32::from(input[4]));
        let r = AppExceptionReply { transport, protocol, name: &name, seq_id, kind, message: &message };
        let mut out = Vec::new();
        let n = r.encode(&mut out);
        assert_eq!(n, out.len());
        assert_eq!(n, r.encoded_len());
        let l = Limits::default();
        let d = if transport == Transport::Unframed && protocol == Protocol::LaxBinary {
            decode_unframed(&out, protocol, &l)
        } else {
            decode(&out, &l)
        };
        let (f, used) = d.expect("encoded reply").frame().expect("whole");
        assert_eq!(used, n);
        let m = f.message.expect("message");
        assert_eq!((m.name, m.seq_id, m.kind), (&*name, seq_id, MessageType::Exception));
        match m.reply {
            Some(ReplyStatus::AppException(x)) => {
                assert_eq!(x.message, Some(message.as_bytes()));
                assert_eq!(x.kind, kind);
            }
            other => panic!("{other:?}"),
        }
    }
});
