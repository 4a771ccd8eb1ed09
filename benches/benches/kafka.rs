//! Kafka codec benchmarks on frames captured from real peers (filters/codec/testdata/kafka),
//! ours against `kafka-protocol` 0.18 doing the same work on the same bytes in the same run:
//! - request headers: all 90 captured requests, one small Heartbeat v4 (the 10M/s/core target),
//!   the same requests fed split in two (first half: "need more"), and one large (256 KiB)
//!   Produce request;
//! - response headers plus the top-level error code;
//! - topic names of Produce and Fetch requests (kafka-protocol must decode the whole request).
//!
//! kafka-protocol gets its best case: `Bytes` over static memory (clones and slices are free),
//! and the header version from its own `ApiKey` table.
//!
//! Before measuring, the run checks our tables and encoders against kafka-protocol: header
//! versions for every api key and version it knows, and every error response we encode (for
//! every version of the nine supported apis) decoded by kafka-protocol's response decoder.
//!
//! Run: `cargo bench -p meltemi-benches --bench kafka -- --warm-up-time 1 --measurement-time 3`
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use meltemi_codec::kafka::{self, ApiKey, TopicRef};
use meltemi_codec::{Decoded, Limits};
use std::hint::black_box;

const FILES: &[&str] = &[
    include_str!("../../filters/codec/testdata/kafka/kafka-python.frames"),
    include_str!("../../filters/codec/testdata/kafka/kafka-python-legacy.frames"),
    include_str!("../../filters/codec/testdata/kafka/confluent-kafka.frames"),
];

struct Frame {
    bytes: &'static [u8],
    /// The same bytes for kafka-protocol.
    b: Bytes,
    /// For responses: (api key, version) of the request.
    api: (ApiKey, i16),
}

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn load() -> (Vec<Frame>, Vec<Frame>) {
    let (mut reqs, mut resps) = (Vec::new(), Vec::new());
    for (fi, text) in FILES.iter().enumerate() {
        let mut apis = std::collections::HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut it = line.split_whitespace();
            let conn = it.next().unwrap();
            let req = it.next() == Some(">");
            let bytes = leak(unhex(it.next().unwrap()));
            let f = Frame {
                bytes,
                b: Bytes::from_static(bytes),
                api: (ApiKey::Unknown(-1), 0),
            };
            if req {
                let (k, v, c) = kafka::peek_request(bytes).unwrap();
                apis.insert((fi, conn.to_string(), c), (k, v));
                reqs.push(f);
            } else {
                let c = kafka::peek_correlation_id(bytes).unwrap();
                resps.push(Frame {
                    api: apis[&(fi, conn.to_string(), c)],
                    ..f
                });
            }
        }
    }
    (reqs, resps)
}

// ---- ours -------------------------------------------------------------------------------

#[inline]
fn ours_header(buf: &[u8], l: &Limits) -> usize {
    match kafka::decode_request(buf, l) {
        Ok(Decoded::Frame { frame, used }) => {
            used + frame.header.correlation_id as usize + frame.header.client_id.map_or(0, str::len)
        }
        _ => 0,
    }
}

#[inline]
fn ours_topics(buf: &[u8], l: &Limits) -> usize {
    let Ok(Decoded::Frame { frame, .. }) = kafka::decode_request(buf, l) else {
        return 0;
    };
    let mut n = 0;
    for t in frame.topics().into_iter().flatten() {
        match t.unwrap().topic {
            TopicRef::Name(s) => n += s.len(),
            TopicRef::Id(id) => n += id[0] as usize,
        }
    }
    n
}

// ---- kafka-protocol ---------------------------------------------------------------------

#[inline]
fn kp_header(b: &Bytes) -> usize {
    if b.len() < 4 {
        return 0;
    }
    let size = i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if b.len() < 4 + size || size < 4 {
        return 0;
    }
    let mut body = b.slice(4..4 + size);
    let key = i16::from_be_bytes([body[0], body[1]]);
    let ver = i16::from_be_bytes([body[2], body[3]]);
    let Ok(k) = kp::ApiKey::try_from(key) else {
        return 0;
    };
    let h = kp::RequestHeader::decode(&mut body, k.request_header_version(ver)).unwrap();
    4 + size + h.correlation_id as usize + h.client_id.map_or(0, |s| s.len())
}

