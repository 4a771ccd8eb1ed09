//! Dubbo 2 codec throughput on frames captured from real peers (filters/codec/testdata/dubbo).
//!
//! No Rust crate on crates.io parses Dubbo 2 frames, so ours runs alone: header-only decode (the
//! framing/id-matching path; target >= 10M headers/s/core), full request decode with attachments,
//! responses, a large frame, and split input (a NeedMore on the first half, then the whole frame).
//!
//! cargo bench -p meltemi-benches --bench dubbo -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meltemi_codec::dubbo::{self, Message, RequestPayload};
use meltemi_codec::{Decoded, Limits};

fn testdata(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../filters/codec/testdata/dubbo/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A request like the captured sayHello, with a 64 KiB binary argument and 8 attachments.
fn large_request() -> Vec<u8> {
    let mut body =
        b"\x052.0.2\x30\x20org.meltemi.demo.GreetingService\x051.0.0\x06upload\x02[B".to_vec();
    let data = vec![0x5au8; 64 * 1024];
    for chunk in data.chunks(0x8000) {
        body.push(b'A');
        body.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        body.extend_from_slice(chunk);
    }
    body.extend_from_slice(b"\x20"); // final empty binary chunk
    body.push(b'H');
    for i in 0..8u8 {
        body.extend_from_slice(&[0x04, b'k', b'e', b'y', b'0' + i, 0x08]);
        body.extend_from_slice(b"value-");
        body.extend_from_slice(&[b'0' + i, b'!']);
    }
    body.push(b'Z');
    let mut f = vec![0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&body);
    f
}

fn group_of(m: &Message<'_>) -> usize {
    match m {
        Message::Request(r) => match &r.payload {
            RequestPayload::Invocation(inv) => inv.attachments.map_or(0, |a| {
                a.get("group").and_then(|v| v.as_str()).map_or(0, str::len)
            }),
            _ => 0,
        },
        Message::Response(_) => 0,
    }
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let heartbeat = testdata("17_client_heartbeat_request.bin");
    let request = testdata("03_client_request_getUser.bin");
    let response = testdata("04_provider_response_getUser.bin");
    let exception = testdata("16_provider_response_fail.bin");
    let large = large_request();
    assert!(dubbo::decode(&large, &limits).unwrap().frame().is_some());

    let mut g = c.benchmark_group("dubbo");
    for (name, frame) in [("heartbeat_17B", &heartbeat), ("request_208B", &request)] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("header_only/{name}/frames"), |b| {
            b.iter(|| match dubbo::decode_header(black_box(frame), &limits) {
                Ok(Decoded::Frame { frame, used }) => frame.request_id as usize + used,
                _ => 0,
            })
        });
    }
    for (name, frame) in [
        ("request_with_attachments_208B", &request),
        ("response_object_87B", &response),
        ("response_exception_278B", &exception),
        ("request_large_64KiB", &large),
    ] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("full/{name}/frames"), |b| {
            b.iter(|| match dubbo::decode(black_box(frame), &limits) {
                Ok(Decoded::Frame { frame, used }) => used + group_of(&frame),
                _ => 0,
            })
        });
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(format!("full/{name}/bytes"), |b| {
            b.iter(|| match dubbo::decode(black_box(frame), &limits) {
                Ok(Decoded::Frame { frame, used }) => used + group_of(&frame),
                _ => 0,
            })
        });
    }
    // Split input: the first half arrives (NeedMore with the exact length), then the rest.
    for (name, frame) in [
        ("request_with_attachments_208B", &request),
        ("request_large_64KiB", &large),
    ] {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(format!("split/{name}/bytes"), |b| {
            b.iter(|| {
                let half = &frame[..frame.len() / 2];
                let need = match dubbo::decode(black_box(half), &limits) {
                    Ok(Decoded::NeedMore(n)) => n.bytes(),
                    _ => 0,
                };
                match dubbo::decode(black_box(&frame[..need]), &limits) {
                    Ok(Decoded::Frame { frame, used }) => used + group_of(&frame),
                    _ => 0,
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
