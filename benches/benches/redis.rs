//! Redis codec benchmarks on frames captured from a real redis-server 7.0 (see
//! `filters/codec/testdata/redis/README.md`), ours against `redis-protocol` 6 and `resp-rs` 0.3
//! in the same run, doing the same work:
//! - requests: frame one request, classify its command (every parser hands its name to the
//!   same `Command::from_name`) and take its first key (the others: argument 1);
//! - replies: frame one reply and tell its kind (and, for errors, the text).
//!
//! Each competitor runs its fastest safe entry point: `redis_protocol::resp2::decode::decode_range`
//! / `resp3::decode::complete::decode_range` (offsets, no copies) and `resp_rs::resp2::parse_frame`
//! / `resp3::parse_frame` (zero-copy `Bytes` slices; the input `Bytes` is built once outside
//! the timed loop). `resp-rs`'s `parse_frame_unchecked` is left out: it is undefined behaviour
//! on truncated or malformed input, so it does not do the same work.
//!
//! Run: `cargo bench -p meltemi-benches --bench redis -- --warm-up-time 1 --measurement-time 3`
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meltemi_codec::redis::{decode_request, decode_response, Command, Value};
use meltemi_codec::{Decoded, Limits};
use std::hint::black_box;

fn testdata(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../filters/codec/testdata/redis")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Splits a stream into frame boundaries with our decoder (checked against the other two in
/// `check_same_frames`).
fn frame_ends(buf: &[u8], request: bool) -> Vec<usize> {
    let l = Limits::default();
    let mut p = 0;
    let mut ends = vec![];
    while p < buf.len() {
        let used = if request {
            decode_request(&buf[p..], &l).unwrap().frame().unwrap().1
        } else {
            decode_response(&buf[p..], &l).unwrap().frame().unwrap().1
        };
        p += used;
        ends.push(p);
    }
    ends
}

/// The redis-benchmark connection whose first request starts with `prefix`: (requests, replies).
fn bench_session(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let d =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../filters/codec/testdata/redis");
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("bench") && n.ends_with(".c2s.bin"))
        .collect();
    names.sort();
    for n in names {
        let b = testdata(&n);
        if b.starts_with(prefix) {
            return (b, testdata(&n.replace("c2s", "s2c")));
        }
    }
    panic!(
        "no session starting with {}",
        String::from_utf8_lossy(prefix)
    );
}

// ----- requests: command + first key ------------------------------------------------------------

#[inline(always)]
fn ours_req(buf: &[u8], l: &Limits) -> (usize, usize) {
    let mut p = 0;
    let mut acc = 0usize;
    while p < buf.len() {
        match decode_request(&buf[p..], l) {
            Ok(Decoded::Frame { frame, used }) => {
                acc += frame.command as usize + frame.key.map_or(0, |k| k.len());
                p += used;
            }
            _ => break,
        }
    }
    (p, acc)
}

#[inline(always)]
fn rp_req(buf: &[u8]) -> (usize, usize) {
    use redis_protocol::resp2::decode::decode_range;
    use redis_protocol::resp2::types::RangeFrame;
    let mut p = 0;
    let mut acc = 0usize;
    while p < buf.len() {
        match decode_range(&buf[p..]) {
            Ok(Some((RangeFrame::Array(args), used))) => {
                let b = &buf[p..p + used];
                if let Some(RangeFrame::BulkString((s, e))) = args.first() {
                    acc += Command::from_name(&b[*s..*e]) as usize;
                }
                if let Some(RangeFrame::BulkString((s, e))) = args.get(1) {
                    acc += b[*s..*e].len();
                }
                p += used;
            }
            _ => break,
        }
    }
    (p, acc)
}

#[inline(always)]
fn rr_req(buf: &Bytes) -> (usize, usize) {
    use resp_rs::resp2::{parse_frame, Frame};
    let mut rest = buf.clone();
    let mut acc = 0usize;
    while !rest.is_empty() {
        match parse_frame(rest) {
            Ok((Frame::Array(Some(args)), r)) => {
                if let Some(Frame::BulkString(Some(n))) = args.first() {
                    acc += Command::from_name(n) as usize;
                }
                if let Some(Frame::BulkString(Some(k))) = args.get(1) {
                    acc += k.len();
                }
                rest = r;
            }
            _ => return (0, acc),
        }
    }
    (buf.len(), acc)
}

