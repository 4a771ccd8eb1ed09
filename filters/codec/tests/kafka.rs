//! Kafka codec against frames captured from real peers (testdata/kafka/README.md): tansu 0.6.0
//! with kafka-python 3.0.12 and confluent-kafka 2.16 (librdkafka 2.16.0), through a recording
//! relay (scripts/capture/kafka_capture.py). Each frame line carries what an independent
//! decoder in the capture script says its header fields are; these tests hold the codec to it.

use meltemi_codec::kafka::{
    decode_request, decode_response, decode_response_to, encode_error_response, error_code_offset,
    peek_correlation_id, peek_request, request_header_version, response_header_version, ApiKey,
    EncodeError, Error, Request, TopicRef,
};
use meltemi_codec::{Decoded, Limits, Need};
use std::collections::HashMap;

const FILES: &[(&str, &str)] = &[
    (
        "kafka-python",
        include_str!("../testdata/kafka/kafka-python.frames"),
    ),
    (
        "kafka-python-legacy",
        include_str!("../testdata/kafka/kafka-python-legacy.frames"),
    ),
    (
        "confluent-kafka",
        include_str!("../testdata/kafka/confluent-kafka.frames"),
    ),
];

#[derive(Debug, Clone)]
struct Captured {
    file: &'static str,
    conn: u32,
    request: bool,
    bytes: Vec<u8>,
    oracle: HashMap<String, String>,
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn load() -> Vec<Captured> {
    let mut out = Vec::new();
    for (file, text) in FILES {
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (frame, oracle) = line.split_once(" # ").expect("oracle");
            let mut it = frame.split_whitespace();
            let conn: u32 = it.next().unwrap().parse().unwrap();
            let request = match it.next().unwrap() {
                ">" => true,
                "<" => false,
                d => panic!("direction {d}"),
            };
            let bytes = unhex(it.next().unwrap());
            let oracle = oracle
                .split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            out.push(Captured {
                file,
                conn,
                request,
                bytes,
                oracle,
            });
        }
    }
    out
}

fn limits() -> Limits {
    Limits::default()
}

fn req(bytes: &[u8]) -> (Request<'_>, usize) {
    match decode_request(bytes, &limits()).unwrap() {
        Decoded::Frame { frame, used } => (frame, used),
        Decoded::NeedMore(n) => panic!("need more {n:?}"),
    }
}

