//! TARS codec throughput on packets captured from the real tars4nodejs framework
//! (filters/codec/testdata/tars).
//!
//! No Rust crate on crates.io parses TARS packets that this workspace could compare with, so
//! ours runs alone: the length-only framing path, full request decode (TARS with a context
//! map, TUP), responses, a 20 KB packet, head mode, and split input.
//!
//! cargo bench -p meltemi-benches --bench tars -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meltemi_codec::tars;
use meltemi_codec::{Decoded, Limits};

fn packets(name: &str) -> Vec<Vec<u8>> {
    let p = format!(
        "{}/../filters/codec/testdata/tars/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let all = std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut v = Vec::new();
    let mut rest = &all[..];
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        v.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    v
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let tars_req = packets("tars.c2s.bin");
    let tup_req = packets("tup3.c2s.bin");
    let tars_resp = packets("tars.s2c.bin");
    let tup_resp = packets("tup2.s2c.bin");

    let mut g = c.benchmark_group("tars");
    let req = |f: &[u8]| match tars::decode_request(black_box(f), &limits) {
        Ok(Decoded::Frame { frame, used }) => used + frame.function.len() + frame.context.len(),
        _ => 0,
    };
    let resp = |f: &[u8]| match tars::decode_response(black_box(f), &limits) {
        Ok(Decoded::Frame { frame, used }) => used + frame.ret.unwrap_or(0) as usize,
        _ => 0,
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("length_only/frames", |b| {
        b.iter(|| tars::frame_len(black_box(&tars_req[0]), &limits).is_ok())
    });
    for (name, frame, is_req) in [
        ("request_tars_context_82B", &tars_req[0], true),
        ("request_tup3_74B", &tup_req[0], true),
        ("response_tars_24B", &tars_resp[0], false),
        ("response_tup2_137B", &tup_resp[0], false),
        ("request_large_20KB", &tars_req[3], true),
    ] {
        for (unit, tp) in [
            ("frames", Throughput::Elements(1)),
            ("bytes", Throughput::Bytes(frame.len() as u64)),
        ] {
            g.throughput(tp);
            g.bench_function(format!("full/{name}/{unit}"), |b| {
                b.iter(|| if is_req { req(frame) } else { resp(frame) })
            });
        }
    }
    // Head mode on the first 256 bytes of the large packet (the engine's path past its cap).
    let large = &tars_req[3];
    g.throughput(Throughput::Elements(1));
    g.bench_function("head/request_large_20KB/frames", |b| {
        b.iter(
            || match tars::decode_request_head(black_box(&large[..256]), &limits) {
                Ok(Decoded::Frame { frame, used }) => used + frame.function.len(),
                _ => 0,
            },
        )
    });
    // Split input: the first half arrives (NeedMore with the exact length), then the rest.
    let first = &tars_req[0];
    g.throughput(Throughput::Bytes(first.len() as u64));
    g.bench_function("split/request_tars_context_82B/bytes", |b| {
        b.iter(|| {
            let need = match tars::decode_request(black_box(&first[..first.len() / 2]), &limits) {
                Ok(Decoded::NeedMore(n)) => n.bytes(),
                _ => 0,
            };
            req(&first[..need])
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