// ----- replies: kind --------------------------------------------------------------------------

#[inline(always)]
fn kind_of(v: &Value<'_>) -> usize {
    match v {
        Value::Error(e) => 100 + e.text.len(),
        Value::Bulk(b) => b.len(),
        Value::Array(a) | Value::Map(a) | Value::Set(a) | Value::Push(a) => 7 + a.len.unwrap_or(0),
        Value::Integer(_) => 1,
        _ => 2,
    }
}

#[inline(always)]
fn ours_rep(buf: &[u8], l: &Limits) -> (usize, usize) {
    let mut p = 0;
    let mut acc = 0usize;
    while p < buf.len() {
        match decode_response(&buf[p..], l) {
            Ok(Decoded::Frame { frame, used }) => {
                acc += kind_of(&frame.value);
                p += used;
            }
            _ => break,
        }
    }
    (p, acc)
}

#[inline(always)]
fn rp2_rep(buf: &[u8]) -> (usize, usize) {
    use redis_protocol::resp2::decode::decode_range;
    use redis_protocol::resp2::types::RangeFrame;
    let mut p = 0;
    let mut acc = 0usize;
    while p < buf.len() {
        match decode_range(&buf[p..]) {
            Ok(Some((f, used))) => {
                acc += match f {
                    RangeFrame::Error((s, e)) => 100 + e - s,
                    RangeFrame::BulkString((s, e)) => e - s,
                    RangeFrame::Array(a) => 7 + a.len(),
                    RangeFrame::Integer(_) => 1,
                    _ => 2,
                };
                p += used;
            }
            _ => break,
        }
    }
    (p, acc)
}

#[inline(always)]
fn rp3_rep(buf: &[u8]) -> (usize, usize) {
    use redis_protocol::resp3::decode::complete::decode_range;
    use redis_protocol::resp3::types::RangeFrame;
    let mut p = 0;
    let mut acc = 0usize;
    while p < buf.len() {
        match decode_range(&buf[p..]) {
            Ok(Some((f, used))) => {
                acc += match f {
                    RangeFrame::SimpleError { data: (s, e), .. }
                    | RangeFrame::BlobError { data: (s, e), .. } => 100 + e - s,
                    RangeFrame::BlobString { data: (s, e), .. } => e - s,
                    RangeFrame::Array { data, .. } | RangeFrame::Push { data, .. } => {
                        7 + data.len()
                    }
                    RangeFrame::Set { data, .. } => 7 + data.len(),
                    RangeFrame::Map { data, .. } => 7 + data.len(),
                    RangeFrame::Number { .. } => 1,
                    _ => 2,
                };
                p += used;
            }
            _ => break,
        }
    }
    (p, acc)
}

#[inline(always)]
fn rr2_rep(buf: &Bytes) -> (usize, usize) {
    use resp_rs::resp2::{parse_frame, Frame};
    let mut rest = buf.clone();
    let mut acc = 0usize;
    while !rest.is_empty() {
        match parse_frame(rest) {
            Ok((f, r)) => {
                acc += match f {
                    Frame::Error(e) => 100 + e.len(),
                    Frame::BulkString(Some(b)) => b.len(),
                    Frame::Array(Some(a)) => 7 + a.len(),
                    Frame::Integer(_) => 1,
                    _ => 2,
                };
                rest = r;
            }
            _ => return (0, acc),
        }
    }
    (buf.len(), acc)
}

#[inline(always)]
fn rr3_rep(buf: &Bytes) -> (usize, usize) {
    use resp_rs::resp3::{parse_frame, Frame};
    let mut rest = buf.clone();
    let mut acc = 0usize;
    while !rest.is_empty() {
        match parse_frame(rest) {
            Ok((f, r)) => {
                acc += match f {
                    Frame::Error(e) | Frame::BlobError(e) => 100 + e.len(),
                    Frame::BulkString(Some(b)) => b.len(),
                    Frame::Array(Some(a)) | Frame::Set(a) | Frame::Push(a) => 7 + a.len(),
                    Frame::Map(m) => 7 + m.len(),
                    Frame::Integer(_) => 1,
                    _ => 2,
                };
                rest = r;
            }
            _ => return (0, acc),
        }
    }
    (buf.len(), acc)
}