fn topic_strings(r: &Request<'_>) -> Vec<String> {
    r.topics()
        .unwrap()
        .map(|t| match t.unwrap().topic {
            TopicRef::Name(n) => n.to_string(),
            TopicRef::Id(id) => format!(
                "id:{}",
                id.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        })
        .collect()
}

/// (file, conn, correlation id) -> (api key, api version) of the requests seen.
fn inflight(frames: &[Captured]) -> HashMap<(&'static str, u32, i32), (ApiKey, i16)> {
    let mut m = HashMap::new();
    for c in frames.iter().filter(|c| c.request) {
        let (r, _) = req(&c.bytes);
        m.insert(
            (c.file, c.conn, r.header.correlation_id),
            (r.header.api_key, r.header.api_version),
        );
    }
    m
}

#[test]
fn captured_requests_decode_exactly() {
    let frames = load();
    let mut n = 0;
    let mut keys = std::collections::BTreeSet::new();
    for c in frames.iter().filter(|c| c.request) {
        let (r, used) = req(&c.bytes);
        let h = &r.header;
        let o = &c.oracle;
        assert_eq!(used, c.bytes.len());
        assert_eq!(h.api_key.code().to_string(), o["key"], "{c:?}");
        assert_eq!(h.api_version.to_string(), o["v"]);
        assert_eq!(h.correlation_id.to_string(), o["corr"]);
        assert_eq!(h.client_id.unwrap_or("-"), o["client"]);
        assert_eq!(r.body_offset.to_string(), o["hlen"]);
        assert_eq!(r.body, &c.bytes[r.body_offset..]);
        assert_eq!(
            h.header_version,
            request_header_version(h.api_key, h.api_version)
        );
        assert!(h.tagged_fields.is_empty());
        assert_ne!(h.api_key.as_str(), "Unknown");
        if let Some(t) = o.get("topics") {
            assert_eq!(topic_strings(&r).join(","), *t, "{c:?}");
            // Every topic lists its partitions; consumers fetch all 3 of each topic, producers
            // write to the partitions they chose.
            for e in r.topics().unwrap() {
                let parts: Vec<i32> = e.unwrap().partitions.collect();
                assert!(!parts.is_empty() && parts.iter().all(|p| (0..3).contains(p)));
            }
        } else {
            assert!(r.topics().is_none());
        }
        assert_eq!(
            peek_request(&c.bytes),
            Some((h.api_key, h.api_version, h.correlation_id))
        );
        keys.insert((h.api_key.as_str(), h.api_version));
        n += 1;
    }
    assert_eq!(n, 90, "requests captured");
    // Produce, Fetch, group join/sync/heartbeat/leave, commits, metadata, api versions, in old
    // (non-flexible) and new (flexible) versions.
    for k in [
        ("ApiVersions", 0),
        ("ApiVersions", 3),
        ("ApiVersions", 4),
        ("Metadata", 2),
        ("Metadata", 12),
        ("Produce", 3),
        ("Produce", 9),
        ("Produce", 10),
        ("Fetch", 3),
        ("Fetch", 12),
        ("Fetch", 16),
        ("JoinGroup", 1),
        ("JoinGroup", 7),
        ("SyncGroup", 0),
        ("SyncGroup", 5),
        ("Heartbeat", 0),
        ("Heartbeat", 4),
        ("OffsetCommit", 2),
        ("OffsetCommit", 9),
        ("OffsetFetch", 1),
        ("OffsetFetch", 9),
        ("FindCoordinator", 0),
        ("FindCoordinator", 6),
        ("LeaveGroup", 5),
        ("InitProducerId", 4),
        ("GetTelemetrySubscriptions", 0),
    ] {
        assert!(keys.contains(&k), "missing {k:?} in {keys:?}");
    }
}

#[test]
fn captured_responses_decode_exactly() {
    let frames = load();
    let map = inflight(&frames);
    let mut n = 0;
    let mut errors = 0;
    for c in frames.iter().filter(|c| !c.request) {
        let corr = peek_correlation_id(&c.bytes).unwrap();
        let (key, ver) = map[&(c.file, c.conn, corr)];
        let hv = response_header_version(key, ver);
        let Decoded::Frame { frame: r, used } = decode_response(&c.bytes, hv, &limits()).unwrap()
        else {
            panic!("need more")
        };
        assert_eq!(used, c.bytes.len());
        assert_eq!(r.correlation_id.to_string(), c.oracle["corr"]);
        assert_eq!(r.body_offset.to_string(), c.oracle["hlen"], "{c:?}");
        assert_eq!(r.header_version, hv);
        assert_eq!(
            decode_response_to(&c.bytes, key, ver, &limits()).unwrap(),
            Decoded::Frame { frame: r, used }
        );
        match c.oracle.get("err") {
            Some(e) => {
                assert_eq!(r.error_code(key, ver).unwrap().to_string(), *e, "{c:?}");
                errors += 1;
            }
            None => assert_eq!(r.error_code(key, ver), None, "{c:?}"),
        }
        n += 1;
    }
    assert_eq!(n, 90, "responses captured");
    assert!(errors > 40);
}

/// Fields of single frames, checked by hand against the bytes (see testdata/kafka/README.md).
#[test]
fn named_frames() {
    let frames = load();
    let first = |file: &str, key: ApiKey, v: i16| {
        frames
            .iter()
            .find(|c| {
                c.file == file && c.request && {
                    let (r, _) = req(&c.bytes);
                    r.header.api_key == key && r.header.api_version == v
                }
            })
            .unwrap()
    };
    // kafka-python's first request: ApiVersions v4, header v2, client id, no tagged fields; body
    // is ClientSoftwareName "kafka-python", ClientSoftwareVersion "3.0.12", tags.
    let c = first("kafka-python", ApiKey::ApiVersions, 4);
    let (r, _) = req(&c.bytes);
    assert_eq!(r.header.correlation_id, 1);
    assert_eq!(r.header.client_id, Some("meltemi-kp-producer"));
    assert_eq!(r.header.header_version, 2);
    assert_eq!(r.body, b"\x0dkafka-python\x073.0.12\x00");
    // Legacy ApiVersions v0: header v1, empty body.
    let c = first("kafka-python-legacy", ApiKey::ApiVersions, 0);
    let (r, _) = req(&c.bytes);
    assert_eq!(r.header.header_version, 1);
    assert_eq!(r.header.client_id, Some("meltemi-kp-legacy"));
    assert!(r.body.is_empty());
    // librdkafka Produce v10 to "payments", acks -1 (all).
    let c = first("confluent-kafka", ApiKey::Produce, 10);
    let (r, _) = req(&c.bytes);
    assert_eq!(r.produce_acks(), Some(-1));
    assert!(r.expects_response());
    assert_eq!(topic_strings(&r), ["payments"]);
    // librdkafka Fetch v16 names its topic by id: the id the Metadata v12 response gave.
    let c = first("confluent-kafka", ApiKey::Fetch, 16);
    let (r, _) = req(&c.bytes);
    let id = match r.topics().unwrap().next().unwrap().unwrap().topic {
        TopicRef::Id(id) => id,
        t => panic!("{t:?}"),
    };
    let md = frames
        .iter()
        .find(|m| m.file == "confluent-kafka" && !m.request && m.oracle["key"] == "3")
        .unwrap();
    assert!(
        md.bytes.windows(16).any(|w| w == id),
        "topic id from metadata"
    );
    // The JoinGroup responses that ask the member to rejoin with its id: MEMBER_ID_REQUIRED (79)
    // in v1 (error first), v5 and v7 (after throttle time).
    let joins: Vec<_> = frames
        .iter()
        .filter(|c| !c.request && c.oracle["key"] == "11" && c.oracle["err"] == "79")
        .collect();
    assert_eq!(joins.len(), 3);
}

fn frames_of(frames: &[Captured]) -> impl Iterator<Item = &Captured> {
    frames.iter()
}

#[test]
fn every_prefix_needs_more() {
    let frames = load();
    let map = inflight(&frames);
    for c in frames_of(&frames) {
        let len = c.bytes.len();
        for k in 0..len {
            let p = &c.bytes[..k];
            let got = if c.request {
                decode_request(p, &limits())
                    .unwrap()
                    .frame()
                    .map(|(f, u)| format!("{f:?}{u}"))
            } else {
                let corr = peek_correlation_id(&c.bytes).unwrap();
                let (key, ver) = map[&(c.file, c.conn, corr)];
                match decode_response_to(p, key, ver, &limits()).unwrap() {
                    Decoded::NeedMore(n) => {
                        assert_need(n, k, len);
                        None
                    }
                    Decoded::Frame { .. } => Some("frame".into()),
                }
            };
            assert!(got.is_none(), "prefix {k} of {len} decoded");
            if c.request {
                let Decoded::NeedMore(n) = decode_request(p, &limits()).unwrap() else {
                    panic!()
                };
                assert_need(n, k, len);
            }
        }
    }
}

fn assert_need(n: Need, have: usize, len: usize) {
    if have < 4 {
        assert_eq!(n, Need::AtLeast(4));
    } else {
        assert_eq!(n, Need::Exact(len));
    }
    assert!(n.bytes() > have && n.bytes() <= len);
}

/// Feeds one connection's stream split at every point: the frames decoded are the same.
#[test]
fn split_at_every_point() {
    let frames = load();
    let mut streams: HashMap<(&str, u32), Vec<u8>> = HashMap::new();
    for c in frames.iter().filter(|c| c.request) {
        streams
            .entry((c.file, c.conn))
            .or_default()
            .extend_from_slice(&c.bytes);
    }
    let whole = |s: &[u8]| -> Vec<(i32, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < s.len() {
            let (r, used) = req(&s[at..]);
            out.push((r.header.correlation_id, used));
            at += used;
        }
        out
    };
    for s in streams.values() {
        let want = whole(s);
        for split in 0..=s.len() {
            // A buffer that receives s[..split], then the rest.
            let mut buf: Vec<u8> = s[..split].to_vec();
            let mut got = Vec::new();
            let mut fed_rest = false;
            loop {
                match decode_request(&buf, &limits()).unwrap() {
                    Decoded::Frame { frame, used } => {
                        got.push((frame.header.correlation_id, used));
                        buf.drain(..used);
                    }
                    Decoded::NeedMore(n) => {
                        if fed_rest {
                            assert!(buf.is_empty(), "left {} bytes, need {n:?}", buf.len());
                            break;
                        }
                        buf.extend_from_slice(&s[split..]);
                        fed_rest = true;
                    }
                }
            }
            assert_eq!(got, want, "split at {split}");
        }
    }
}

#[test]
fn trailing_bytes_are_not_consumed() {
    let frames = load();
    let a = &frames.iter().find(|c| c.request).unwrap().bytes;
    let b = &frames.iter().filter(|c| c.request).nth(1).unwrap().bytes;
    let mut two = a.clone();
    two.extend_from_slice(b);
    let (r1, u1) = req(&two);
    assert_eq!(u1, a.len());
    let (r2, u2) = req(&two[u1..]);
    assert_eq!(u2, b.len());
    assert_ne!(r1.header.correlation_id, r2.header.correlation_id);
    // Garbage after a frame: the frame decodes, the garbage stays.
    let mut g = a.clone();
    g.extend_from_slice(b"\xff\xff\xff\xff garbage");
    let (r, used) = req(&g);
    assert_eq!(used, a.len());
    assert_eq!(r.body, &a[r.body_offset..]);
    assert_eq!(
        decode_request(&g[used..], &limits()),
        Err(Error::NegativeSize { size: -1 })
    );
    // The same for responses.
    let resp = &frames.iter().find(|c| !c.request).unwrap().bytes;
    let mut g = resp.clone();
    g.extend_from_slice(b"\0\0\0\x09trailing");
    let Decoded::Frame { used, .. } = decode_response(&g, 0, &limits()).unwrap() else {
        panic!()
    };
    assert_eq!(used, resp.len());
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn malformed_requests() {
    let l = limits();
    assert_eq!(
        decode_request(&[0x80, 0, 0, 0], &l),
        Err(Error::NegativeSize { size: i32::MIN })
    );
    // Shorter than api key + version + correlation id.
    assert_eq!(
        decode_request(&frame(&[0, 18, 0, 0, 0, 0, 0]), &l),
        Err(Error::Truncated {
            field: "header",
            offset: 11
        })
    );
    // Header v1 without room for the client id length.
    let h = [0, 18, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        decode_request(&frame(&h), &l),
        Err(Error::Truncated {
            field: "client_id",
            offset: 12
        })
    );
    // Client id longer than the frame.
    let mut b = h.to_vec();
    b.extend_from_slice(&[0, 10, b'a']);
    assert_eq!(
        decode_request(&frame(&b), &l),
        Err(Error::Truncated {
            field: "client_id",
            offset: 12
        })
    );
    // Client id length -2.
    let mut b = h.to_vec();
    b.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(
        decode_request(&frame(&b), &l),
        Err(Error::BadLength {
            field: "client_id",
            offset: 12
        })
    );
    // Client id not UTF-8.
    let mut b = h.to_vec();
    b.extend_from_slice(&[0, 2, 0xc3, 0x28]);
    assert_eq!(
        decode_request(&frame(&b), &l),
        Err(Error::InvalidUtf8 {
            field: "client_id",
            offset: 14
        })
    );
    // Null client id is fine (header v1, ApiVersions v0).
    let mut b = h.to_vec();
    b.extend_from_slice(&[0xff, 0xff]);
    let f = frame(&b);
    let (r, _) = req(&f);
    assert_eq!(r.header.client_id, None);
    // Header v2 (ApiVersions v3): tagged fields missing, count too large, varint too long,
    // value past the end.
    let h2 = [0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff];
    assert_eq!(
        decode_request(&frame(&h2), &l),
        Err(Error::Truncated {
            field: "tagged_fields",
            offset: 14
        })
    );
    let mut b = h2.to_vec();
    b.extend_from_slice(&[100, 1, 1]);
    assert_eq!(
        decode_request(&frame(&b), &l),
        Err(Error::CountTooLarge {
            field: "tagged_fields",
            offset: 14,
            count: 100
        })
    );
    let mut b = h2.to_vec();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(
        decode_request(&frame(&b), &l),
        Err(Error::BadLength {
            field: "tagged_fields",
            offset: 14
        })
    );
    let mut b = h2.to_vec();
    b.extend_from_slice(&[1, 0, 5, 1, 2]);
    assert_eq!(
        decode_request(&frame(&b), &l),
        Err(Error::Truncated {
            field: "tag value",
            offset: 17
        })
    );
    // Tagged fields that are well formed are kept and iterated.
    let mut b = h2.to_vec();
    b.extend_from_slice(&[2, 0, 1, 7, 5, 2, 8, 9, 0xaa]);
    let f = frame(&b);
    let (r, _) = req(&f);
    let tags: Vec<_> = r.header.tagged_fields.iter().collect();
    assert_eq!(tags, [(0, &[7u8][..]), (5, &[8, 9][..])]);
    assert_eq!(r.body, &[0xaa]);
    // ControlledShutdown v0 has a v0 header: no client id.
    let f = frame(&[0, 7, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1]);
    let (r, _) = req(&f);
    assert_eq!(
        (r.header.header_version, r.header.client_id, r.body),
        (0, None, &[0, 0, 0, 1][..])
    );
    // Unknown api keys are data: header v1 read, the rest is body.
    let f = frame(&[0x7f, 0, 0, 1, 0, 0, 0, 2, 0, 1, b'c', 0xee]);
    let (r, _) = req(&f);
    assert_eq!(r.header.api_key, ApiKey::Unknown(0x7f00));
    assert_eq!(r.header.api_key.as_str(), "Unknown");
    assert_eq!(r.header.client_id, Some("c"));
    assert_eq!(r.body, &[0xee]);
}

#[test]
fn malformed_bodies_give_errors_from_topics() {
    // Produce v9 (flexible): transactional id null, acks 1, timeout, topic count 200 (too many).
    let mut b = vec![0, 0, 0, 9, 0, 0, 0, 1, 0, 1, b'c', 0];
    b.extend_from_slice(&[0, 0, 1, 0, 0, 0x75, 0x30, 0xc9, 0x01]);
    let f = frame(&b);
    let (r, _) = req(&f);
    assert_eq!(r.produce_acks(), Some(1));
    let mut t = r.topics().unwrap();
    assert_eq!(
        t.next(),
        Some(Err(Error::CountTooLarge {
            field: "topics",
            offset: 23,
            count: 200
        }))
    );
    assert!(t.next().is_none());
    // Fetch v4 truncated in the fixed fields.
    let f = frame(&[0, 1, 0, 4, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0]);
    let (r, _) = req(&f);
    assert!(matches!(
        r.topics().unwrap().next(),
        Some(Err(Error::Truncated { .. }))
    ));
    // Produce v3 with a topic whose name is not UTF-8.
    let mut b = vec![
        0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 0,
    ];
    b.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0xff, 0, 0, 0, 0]);
    let f = frame(&b);
    let (r, _) = req(&f);
    assert_eq!(
        r.topics().unwrap().next(),
        Some(Err(Error::InvalidUtf8 {
            field: "topic",
            offset: 28
        }))
    );
    // Not Produce or Fetch: no topics.
    let f = frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff]);
    let (r, _) = req(&f);
    assert!(r.topics().is_none() && r.produce_acks().is_none() && r.expects_response());
}