#[inline]
fn kp_topics(b: &Bytes) -> usize {
    let size = i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut body = b.slice(4..4 + size);
    let key = i16::from_be_bytes([body[0], body[1]]);
    let ver = i16::from_be_bytes([body[2], body[3]]);
    let k = kp::ApiKey::try_from(key).unwrap();
    kp::RequestHeader::decode(&mut body, k.request_header_version(ver)).unwrap();
    let mut n = 0;
    match k {
        kp::ApiKey::Produce => {
            for t in kp::ProduceRequest::decode(&mut body, ver)
                .unwrap()
                .topic_data
            {
                n += if ver >= 13 {
                    t.topic_id.as_bytes()[0] as usize
                } else {
                    t.name.0.len()
                };
            }
        }
        kp::ApiKey::Fetch => {
            for t in kp::FetchRequest::decode(&mut body, ver).unwrap().topics {
                n += if ver >= 13 {
                    t.topic_id.as_bytes()[0] as usize
                } else {
                    t.topic.0.len()
                };
            }
        }
        _ => {}
    }
    n
}

// ---- cross-checks -----------------------------------------------------------------------

fn cross_check_tables() {
    // Within its valid versions only: outside them its generator folds the rule into a constant.
    for code in 0..=93i16 {
        let Ok(k) = kp::ApiKey::try_from(code) else {
            continue;
        };
        let ours = ApiKey::from_code(code);
        let r = k.valid_versions();
        for v in r.min..=r.max {
            assert_eq!(
                kafka::request_header_version(ours, v) as i16,
                k.request_header_version(v),
                "request header {ours:?} v{v}"
            );
            assert_eq!(
                kafka::response_header_version(ours, v) as i16,
                k.response_header_version(v),
                "response header {ours:?} v{v}"
            );
        }
    }
}

fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