/// Every parser must frame the streams identically, or the comparison is void.
fn check_same_frames(req: &[(&str, &[u8])], rep2: &[(&str, &[u8])], rep3: &[(&str, &[u8])]) {
    let l = Limits::default();
    for (n, b) in req {
        let bb = Bytes::copy_from_slice(b);
        assert_eq!(ours_req(b, &l), rp_req(b), "{n}");
        assert_eq!(ours_req(b, &l), rr_req(&bb), "{n}");
    }
    for (n, b) in rep2 {
        let bb = Bytes::copy_from_slice(b);
        assert_eq!(ours_rep(b, &l).0, b.len(), "{n}");
        assert_eq!(rp2_rep(b).0, b.len(), "{n}");
        assert_eq!(rr2_rep(&bb).0, b.len(), "{n}");
    }
    for (n, b) in rep3 {
        let bb = Bytes::copy_from_slice(b);
        assert_eq!(ours_rep(b, &l).0, b.len(), "{n}");
        assert_eq!(rp3_rep(b).0, b.len(), "{n}");
        assert_eq!(rr3_rep(&bb).0, b.len(), "{n}");
    }
}

fn benches(c: &mut Criterion) {
    let l = Limits::default();
    // redis-benchmark -P 16: 800 GET requests of 36 bytes and their replies, 800 SET requests,
    // 160 LRANGE_100 replies of 100 elements.
    let (get, get_rep) = bench_session(b"*2\r\n$3\r\nGET\r\n");
    let (set, _) = bench_session(b"*3\r\n$3\r\nSET\r\n");
    let (_, lrange_rep) = bench_session(b"*4\r\n$6\r\nLRANGE\r\n");
    assert_eq!(frame_ends(&lrange_rep, false).len(), 160);
    // redis-cli 7.0 RESP2 session: the 70 000-byte SET, and `COMMAND DOCS` (170 KB nested array).
    let cli2 = testdata("cli2-0.c2s.bin");
    let cli2_ends = frame_ends(&cli2, true);
    let big_set = cli2
        .windows(11)
        .position(|w| w == b"$6\r\nbigkey\r")
        .map(|i| {
            let start = cli2_ends
                .iter()
                .rev()
                .find(|&&e| e <= i)
                .copied()
                .unwrap_or(0);
            let end = *cli2_ends.iter().find(|&&e| e > i).unwrap();
            cli2[start..end].to_vec()
        })
        .unwrap();
    let cli2_rep = testdata("cli2-0.s2c.bin");
    let docs = cli2_rep[..frame_ends(&cli2_rep, false)[0]].to_vec();
    // redis-cli -3: every reply after HELLO and COMMAND DOCS (maps, sets, doubles, verbatim,
    // booleans, nulls, pushes). COMMAND DOCS itself is left out here because
    // redis-protocol 6 refuses it ("to_set: Invalid hash key": a set holding maps).
    let cli3 = testdata("cli3-0.s2c.bin");
    let cli3_ends = frame_ends(&cli3, false);
    let resp3_mix = cli3[cli3_ends[1]..].to_vec();
    assert!(redis_protocol::resp3::decode::complete::decode_range(
        &cli3[cli3_ends[0]..cli3_ends[1]]
    )
    .is_err());

    check_same_frames(
        &[("get", &get), ("set", &set), ("big_set", &big_set)],
        &[
            ("get_rep", &get_rep),
            ("lrange_rep", &lrange_rep),
            ("command_docs", &docs),
        ],
        &[("resp3_mix", &resp3_mix)],
    );

    let mut group = |name: &str, buf: &[u8], frames: usize, kind: u8| {
        let bb = Bytes::copy_from_slice(buf);
        for (unit, tp) in [
            ("frames", Throughput::Elements(frames as u64)),
            ("bytes", Throughput::Bytes(buf.len() as u64)),
        ] {
            let mut g = c.benchmark_group(format!("redis/{name}/{unit}"));
            g.throughput(tp);
            match kind {
                0 => {
                    g.bench_function("meltemi", |b| b.iter(|| ours_req(black_box(buf), &l)));
                    g.bench_function("redis-protocol", |b| b.iter(|| rp_req(black_box(buf))));
                    g.bench_function("resp-rs", |b| b.iter(|| rr_req(black_box(&bb))));
                }
                2 => {
                    g.bench_function("meltemi", |b| b.iter(|| ours_rep(black_box(buf), &l)));
                    g.bench_function("redis-protocol", |b| b.iter(|| rp2_rep(black_box(buf))));
                    g.bench_function("resp-rs", |b| b.iter(|| rr2_rep(black_box(&bb))));
                }
                _ => {
                    g.bench_function("meltemi", |b| b.iter(|| ours_rep(black_box(buf), &l)));
                    g.bench_function("redis-protocol", |b| b.iter(|| rp3_rep(black_box(buf))));
                    g.bench_function("resp-rs", |b| b.iter(|| rr3_rep(black_box(&bb))));
                }
            }
            g.finish();
        }
    };
    group("get_requests", &get, 800, 0);
    group("set_requests", &set, 800, 0);
    group("set_70k_request", &big_set, 1, 0);
    group("get_replies", &get_rep, 800, 2);
    group("lrange100_replies", &lrange_rep, 160, 2);
    group("command_docs_reply", &docs, 1, 2);
    group("resp3_replies", &resp3_mix, cli3_ends.len() - 2, 3);

    // Split input: every GET frame first arrives cut in half (the decoder says "need more"),
    // then whole, as a proxy sees a frame straddling two reads.
    let get_ends = frame_ends(&get, true);
    let mut g = c.benchmark_group("redis/get_requests_split/frames");
    g.throughput(Throughput::Elements(800));
    g.bench_function("meltemi", |b| {
        b.iter(|| {
            let mut start = 0;
            let mut acc = 0usize;
            for &end in &get_ends {
                let f = &get[start..end];
                let half = f.len() / 2;
                if let Ok(Decoded::NeedMore(n)) = decode_request(black_box(&f[..half]), &l) {
                    acc += n.bytes();
                }
                if let Ok(Decoded::Frame { frame, .. }) = decode_request(black_box(f), &l) {
                    acc += frame.command as usize + frame.key.map_or(0, |k| k.len());
                }
                start = end;
            }
            acc
        })
    });
    g.bench_function("redis-protocol", |b| {
        use redis_protocol::resp2::decode::decode_range;
        b.iter(|| {
            let mut start = 0;
            let mut acc = 0usize;
            for &end in &get_ends {
                let f = &get[start..end];
                let half = f.len() / 2;
                if let Ok(None) = decode_range(black_box(&f[..half])) {
                    acc += 1;
                }
                acc += rp_req(black_box(f)).1;
                start = end;
            }
            acc
        })
    });
    let gb = Bytes::copy_from_slice(&get);
    g.bench_function("resp-rs", |b| {
        b.iter(|| {
            let mut start = 0;
            let mut acc = 0usize;
            for &end in &get_ends {
                let half = (end - start) / 2;
                if resp_rs::resp2::parse_frame(black_box(gb.slice(start..start + half))).is_err() {
                    acc += 1;
                }
                acc += rr_req(black_box(&gb.slice(start..end))).1;
                start = end;
            }
            acc
        })
    });
    g.finish();
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`, field 1), so a
/// per-core rate can be told apart from the machine's load (other processes share the cores).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Frames per CPU-second of each parser on the captured GET requests (same work as above).
fn per_core(_c: &mut Criterion) {
    let (get, _) = bench_session(b"*2\r\n$3\r\nGET\r\n");
    let gb = Bytes::copy_from_slice(&get);
    let l = Limits::default();
    let run = |name: &str, f: &dyn Fn() -> usize| {
        let Some(t0) = thread_cpu_ns() else { return };
        let mut rounds = 0u64;
        let mut sink = 0usize;
        let wall = std::time::Instant::now();
        while wall.elapsed().as_millis() < 1500 {
            for _ in 0..100 {
                sink = sink.wrapping_add(f());
            }
            rounds += 100;
        }
        let cpu = thread_cpu_ns().unwrap() - t0;
        black_box(sink);
        let rate = (rounds * 800) as f64 / (cpu as f64 / 1e9);
        println!(
            "redis/get_requests per core: {name:<15} {:>7.2} M frames per CPU-second",
            rate / 1e6
        );
    };
    run("meltemi", &|| ours_req(black_box(&get), &l).1);
    run("redis-protocol", &|| rp_req(black_box(&get)).1);
    run("resp-rs", &|| rr_req(black_box(&gb)).1);
}

criterion_group!(redis, benches, per_core);
criterion_main!(redis);