#[test]
fn limits_are_enforced_as_soon_as_the_size_is_known() {
    let frames = load();
    let c = frames.iter().find(|c| c.request).unwrap();
    let len = c.bytes.len();
    let exact = Limits {
        max_frame: len,
        ..Limits::default()
    };
    assert!(matches!(
        decode_request(&c.bytes, &exact),
        Ok(Decoded::Frame { .. })
    ));
    let small = Limits {
        max_frame: len - 1,
        ..Limits::default()
    };
    assert_eq!(
        decode_request(&c.bytes[..4], &small),
        Err(Error::FrameTooLarge { len, max: len - 1 })
    );
    assert_eq!(
        decode_response(&c.bytes[..4], 1, &small),
        Err(Error::FrameTooLarge { len, max: len - 1 })
    );
    // A 2 GiB frame is refused from its first 4 bytes, under the default limit.
    assert_eq!(
        decode_request(&[0x7f, 0xff, 0xff, 0xff], &limits()),
        Err(Error::FrameTooLarge {
            len: 4 + i32::MAX as usize,
            max: 64 << 20
        })
    );
    // Response too short for its correlation id.
    assert_eq!(
        decode_response(&frame(&[0, 0]), 0, &limits()),
        Err(Error::Truncated {
            field: "header",
            offset: 6
        })
    );
}

