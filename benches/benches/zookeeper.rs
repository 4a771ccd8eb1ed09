//! ZooKeeper codec benchmarks on traffic captured from the real ZooKeeper 3.8.0 server and kazoo
//! 2.11 (`filters/codec/testdata/zookeeper`, see `scripts/capture/zookeeper_capture.py`).
//!
//! No Rust crate parses the ZooKeeper wire protocol on its own (the client crates keep their
//! Jute code private), so this measures ours only: frames/s and bytes/s for small requests and
//! replies, the 512 KiB frames, and whole versus split input.
//!
//! `cargo bench -p meltemi-benches --bench zookeeper -- --warm-up-time 1 --measurement-time 3`
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meltemi_codec::zookeeper::{
    decode_request, decode_response, Connection, Phase, Request, Response,
};
use meltemi_codec::{Decoded, Limits};
use std::hint::black_box;

fn data(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../filters/codec/testdata/zookeeper/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Splits a captured direction into frames (handshake first).
fn frames(stream: &[u8], requests: bool) -> Vec<Vec<u8>> {
    let l = Limits::default();
    let mut c = Connection::new();
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let used = if requests {
            c.decode_request(rest, &l).unwrap().frame().unwrap().1
        } else {
            c.decode_response(rest, &l).unwrap().frame().unwrap().1
        };
        out.push(rest[..used].to_vec());
        rest = &rest[used..];
    }
    out
}

/// Decodes every session frame of `buf`; returns the frame count (checked against the expected).
#[inline]
fn decode_all_requests(buf: &[u8], l: &Limits) -> usize {
    let mut rest = buf;
    let mut n = 0;
    while let Ok(Decoded::Frame { frame, used }) = decode_request(rest, Phase::Session, l) {
        if let Request::Op(o) = frame {
            black_box(o.path());
        }
        n += 1;
        rest = &rest[used..];
    }
    n
}

#[inline]
fn decode_all_replies(buf: &[u8], l: &Limits) -> usize {
    let mut rest = buf;
    let mut n = 0;
    while let Ok(Decoded::Frame { frame, used }) = decode_response(rest, Phase::Session, l) {
        if let Response::Reply(r) = frame {
            black_box((r.xid, r.err));
        }
        n += 1;
        rest = &rest[used..];
    }
    n
}

/// The proxy's way: bytes arrive in `chunk`-byte pieces into a held buffer; decode what is
/// whole, keep the rest.
fn decode_split_requests(buf: &[u8], chunk: usize, held: &mut Vec<u8>, l: &Limits) -> usize {
    held.clear();
    let mut n = 0;
    for piece in buf.chunks(chunk) {
        held.extend_from_slice(piece);
        let mut start = 0;
        while let Ok(Decoded::Frame { frame, used }) =
            decode_request(&held[start..], Phase::Session, l)
        {
            if let Request::Op(o) = frame {
                black_box(o.path());
            }
            n += 1;
            start += used;
        }
        held.drain(..start);
    }
    n
}

fn bench(c: &mut Criterion) {
    let l = Limits::default();
    let req = frames(&data("conn1.c2s.bin"), true);
    let resp = frames(&data("conn1.s2c.bin"), false);
    // Small frames: the session after the handshake, without the 512 KiB ones.
    let small_req: Vec<u8> = req[1..]
        .iter()
        .filter(|f| f.len() < 4096)
        .flatten()
        .copied()
        .collect();
    let small_req_n = req[1..].iter().filter(|f| f.len() < 4096).count();
    let small_resp: Vec<u8> = resp[1..]
        .iter()
        .filter(|f| f.len() < 4096)
        .flatten()
        .copied()
        .collect();
    let small_resp_n = resp[1..].iter().filter(|f| f.len() < 4096).count();
    let big_req = req.iter().find(|f| f.len() > 4096).unwrap().clone();
    let big_resp = resp.iter().find(|f| f.len() > 4096).unwrap().clone();
    // One getData request (30 bytes, xid 6, /meltemi/node) and one error reply (20 bytes).
    let get_data = req[7].clone();
    let nonode = resp[17].clone();
    assert_eq!(decode_all_requests(&small_req, &l), small_req_n);
    assert_eq!(decode_all_replies(&small_resp, &l), small_resp_n);
    assert_eq!(get_data.len(), 30);
    assert_eq!(nonode.len(), 20);

    let mut g = c.benchmark_group("zookeeper/small");
    g.throughput(Throughput::Elements(1));
    g.bench_function("getData request (30 B)", |b| {
        b.iter(|| decode_all_requests(black_box(&get_data), &l))
    });
    g.bench_function("error reply (20 B)", |b| {
        b.iter(|| decode_all_replies(black_box(&nonode), &l))
    });
    g.throughput(Throughput::Elements(small_req_n as u64));
    g.bench_function("request stream, frames/s", |b| {
        b.iter(|| decode_all_requests(black_box(&small_req), &l))
    });
    g.throughput(Throughput::Bytes(small_req.len() as u64));
    g.bench_function("request stream, bytes/s", |b| {
        b.iter(|| decode_all_requests(black_box(&small_req), &l))
    });
    g.throughput(Throughput::Elements(small_resp_n as u64));
    g.bench_function("reply stream, frames/s", |b| {
        b.iter(|| decode_all_replies(black_box(&small_resp), &l))
    });
    g.throughput(Throughput::Bytes(small_resp.len() as u64));
    g.bench_function("reply stream, bytes/s", |b| {
        b.iter(|| decode_all_replies(black_box(&small_resp), &l))
    });
    g.finish();

    let mut g = c.benchmark_group("zookeeper/split");
    let mut held = Vec::with_capacity(8192);
    for chunk in [16usize, 256] {
        g.throughput(Throughput::Elements(small_req_n as u64));
        g.bench_function(
            format!("request stream in {chunk} B pieces, frames/s"),
            |b| b.iter(|| decode_split_requests(black_box(&small_req), chunk, &mut held, &l)),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("zookeeper/large");
    g.throughput(Throughput::Bytes(big_req.len() as u64));
    g.bench_function("create request (512 KiB), bytes/s", |b| {
        b.iter(|| decode_all_requests(black_box(&big_req), &l))
    });
    g.throughput(Throughput::Bytes(big_resp.len() as u64));
    g.bench_function("getData reply (512 KiB), bytes/s", |b| {
        b.iter(|| decode_all_replies(black_box(&big_resp), &l))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
