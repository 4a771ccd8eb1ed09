// The body of the SQL codec fuzz targets (`mysql.rs`, `postgres.rs`), included by both: the
// first byte picks the direction and the limits; the rest is driven through one `Connection`
// in chunks whose direction a bit of the data picks, as the engine drives it. Invariants: no
// panic; `used` >= 1 and never more than given; "need more" never asks for 0 or for less than
// is held; every strict prefix of a frame is "need more".
fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_frame: if sel & 4 == 0 { 1 << 20 } else { 64 },
        max_depth: 8,
    };
    let mut c = Connection::new();
    let mut rest = stream;
    let mut client = sel & 1 == 0;
    while !rest.is_empty() {
        let r = if client {
            c.decode_request(rest, &limits).map(|d| d.frame().map(|(_, u)| u))
        } else {
            c.decode_response(rest, &limits).map(|d| d.frame().map(|(_, u)| u))
        };
        match r {
            Err(e) => {
                std::hint::black_box(e.to_string());
                break;
            }
            Ok(None) => break,
            Ok(Some(used)) => {
                assert!(used >= 1 && used <= rest.len());
                if let Ok(Decoded::Frame { used: u, .. }) = decode_packet(rest, &limits) {
                    for k in 0..u.min(64) {
                        match decode_packet(&rest[..k], &limits) {
                            Ok(Decoded::NeedMore(n)) => assert!(n.bytes() > k),
                            other => panic!("prefix {k}: {other:?}"),
                        }
                    }
                }
                rest = &rest[used..];
            }
        }
        // Alternate directions by a bit of the data, so both state machines move.
        client = rest.first().is_some_and(|b| b & 0x80 == 0);
    }
});