/// A request of every version of the nine supported apis, encoded by kafka-protocol, answered
/// by our error encoder, decoded by kafka-protocol's response decoder.
fn cross_check_error_responses() -> usize {
    // Topic ids stay nil (the uuid type is not re-exported); ours echoes whatever it gets.
    let mut checked = 0;
    let apis: &[kp::ApiKey] = &[
        kp::ApiKey::ApiVersions,
        kp::ApiKey::Metadata,
        kp::ApiKey::Produce,
        kp::ApiKey::Fetch,
        kp::ApiKey::FindCoordinator,
        kp::ApiKey::JoinGroup,
        kp::ApiKey::Heartbeat,
        kp::ApiKey::OffsetCommit,
        kp::ApiKey::OffsetFetch,
    ];
    for &k in apis {
        let r = k.valid_versions();
        for v in r.min..=r.max {
            let mut body = Vec::new();
            let encoded = match k {
                kp::ApiKey::ApiVersions => kp::ApiVersionsRequest::default()
                    .with_client_software_name(s("x"))
                    .with_client_software_version(s("1"))
                    .encode(&mut body, v),
                kp::ApiKey::Metadata => {
                    let mut t = kp::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(kp::TopicName(s("orders"))));
                    if v >= 10 {
                        t = t.with_topic_id(Default::default());
                    }
                    kp::MetadataRequest::default()
                        .with_topics(Some(vec![t]))
                        .encode(&mut body, v)
                }
                kp::ApiKey::Produce => {
                    let p = |i| {
                        kp::produce_request::PartitionProduceData::default()
                            .with_index(i)
                            .with_records(Some(Bytes::from_static(b"records")))
                    };
                    let mut t = kp::produce_request::TopicProduceData::default()
                        .with_partition_data(vec![p(0), p(2)]);
                    if v >= 13 {
                        t = t.with_topic_id(Default::default());
                    } else {
                        t = t.with_name(kp::TopicName(s("orders")));
                    }
                    kp::ProduceRequest::default()
                        .with_acks(-1)
                        .with_timeout_ms(100)
                        .with_topic_data(vec![t])
                        .encode(&mut body, v)
                }
                kp::ApiKey::Fetch => {
                    let p = |i| kp::fetch_request::FetchPartition::default().with_partition(i);
                    let mut t =
                        kp::fetch_request::FetchTopic::default().with_partitions(vec![p(0), p(1)]);
                    if v >= 13 {
                        t = t.with_topic_id(Default::default());
                    } else {
                        t = t.with_topic(kp::TopicName(s("orders")));
                    }
                    kp::FetchRequest::default()
                        .with_topics(vec![t])
                        .encode(&mut body, v)
                }
                kp::ApiKey::FindCoordinator => {
                    let mut req = kp::FindCoordinatorRequest::default();
                    if v >= 4 {
                        req = req.with_coordinator_keys(vec![s("g1"), s("g2")]);
                    } else {
                        req = req.with_key(s("g1"));
                    }
                    req.encode(&mut body, v)
                }
                kp::ApiKey::JoinGroup => kp::JoinGroupRequest::default()
                    .with_group_id(kp::GroupId(s("g")))
                    .with_protocol_type(s("consumer"))
                    .encode(&mut body, v),
                kp::ApiKey::Heartbeat => kp::HeartbeatRequest::default()
                    .with_group_id(kp::GroupId(s("g")))
                    .encode(&mut body, v),
                kp::ApiKey::OffsetCommit => {
                    let p = |i| {
                        kp::offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(i)
                    };
                    let t = kp::offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(kp::TopicName(s("orders")))
                        .with_partitions(vec![p(0), p(1), p(2)]);
                    kp::OffsetCommitRequest::default()
                        .with_group_id(kp::GroupId(s("g")))
                        .with_topics(vec![t])
                        .encode(&mut body, v)
                }
                kp::ApiKey::OffsetFetch => {
                    let t = kp::offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(kp::TopicName(s("orders")))
                        .with_partition_indexes(vec![0, 1]);
                    let g = kp::offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(kp::GroupId(s("g")));
                    kp::OffsetFetchRequest::default()
                        .with_group_id(kp::GroupId(s("g")))
                        .with_topics(if v >= 8 { None } else { Some(vec![t]) })
                        .with_groups(if v >= 8 { vec![g] } else { vec![] })
                        .encode(&mut body, v)
                }
                _ => unreachable!(),
            };
            if encoded.is_err() {
                // kafka-protocol lists versions it cannot encode (OffsetCommit/OffsetFetch v10).
                continue;
            }
            let mut frame = Vec::new();
            kp::RequestHeader::default()
                .with_request_api_key(k as i16)
                .with_request_api_version(v)
                .with_correlation_id(77)
                .with_client_id(Some(s("bench")))
                .encode(&mut frame, k.request_header_version(v))
                .unwrap();
            frame.extend_from_slice(&body);
            let mut bytes = (frame.len() as i32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&frame);
            let (req, _) = kafka::decode_request(&bytes, &Limits::default())
                .unwrap()
                .frame()
                .unwrap();
            assert_eq!(req.body.len(), body.len(), "{k:?} v{v}: our header length");
            let mut out = Vec::new();
            match kafka::encode_error_response(&req, 29, &mut out) {
                Ok(_) => {}
                Err(kafka::EncodeError::UnsupportedVersion { .. }) => continue,
                Err(e) => panic!("{k:?} v{v}: {e}"),
            }
            let (resp, _) =
                kafka::decode_response(&out, req.response_header_version(), &Limits::default())
                    .unwrap()
                    .frame()
                    .unwrap();
            let mut rb = Bytes::copy_from_slice(resp.body);
            let left = |rb: &Bytes| rb.len();
            let codes: Vec<i16> = match k {
                kp::ApiKey::ApiVersions => vec![
                    kp::ApiVersionsResponse::decode(&mut rb, v)
                        .unwrap()
                        .error_code,
                ],
                kp::ApiKey::Metadata => {
                    let m = kp::MetadataResponse::decode(&mut rb, v).unwrap();
                    let mut c: Vec<i16> = m.topics.iter().map(|t| t.error_code).collect();
                    if v >= 13 {
                        c.push(m.error_code);
                    }
                    c
                }
                kp::ApiKey::Produce => kp::ProduceResponse::decode(&mut rb, v)
                    .unwrap()
                    .responses
                    .iter()
                    .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
                    .collect(),
                kp::ApiKey::Fetch => kp::FetchResponse::decode(&mut rb, v)
                    .unwrap()
                    .responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                    .collect(),
                kp::ApiKey::FindCoordinator => {
                    let r = kp::FindCoordinatorResponse::decode(&mut rb, v).unwrap();
                    if v >= 4 {
                        r.coordinators.iter().map(|c| c.error_code).collect()
                    } else {
                        vec![r.error_code]
                    }
                }
                kp::ApiKey::JoinGroup => vec![
                    kp::JoinGroupResponse::decode(&mut rb, v)
                        .unwrap()
                        .error_code,
                ],
                kp::ApiKey::Heartbeat => vec![
                    kp::HeartbeatResponse::decode(&mut rb, v)
                        .unwrap()
                        .error_code,
                ],
                kp::ApiKey::OffsetCommit => kp::OffsetCommitResponse::decode(&mut rb, v)
                    .unwrap()
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                    .collect(),
                kp::ApiKey::OffsetFetch => {
                    let r = kp::OffsetFetchResponse::decode(&mut rb, v).unwrap();
                    if v >= 8 {
                        r.groups.iter().map(|g| g.error_code).collect()
                    } else {
                        r.topics
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                            .collect()
                    }
                }
                _ => unreachable!(),
            };
            assert_eq!(
                left(&rb),
                0,
                "{k:?} v{v}: bytes left after kafka-protocol's decode"
            );
            assert!(
                !codes.is_empty() && codes.iter().all(|c| *c == 29),
                "{k:?} v{v}: {codes:?}"
            );
            checked += 1;
        }
    }
    checked
}

