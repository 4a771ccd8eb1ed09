//! Thrift codec benchmarks on frames captured from Apache Thrift's Python library
//! (`filters/codec/testdata/thrift/`), against the `thrift` 0.17 and `pilota` 0.13 crates doing
//! the same work in the same run: read the message header (`read_message_begin`) from the same
//! bytes; for replies also the first field of the result struct; for unframed messages also skip
//! the argument struct to find the message's end (which is what framing an unframed stream takes).
//!
//! `pilota` 0.13 is left out where its `skip` fails on the captured frames: compact structs (its
//! generic `skip` reads fixed-width binary encodings) and the large `Big` struct in binary.
//! The machine is shared: compare ratios within one run.
//!
//! Run: `cargo bench -p meltemi-benches --bench thrift -- --warm-up-time 1 --measurement-time 3`
use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

type C = Criterion;
use meltemi_codec::thrift::{decode, Frame};
use meltemi_codec::{Decoded, Limits};

macro_rules! capture {
    ($name:literal) => {
        include_bytes!(concat!("../../filters/codec/testdata/thrift/", $name))
    };
}

/// Splits a captured stream into its frames.
fn frames(stream: &[u8]) -> Vec<&[u8]> {
    let limits = Limits::default();
    let mut out = Vec::new();
    let mut off = 0;
    while off < stream.len() {
        let (_, used) = decode(&stream[off..], &limits).unwrap().frame().unwrap();
        out.push(&stream[off..off + used]);
        off += used;
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Binary,
    Compact,
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    /// Message header only (framed: the length prefix delimits the frame).
    Header,
    /// Message header and the result struct's first field (reply status).
    ReplyStatus,
    /// Message header and skipping the struct (unframed: finding the end).
    SkipStruct,
}

#[inline]
fn ours(buf: &[u8], limits: &Limits) -> usize {
    match decode(black_box(buf), limits) {
        Ok(Decoded::Frame { frame, used }) => {
            let f: Frame<'_> = black_box(frame);
            black_box(f.message.map(|m| (m.seq_id, m.method.len())));
            used
        }
        _ => unreachable!(),
    }
}

/// The message bytes after a length prefix, read as a competitor would.
#[inline]
fn unframe(buf: &[u8], framed: bool) -> &[u8] {
    if framed {
        let n = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        &buf[4..4 + n]
    } else {
        buf
    }
}

#[inline]
fn apache(buf: &[u8], framed: bool, kind: Kind, work: Work) -> usize {
    use thrift::protocol::{TBinaryInputProtocol, TCompactInputProtocol, TInputProtocol, TType};
    fn go<P: TInputProtocol>(p: &mut P, work: Work) -> usize {
        let id = p.read_message_begin().unwrap();
        let mut n = id.name.len() + id.sequence_number as usize;
        match work {
            Work::Header => {}
            Work::ReplyStatus => {
                p.read_struct_begin().unwrap();
                n += p.read_field_begin().unwrap().id.unwrap_or(0) as usize;
            }
            Work::SkipStruct => p.skip(TType::Struct).unwrap(),
        }
        black_box(id);
        n
    }
    let msg = unframe(black_box(buf), framed);
    match kind {
        Kind::Binary => go(&mut TBinaryInputProtocol::new(msg, true), work),
        Kind::Compact => go(&mut TCompactInputProtocol::new(msg), work),
    }
}

#[inline]
fn pilota(src: &Bytes, framed: bool, kind: Kind, work: Work) -> usize {
    use pilota::thrift::{
        binary::TBinaryProtocol, compact::TCompactInputProtocol, TInputProtocol, TType,
    };
    fn go<P: TInputProtocol>(p: &mut P, work: Work) -> usize {
        let id = p.read_message_begin().unwrap();
        let mut n = id.name.len() + id.sequence_number as usize;
        match work {
            Work::Header => {}
            Work::ReplyStatus => {
                p.read_struct_begin().unwrap();
                n += p.read_field_begin().unwrap().id.unwrap_or(0) as usize;
            }
            Work::SkipStruct => n += p.skip(TType::Struct).unwrap(),
        }
        black_box(id);
        n
    }
    let mut b = black_box(src).clone();
    if framed {
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        b = b.slice(4..4 + n);
    }
    match kind {
        Kind::Binary => go(&mut TBinaryProtocol::new(&mut b, true), work),
        Kind::Compact => go(&mut TCompactInputProtocol::new(&mut b), work),
    }
}

fn compare(c: &mut C, group: &str, frame: &[u8], framed: bool, kind: Kind, work: Work) {
    let limits = Limits::default();
    let bytes = Bytes::copy_from_slice(frame);
    // Everybody must agree on the frame before we time it.
    assert_eq!(ours(frame, &limits), frame.len());
    apache(frame, framed, kind, work);
    // pilota's `skip` cannot skip compact structs, nor the captured `Big` struct (it stops with
    // "no remaining" on bytes that Apache Thrift, the `thrift` crate and we all read).
    let with_pilota = work != Work::SkipStruct || (kind == Kind::Binary && frame.len() < 1000);
    if with_pilota {
        pilota(&bytes, framed, kind, work);
    }
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("meltemi", |b| b.iter(|| ours(frame, &limits)));
    g.bench_function("thrift-0.17", |b| {
        b.iter(|| apache(frame, framed, kind, work))
    });
    if with_pilota {
        g.bench_function("pilota-0.13", |b| {
            b.iter(|| pilota(&bytes, framed, kind, work))
        });
    }
    g.finish();
}

fn small_and_large(c: &mut C) {
    let bf = frames(capture!("binary-framed.c2s.bin"));
    let bfr = frames(capture!("binary-framed.s2c.bin"));
    let cf = frames(capture!("compact-framed.c2s.bin"));
    let bu = frames(capture!("binary-unframed.c2s.bin"));
    let cu = frames(capture!("compact-unframed.c2s.bin"));
    // Small: add(2, 3) call; the NotFound reply (declared exception, field 1).
    compare(
        c,
        "thrift/small/framed-binary-call",
        bf[0],
        true,
        Kind::Binary,
        Work::Header,
    );
    compare(
        c,
        "thrift/small/framed-compact-call",
        cf[0],
        true,
        Kind::Compact,
        Work::Header,
    );
    compare(
        c,
        "thrift/small/framed-binary-reply",
        bfr[2],
        true,
        Kind::Binary,
        Work::ReplyStatus,
    );
    compare(
        c,
        "thrift/small/unframed-binary-call",
        bu[0],
        false,
        Kind::Binary,
        Work::SkipStruct,
    );
    compare(
        c,
        "thrift/small/unframed-compact-call",
        cu[0],
        false,
        Kind::Compact,
        Work::SkipStruct,
    );
    // Large: echo(big) call, ~8 KB (binary) / ~6.7 KB (compact).
    compare(
        c,
        "thrift/large/framed-binary-call",
        bf[6],
        true,
        Kind::Binary,
        Work::Header,
    );
    compare(
        c,
        "thrift/large/unframed-binary-call",
        bu[6],
        false,
        Kind::Binary,
        Work::SkipStruct,
    );
    compare(
        c,
        "thrift/large/unframed-compact-call",
        cu[6],
        false,
        Kind::Compact,
        Work::SkipStruct,
    );
}

/// A whole captured connection (8 calls) per iteration, whole and split in two at the middle of
/// every frame (the caller calls once with half a frame, waits as told, then calls again).
fn streams(c: &mut C) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("thrift/stream");
    for (name, stream) in [
        ("framed-binary", &capture!("binary-framed.c2s.bin")[..]),
        ("header-binary", &capture!("header-binary.c2s.bin")[..]),
        (
            "unframed-compact",
            &capture!("compact-unframed.c2s.bin")[..],
        ),
    ] {
        let fs = frames(stream);
        g.throughput(Throughput::Elements(fs.len() as u64));
        g.bench_with_input(BenchmarkId::new("whole", name), &fs, |b, fs| {
            b.iter(|| fs.iter().map(|f| ours(f, &limits)).sum::<usize>())
        });
        g.bench_with_input(BenchmarkId::new("split", name), &fs, |b, fs| {
            b.iter(|| {
                let mut n = 0;
                for f in fs {
                    match decode(black_box(&f[..f.len() / 2]), &limits) {
                        Ok(Decoded::NeedMore(need)) => n += need.bytes(),
                        _ => unreachable!(),
                    }
                    n += ours(f, &limits);
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, small_and_large, streams);
criterion_main!(benches);