/// Decodes an encoded error response and returns (correlation id, error code at the top).
fn check_error_response(r: &Request<'_>, err: i16) -> Vec<u8> {
    let mut out = vec![0xee]; // something already in the buffer stays
    let n = encode_error_response(r, err, &mut out).unwrap();
    assert_eq!(out.len(), 1 + n);
    let bytes = out[1..].to_vec();
    let hv = r.response_header_version();
    let Decoded::Frame { frame: resp, used } = decode_response(&bytes, hv, &limits()).unwrap()
    else {
        panic!()
    };
    assert_eq!(used, n);
    assert_eq!(resp.correlation_id, r.header.correlation_id);
    let (k, v) = (r.header.api_key, r.header.api_version);
    if error_code_offset(k, v).is_some() {
        assert_eq!(resp.error_code(k, v), Some(err), "{k:?} v{v}");
    }
    // The error code is somewhere in the body, except in a Metadata v0-12 answer to a request
    // for all topics: that version has no field to carry it, and the empty broker list tells
    // the client to retry.
    let all_topics = k == ApiKey::Metadata && v < 13 && r.body.first().is_some_and(|b| *b <= 1);
    if !all_topics {
        assert!(
            resp.body.windows(2).any(|w| w == err.to_be_bytes()),
            "{k:?} v{v}"
        );
    }
    bytes
}