// ---- benches ----------------------------------------------------------------------------

/// A 256 KiB Produce v9 request to "orders" (records are opaque bytes to both decoders).
fn large_produce() -> &'static [u8] {
    let mut b = vec![0, 0, 0, 9, 0, 0, 0, 42, 0, 4, b'b', b'e', b'n', b'c', 0];
    b.extend_from_slice(&[0, 0, 1, 0, 0, 0x75, 0x30, 2, 7]);
    b.extend_from_slice(b"orders");
    b.push(2); // one partition
    b.extend_from_slice(&[0, 0, 0, 1]);
    let n = 256 * 1024u32;
    let mut v = n + 1;
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
    b.extend(std::iter::repeat_n(0x5a, n as usize));
    b.extend_from_slice(&[0, 0, 0]); // partition tags, topic tags, request tags
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    leak(f)
}

fn benches(c: &mut Criterion) {
    cross_check_tables();
    let n = cross_check_error_responses();
    eprintln!("kafka: header tables agree with kafka-protocol; {n} error responses decode with it");

    let l = Limits::default();
    let (reqs, resps) = load();
    let total: usize = reqs.iter().map(|f| f.bytes.len()).sum();

    let mut g = c.benchmark_group("kafka/request_header/captured_90");
    g.throughput(Throughput::Elements(reqs.len() as u64));
    g.bench_function("meltemi", |b| {
        b.iter(|| {
            reqs.iter()
                .map(|f| ours_header(black_box(f.bytes), &l))
                .sum::<usize>()
        })
    });
    g.bench_function("kafka-protocol", |b| {
        b.iter(|| {
            reqs.iter()
                .map(|f| kp_header(black_box(&f.b)))
                .sum::<usize>()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("kafka/request_header/captured_90_bytes");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("meltemi", |b| {
        b.iter(|| {
            reqs.iter()
                .map(|f| ours_header(black_box(f.bytes), &l))
                .sum::<usize>()
        })
    });
    g.bench_function("kafka-protocol", |b| {
        b.iter(|| {
            reqs.iter()
                .map(|f| kp_header(black_box(&f.b)))
                .sum::<usize>()
        })
    });
    g.finish();

    let hb = reqs
        .iter()
        .find(|f| {
            kafka::peek_request(f.bytes).is_some_and(|(k, v, _)| k == ApiKey::Heartbeat && v == 4)
        })
        .unwrap();
    let mut g = c.benchmark_group("kafka/request_header/small_heartbeat_v4");
    g.throughput(Throughput::Elements(1));
    g.bench_function("meltemi", |b| {
        b.iter(|| ours_header(black_box(hb.bytes), &l))
    });
    g.bench_function("kafka-protocol", |b| b.iter(|| kp_header(black_box(&hb.b))));
    g.finish();

    // Split: the first half of each frame ("need more"), then the whole frame.
    let mut g = c.benchmark_group("kafka/request_header/captured_90_split");
    g.throughput(Throughput::Elements(reqs.len() as u64));
    g.bench_function("meltemi", |b| {
        b.iter(|| {
            reqs.iter()
                .map(|f| {
                    let half = &f.bytes[..f.bytes.len() / 2];
                    let need = match kafka::decode_request(black_box(half), &l) {
                        Ok(Decoded::NeedMore(n)) => n.bytes(),
                        _ => 0,
                    };
                    need + ours_header(black_box(f.bytes), &l)
                })
                .sum::<usize>()
        })
    });
    g.bench_function("kafka-protocol", |b| {
        b.iter(|| {
            reqs.iter()
                .map(|f| {
                    let half = f.b.slice(..f.b.len() / 2);
                    kp_header(black_box(&half)) + kp_header(black_box(&f.b))
                })
                .sum::<usize>()
        })
    });
    g.finish();

    let big = large_produce();
    let big_b = Bytes::from_static(big);
    let mut g = c.benchmark_group("kafka/request_header/large_produce_256k");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("meltemi", |b| b.iter(|| ours_header(black_box(big), &l)));
    g.bench_function("kafka-protocol", |b| {
        b.iter(|| kp_header(black_box(&big_b)))
    });
    g.finish();

    // Topic names of Produce and Fetch (captured ones and the large Produce); only versions
    // kafka-protocol decodes (it has no Fetch v0-3, which the legacy capture holds).
    let pf: Vec<&Frame> = reqs
        .iter()
        .filter(|f| {
            kafka::peek_request(f.bytes).is_some_and(|(k, v, _)| {
                matches!(k, ApiKey::Produce | ApiKey::Fetch) && {
                    let r = kp::ApiKey::try_from(k.code()).unwrap().valid_versions();
                    (r.min..=r.max).contains(&v)
                }
            })
        })
        .collect();
    assert_eq!(
        pf.iter().map(|f| ours_topics(f.bytes, &l)).sum::<usize>(),
        pf.iter().map(|f| kp_topics(&f.b)).sum::<usize>()
    );
    let mut g = c.benchmark_group("kafka/topics/produce_fetch_captured");
    g.throughput(Throughput::Elements(pf.len() as u64));
    g.bench_function("meltemi", |b| {
        b.iter(|| {
            pf.iter()
                .map(|f| ours_topics(black_box(f.bytes), &l))
                .sum::<usize>()
        })
    });
    g.bench_function("kafka-protocol", |b| {
        b.iter(|| pf.iter().map(|f| kp_topics(black_box(&f.b))).sum::<usize>())
    });
    g.finish();
    let mut g = c.benchmark_group("kafka/topics/large_produce_256k");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("meltemi", |b| b.iter(|| ours_topics(black_box(big), &l)));
    g.bench_function("kafka-protocol", |b| {
        b.iter(|| kp_topics(black_box(&big_b)))
    });
    g.finish();

    // Responses: header and top-level error code.
    let mut g = c.benchmark_group("kafka/response_header/captured_90");
    g.throughput(Throughput::Elements(resps.len() as u64));
    g.bench_function("meltemi", |b| {
        b.iter(|| {
            resps
                .iter()
                .map(|f| {
                    let (k, v) = f.api;
                    match kafka::decode_response_to(black_box(f.bytes), k, v, &l) {
                        Ok(Decoded::Frame { frame, used }) => {
                            used + frame.error_code(k, v).unwrap_or(0) as usize
                        }
                        _ => 0,
                    }
                })
                .sum::<usize>()
        })
    });
    g.bench_function("kafka-protocol", |b| {
        b.iter(|| {
            resps
                .iter()
                .map(|f| {
                    let (k, v) = f.api;
                    let bb = black_box(&f.b);
                    let size = i32::from_be_bytes([bb[0], bb[1], bb[2], bb[3]]) as usize;
                    let mut body = bb.slice(4..4 + size);
                    let kk = kp::ApiKey::try_from(k.code()).unwrap();
                    let h = kp::ResponseHeader::decode(&mut body, kk.response_header_version(v))
                        .unwrap();
                    let err = kafka::error_code_offset(k, v)
                        .and_then(|o| body.get(o..o + 2))
                        .map_or(0, |e| i16::from_be_bytes([e[0], e[1]]) as usize);
                    4 + size + h.correlation_id as usize + err
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(kafka_benches, benches);
criterion_main!(kafka_benches);
