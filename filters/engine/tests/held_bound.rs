//! Memory is bounded by `maxHeldBytes`, not by the largest frame: the engine observes frames
//! bigger than what it may hold from their first bytes and lets the rest pass uncopied.
//!
//! Differential: every captured real conversation (testdata of the codec crate) is fed with a
//! tiny cap (so that most frames take the head path) at many cut points, and every metric must
//! equal what the default cap (every frame held whole) counts, while the bytes held never
//! exceed the cap per direction. Then frames of 8 MiB and more are observed holding at most the
//! cap.

use meltemi_engine::{Engine, FilterConfig, MetricId, MetricSink, Session, Verdict};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Default)]
struct Sink(BTreeMap<u32, i64>);

impl MetricSink for Sink {
    fn inc(&mut self, id: MetricId, d: u64) {
        *self.0.entry(id.0).or_default() += d as i64;
    }
    fn gauge_add(&mut self, id: MetricId, d: i64) {
        *self.0.entry(id.0).or_default() += d;
    }
    fn record(&mut self, id: MetricId, _: u64) {
        // Histograms: count the samples (values are latencies, which differ by clock only).
        *self.0.entry(id.0 | 1 << 31).or_default() += 1;
    }
}

fn testdata(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../codec/testdata")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One conversation: client bytes, then server bytes (pairing is by id or in order, so all
/// requests before all replies is a valid interleaving).
struct Conversation {
    name: String,
    c2s: Vec<u8>,
    s2c: Vec<u8>,
}

fn conversations() -> Vec<(&'static str, Conversation)> {
    let mut out = Vec::new();
    for (proto, dir) in [
        ("redis", "redis"),
        ("thrift", "thrift"),
        ("zookeeper", "zookeeper"),
    ] {
        let base = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../codec/testdata")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&base)
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".c2s.bin"))
            .collect();
        names.sort();
        for n in names {
            let stem = n.trim_end_matches(".c2s.bin").to_string();
            out.push((
                proto,
                Conversation {
                    c2s: testdata(&format!("{dir}/{stem}.c2s.bin")),
                    s2c: testdata(&format!("{dir}/{stem}.s2c.bin")),
                    name: format!("{dir}/{stem}"),
                },
            ));
        }
    }
    // Dubbo: numbered request/response files in order.
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../codec/testdata/dubbo");
    let mut names: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin") && n.as_bytes()[0].is_ascii_digit())
        .collect();
    names.sort();
    let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
    for n in &names {
        let bytes = testdata(&format!("dubbo/{n}"));
        // Dubbo's flag byte: 0x80 = request (either peer may send heartbeat requests).
        let from_client = n.contains("client");
        if from_client {
            c2s.extend(bytes)
        } else {
            s2c.extend(bytes)
        }
    }
    out.push((
        "dubbo",
        Conversation {
            name: "dubbo/all".into(),
            c2s,
            s2c,
        },
    ));
    // Kafka: per connection, hex frames by direction.
    for file in [
        "kafka-python.frames",
        "kafka-python-legacy.frames",
        "confluent-kafka.frames",
    ] {
        let text = String::from_utf8(testdata(&format!("kafka/{file}"))).unwrap();
        let mut conns: BTreeMap<String, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut it = line.split_whitespace();
            let (Some(conn), Some(dir), Some(hex)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let e = conns.entry(conn.to_string()).or_default();
            if dir == ">" {
                e.0.extend(bytes)
            } else {
                e.1.extend(bytes)
            }
        }
        for (conn, (c2s, s2c)) in conns {
            out.push((
                "kafka",
                Conversation {
                    name: format!("kafka/{file}/{conn}"),
                    c2s,
                    s2c,
                },
            ));
        }
    }
    out
}

fn engine(proto: &str, extra: &str) -> Engine {
    Engine::new(
        FilterConfig::from_json(&format!(
            r#"{{"protocol":"{proto}","statPrefix":"t","methods":["add","sayHello","fail"]{extra}}}"#
        ))
        .unwrap(),
    )
}

/// Feeds the conversation cut into pieces of `step` bytes (0: whole); checks the bytes held
/// against `cap` after every piece. Returns every metric and whether a verdict closed.
fn run(e: &Engine, c: &Conversation, step: usize, cap: usize) -> (BTreeMap<u32, i64>, bool, u64) {
    let mut sink = Sink::default();
    let mut s = Session::new(e, &mut sink);
    let mut closed = false;
    for (request, bytes) in [(true, &c.c2s), (false, &c.s2c)] {
        let n = if step == 0 { bytes.len().max(1) } else { step };
        for piece in bytes.chunks(n) {
            let v = if request {
                s.on_downstream(e, piece, 1, &mut sink)
            } else {
                s.on_upstream(e, piece, 2, &mut sink)
            };
            closed |= v != Verdict::Continue;
            assert!(
                s.buffered() <= 2 * cap,
                "{}: {} bytes held, cap {cap}",
                c.name,
                s.buffered()
            );
        }
    }
    let headed = s.headed();
    s.on_close(e, &mut sink);
    (sink.0, closed, headed)
}