#[test]
fn error_responses_for_captured_requests() {
    let frames = load();
    let mut done = std::collections::BTreeSet::new();
    for c in frames.iter().filter(|c| c.request) {
        let (r, _) = req(&c.bytes);
        match encode_error_response(&r, 0, &mut Vec::new()) {
            Err(EncodeError::UnsupportedApi(_)) => continue,
            Err(e) => panic!("{e}"),
            Ok(_) => {}
        }
        check_error_response(&r, 7); // REQUEST_TIMED_OUT
        done.insert(r.header.api_key.as_str());
    }
    let want = [
        "ApiVersions",
        "Metadata",
        "Produce",
        "Fetch",
        "FindCoordinator",
        "JoinGroup",
        "Heartbeat",
        "OffsetCommit",
        "OffsetFetch",
    ];
    assert_eq!(done.len(), want.len(), "{done:?}");
}

#[test]
fn error_response_bytes() {
    // Heartbeat v4 (flexible) from kafka-python: header v1, throttle 0, error 27, no tags.
    let frames = load();
    let c = frames
        .iter()
        .find(|c| c.request && c.oracle["key"] == "12" && c.oracle["v"] == "4")
        .unwrap();
    let (r, _) = req(&c.bytes);
    let b = check_error_response(&r, 27);
    let corr = r.header.correlation_id.to_be_bytes();
    let mut want = vec![0, 0, 0, 12];
    want.extend_from_slice(&corr);
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 27, 0]);
    assert_eq!(b, want);
    // Produce v9 from kafka-python: the topic and each partition carry the error.
    let c = frames
        .iter()
        .find(|c| c.request && c.oracle["key"] == "0" && c.oracle["v"] == "9")
        .unwrap();
    let (r, _) = req(&c.bytes);
    let b = check_error_response(&r, 6); // NOT_LEADER_OR_FOLLOWER
    assert!(b.windows(7).any(|w| w == b"\x07orders"));
    let parts: usize = r
        .topics()
        .unwrap()
        .map(|t| t.unwrap().partitions.len())
        .sum();
    assert_eq!(b.windows(2).filter(|w| *w == [0, 6]).count(), parts);
    // ApiVersions newer than any known is answered as v0 (header v0, error, empty list).
    let f = frame(&[0, 18, 0, 9, 0, 0, 0, 5, 0, 0, 0]);
    let (r, _) = req(&f);
    let mut out = Vec::new();
    encode_error_response(&r, 35, &mut out).unwrap();
    assert_eq!(out, [0, 0, 0, 10, 0, 0, 0, 5, 0, 35, 0, 0, 0, 0]);
    // Unsupported api and versions are refused, not guessed.
    let (r, _) = req(&f);
    let mut r2 = r;
    r2.header.api_key = ApiKey::CreateTopics;
    assert_eq!(
        encode_error_response(&r2, 1, &mut out),
        Err(EncodeError::UnsupportedApi(ApiKey::CreateTopics))
    );
    r2.header.api_key = ApiKey::Heartbeat;
    r2.header.api_version = 5;
    assert!(matches!(
        encode_error_response(&r2, 1, &mut out),
        Err(EncodeError::UnsupportedVersion { .. })
    ));
}

