//! Proves the Kafka decode path does not allocate: a counting global allocator around decoding
//! every captured frame, without allocating once (the counting allocator is `tests/common`).

mod common;
use common::allocs;

use meltemi_codec::kafka::{
    decode_request, decode_response_to, peek_correlation_id, ApiKey, TopicRef,
};
use meltemi_codec::{Decoded, Limits};

const FILES: &[&str] = &[
    include_str!("../testdata/kafka/kafka-python.frames"),
    include_str!("../testdata/kafka/kafka-python-legacy.frames"),
    include_str!("../testdata/kafka/confluent-kafka.frames"),
];

#[test]
fn decode_does_not_allocate() {
    // Load (allocates) before counting: (is request, bytes).
    let mut frames: Vec<(bool, Vec<u8>)> = Vec::new();
    for text in FILES {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut it = line.split_whitespace().skip(1);
            let req = it.next() == Some(">");
            let hex = it.next().unwrap();
            let b = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            frames.push((req, b));
        }
    }
    assert_eq!(frames.len(), 180);
    // (api key, version) by correlation id, per connection is not needed here: responses are
    // decoded with the api of the request just before them in the same connection's order, so
    // use a fixed-size table filled before counting.
    let mut by_corr = vec![None; 4096];
    for (req, f) in &frames {
        if *req {
            if let Ok(Decoded::Frame { frame, .. }) = decode_request(f, &Limits::default()) {
                by_corr[frame.header.correlation_id as usize] =
                    Some((frame.header.api_key, frame.header.api_version));
            }
        }
    }
    let limits = Limits::default();
    let before = allocs();
    let mut seen = 0usize;
    for (req, f) in &frames {
        for cut in [0, 3, 4, f.len().min(11), f.len() - 1] {
            let _ = decode_request(&f[..cut], &limits);
            let _ = decode_response_to(&f[..cut], ApiKey::Fetch, 12, &limits);
        }
        if *req {
            let (r, used) = decode_request(f, &limits).unwrap().frame().unwrap();
            seen += used + r.header.tagged_fields.iter().count();
            seen += r.header.client_id.map_or(0, str::len);
            if let Some(topics) = r.topics() {
                for t in topics {
                    let t = t.unwrap();
                    if let TopicRef::Name(n) = t.topic {
                        seen += n.len();
                    }
                    seen += t.partitions.map(|p| p as usize).sum::<usize>();
                }
            }
            seen += usize::from(r.expects_response());
        } else {
            let corr = peek_correlation_id(f).unwrap();
            let (k, v) = by_corr[corr as usize].unwrap_or((ApiKey::Metadata, 0));
            let (r, used) = decode_response_to(f, k, v, &limits)
                .unwrap()
                .frame()
                .unwrap();
            seen += used + r.error_code(k, v).map_or(0, |e| e as usize);
        }
    }
    let after = allocs();
    assert!(seen > 0);
    assert_eq!(after - before, 0, "decode allocated");
}