fn proto_index(p: &str) -> usize {
    ["redis", "thrift", "zookeeper", "dubbo", "kafka"]
        .iter()
        .position(|x| *x == p)
        .unwrap_or(0)
}

#[test]
fn a_tiny_cap_counts_exactly_what_holding_whole_frames_counts() {
    let mut headed = [0u64; 5];
    for (proto, c) in conversations() {
        // Unframed Thrift carries no length: its messages are held whole, up to the cap
        // (documented); lax binary unframed is not even detectable without configuration.
        if c.name.contains("unframed") {
            continue;
        }
        let whole = engine(proto, "");
        let (want, closed, _) = run(&whole, &c, 0, usize::MAX / 4);
        assert!(!closed, "{}: the reference run closed", c.name);
        for cap in [256usize, 1024] {
            let small = engine(proto, &format!(r#","maxHeldBytes":{cap}"#));
            for step in [0usize, 1, 7, 100, 1500] {
                let (got, closed, h) = run(&small, &c, step, cap);
                if cap == 256 && step == 1 {
                    headed[proto_index(proto)] += h;
                }
                assert!(!closed, "{}: cap {cap}, step {step}: closed", c.name);
                let name = |id: u32| {
                    small.metrics.defs()[(id & !(1 << 31)) as usize]
                        .name
                        .clone()
                };
                let diff: Vec<String> = want
                    .keys()
                    .chain(got.keys())
                    .filter(|k| want.get(k) != got.get(k))
                    .map(|k| format!("{}: {:?} vs {:?}", name(*k), want.get(k), got.get(k)))
                    .collect();
                assert!(
                    diff.is_empty(),
                    "{}: cap {cap}, step {step}: {diff:?}",
                    c.name
                );
            }
        }
    }
    // Every protocol had frames over the cap that took the head path.
    assert!(
        headed.iter().all(|h| *h > 0),
        "frames decoded from their head: {headed:?}"
    );
}

/// Frames of `len` bytes built for each protocol: a request and its reply.
fn big_pair(proto: &str, len: usize) -> (Vec<u8>, Vec<u8>) {
    match proto {
        "redis" => {
            let mut req = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes();
            req.resize(req.len() + len, b'x');
            req.extend_from_slice(b"\r\n");
            let mut rep = format!("${len}\r\n").into_bytes();
            rep.resize(rep.len() + len, b'y');
            rep.extend_from_slice(b"\r\n");
            (req, rep)
        }
        "thrift" => {
            // Framed strict binary call `add` seq 7 with one string field of `len` bytes, and
            // its reply with a string success field.
            let msg = |kind: u8, field: i16| {
                let mut m = vec![0x80, 0x01, 0x00, kind];
                m.extend(3u32.to_be_bytes());
                m.extend(b"add");
                m.extend(7i32.to_be_bytes());
                m.push(11); // string
                m.extend(field.to_be_bytes());
                m.extend((len as u32).to_be_bytes());
                m.resize(m.len() + len, b'z');
                m.push(0); // stop
                let mut f = (m.len() as u32).to_be_bytes().to_vec();
                f.extend(m);
                f
            };
            (msg(1, 1), msg(2, 0))
        }
        "kafka" => {
            // Produce v3 request (acks 1) and a response padded to `len`.
            let mut req = Vec::new();
            req.extend(0i16.to_be_bytes()); // api key Produce
            req.extend(3i16.to_be_bytes());
            req.extend(42i32.to_be_bytes());
            req.extend(1i16.to_be_bytes());
            req.push(b'c');
            req.extend((-1i16).to_be_bytes()); // transactional id null
            req.extend(1i16.to_be_bytes()); // acks
            req.extend(1000i32.to_be_bytes());
            req.resize(req.len() + len, 0);
            let mut r = (req.len() as u32).to_be_bytes().to_vec();
            r.extend(req);
            let mut rep = Vec::new();
            rep.extend(42i32.to_be_bytes());
            rep.resize(rep.len() + len, 0);
            let mut p = (rep.len() as u32).to_be_bytes().to_vec();
            p.extend(rep);
            (r, p)
        }
        "zookeeper" => {
            // After the handshake: getData (4) xid 5 on a path, and a reply of `len` bytes.
            let mut req = Vec::new();
            req.extend(5i32.to_be_bytes());
            req.extend(4i32.to_be_bytes());
            req.extend(2u32.to_be_bytes());
            req.extend(b"/a");
            req.push(0);
            req.resize(req.len() + len, 0);
            let mut r = (req.len() as u32).to_be_bytes().to_vec();
            r.extend(req);
            let mut rep = Vec::new();
            rep.extend(5i32.to_be_bytes());
            rep.extend(9i64.to_be_bytes());
            rep.extend(0i32.to_be_bytes());
            rep.resize(rep.len() + len, 0);
            let mut p = (rep.len() as u32).to_be_bytes().to_vec();
            p.extend(rep);
            (r, p)
        }
        _ => unreachable!(),
    }
}

fn zk_handshake() -> (Vec<u8>, Vec<u8>) {
    let mut req = Vec::new();
    req.extend(0i32.to_be_bytes()); // protocol version
    req.extend(0i64.to_be_bytes()); // last zxid
    req.extend(30000i32.to_be_bytes());
    req.extend(0i64.to_be_bytes()); // session id
    req.extend(16u32.to_be_bytes());
    req.extend([0u8; 16]);
    let mut r = (req.len() as u32).to_be_bytes().to_vec();
    r.extend(req);
    let mut rep = Vec::new();
    rep.extend(0i32.to_be_bytes());
    rep.extend(30000i32.to_be_bytes());
    rep.extend(7i64.to_be_bytes());
    rep.extend(16u32.to_be_bytes());
    rep.extend([0u8; 16]);
    let mut p = (rep.len() as u32).to_be_bytes().to_vec();
    p.extend(rep);
    (r, p)
}

#[test]
fn eight_mebibyte_frames_are_observed_holding_at_most_the_cap() {
    for proto in ["redis", "thrift", "kafka", "zookeeper"] {
        let e = engine(proto, r#","maxFrameBytes":33554432"#);
        let cap = e.config.max_held_bytes;
        let mut sink = Sink::default();
        let mut s = Session::new(&e, &mut sink);
        if proto == "zookeeper" {
            let (a, b) = zk_handshake();
            s.on_downstream(&e, &a, 0, &mut sink);
            s.on_upstream(&e, &b, 0, &mut sink);
        }
        let (req, rep) = big_pair(proto, 8 << 20);
        let (small_req, small_rep) = big_pair(proto, 10);
        let mut most = 0;
        for (request, bytes) in [
            (true, &req),
            (true, &small_req),
            (false, &rep),
            (false, &small_rep),
        ] {
            // Envoy-sized reads.
            for piece in bytes.chunks(16 << 10) {
                let v = if request {
                    s.on_downstream(&e, piece, 1, &mut sink)
                } else {
                    s.on_upstream(&e, piece, 2, &mut sink)
                };
                assert_eq!(v, Verdict::Continue, "{proto}: {:?}", s.error());
                most = most.max(s.buffered());
            }
        }
        assert!(most <= cap, "{proto}: held {most} > {cap}");
        let id = |n: &str| {
            e.metrics
                .defs()
                .iter()
                .position(|d| d.name == format!("{proto}.t.{n}"))
                .unwrap_or_else(|| panic!("{proto}.t.{n}")) as u32
        };
        let extra = i64::from(proto == "zookeeper");
        assert_eq!(sink.0.get(&id("request")), Some(&(2 + extra)), "{proto}");
        assert_eq!(sink.0.get(&id("response")), Some(&(2 + extra)), "{proto}");
        assert_eq!(sink.0.get(&id("request_active")).copied().unwrap_or(0), 0);
        assert_eq!(s.in_flight(), 0, "{proto}");
    }
}

#[test]
fn a_head_that_does_not_fit_the_cap_is_a_decode_error() {
    // A Redis command name longer than the cap: refused, never held past it.
    let e = engine("redis", r#","maxHeldBytes":64"#);
    let mut sink = Sink::default();
    let mut s = Session::new(&e, &mut sink);
    let mut req = b"*1\r\n$1000\r\n".to_vec();
    req.resize(req.len() + 1000, b'a');
    req.extend_from_slice(b"\r\n");
    let mut last = Verdict::Continue;
    for piece in req.chunks(10) {
        last = s.on_downstream(&e, piece, 0, &mut sink);
        assert!(s.buffered() <= 64);
        if last != Verdict::Continue {
            break;
        }
    }
    assert_ne!(last, Verdict::Continue);
    assert!(
        s.error().unwrap().contains("maxHeldBytes"),
        "{:?}",
        s.error()
    );
}