/// Header-only error responses for every version of the apis that need nothing from the body.
#[test]
fn error_responses_every_version() {
    for (key, max) in [
        (ApiKey::ApiVersions, 4i16),
        (ApiKey::Heartbeat, 4),
        (ApiKey::JoinGroup, 9),
        (ApiKey::FindCoordinator, 3),
    ] {
        for v in 0..=max {
            let mut b = key.code().to_be_bytes().to_vec();
            b.extend_from_slice(&v.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 42, 0, 1, b'x']);
            if key.is_flexible(v) {
                b.push(0);
            }
            let f = frame(&b);
            let (r, _) = req(&f);
            check_error_response(&r, 16);
        }
    }
}

#[test]
fn header_version_table_is_complete() {
    // Every known api key has a name and a consistent pair of header versions.
    assert_eq!(ApiKey::ALL.len(), 94);
    for k in ApiKey::ALL {
        for v in 0..20 {
            let rq = request_header_version(*k, v);
            let rs = response_header_version(*k, v);
            assert!(rq <= 2 && rs <= 1);
            if *k != ApiKey::ApiVersions {
                assert_eq!(rq == 2, rs == 1, "{k:?} v{v}");
            }
        }
    }
    assert_eq!(ApiKey::ShareFetch.as_str(), "ShareFetch");
    assert_eq!(ApiKey::from_code(68), ApiKey::ConsumerGroupHeartbeat);
    assert_eq!(ApiKey::from_code(74).as_str(), "ListConfigResources");
}

#[test]
fn errors_display() {
    let e = Error::Truncated {
        field: "client_id",
        offset: 12,
    };
    assert_eq!(
        e.to_string(),
        "kafka: client_id at byte 12 runs past the end of the frame"
    );
    let _: &dyn std::error::Error = &e;
    let e = EncodeError::UnsupportedApi(ApiKey::Vote);
    assert!(e.to_string().contains("Vote"));
}
