//! Redis codec tests on frames captured from a real redis-server 7.0.15 (see
//! `testdata/redis/README.md`), plus prefix, split, trailing-bytes, malformed-input, limit and
//! encoder tests.
use meltemi_codec::redis::{
    blob_error_len, decode_request, decode_response, encode_blob_error, encode_error, error_len,
    Command, Error, Form, RedirectKind, Reply, ReplyType, Request, Value,
};
use meltemi_codec::{Decoded, Limits, Need};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/redis")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn captures(suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

const L: Limits = Limits {
    max_frame: 64 * 1024 * 1024,
    max_depth: 32,
};

fn req(buf: &[u8]) -> (Request<'_>, usize) {
    decode_request(buf, &L)
        .unwrap()
        .frame()
        .expect("whole request")
}

fn rep(buf: &[u8]) -> (Reply<'_>, usize) {
    decode_response(buf, &L)
        .unwrap()
        .frame()
        .expect("whole reply")
}

fn requests(buf: &[u8]) -> Vec<(Request<'_>, usize)> {
    let mut out = vec![];
    let mut p = 0;
    while p < buf.len() {
        let (r, used) = req(&buf[p..]);
        out.push((r, used));
        p += used;
    }
    out
}

fn replies(buf: &[u8]) -> Vec<(Reply<'_>, usize)> {
    let mut out = vec![];
    let mut p = 0;
    while p < buf.len() {
        let (r, used) = rep(&buf[p..]);
        out.push((r, used));
        p += used;
    }
    out
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "''".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn arg_text(a: &[u8]) -> String {
    if a.len() > 64 {
        format!("#{}", a.len())
    } else {
        hex(a)
    }
}

/// The same summary line `scripts/capture/redis_expect.py` writes, from our decode.
fn reply_line(r: &Reply<'_>, used: usize) -> String {
    let (t, d) = match r.value {
        Value::Simple(s) => ('+', hex(s)),
        Value::Error(e) if e.blob => ('!', e.text.len().to_string()),
        Value::Error(e) => ('-', hex(e.text)),
        Value::Integer(i) => (':', i.to_string()),
        Value::Bulk(b) => ('$', b.len().to_string()),
        Value::StreamedBulk { len, .. } => ('$', format!("?{len}")),
        Value::Null => ('_', "-".into()),
        Value::Boolean(b) => ('#', if b { "t" } else { "f" }.into()),
        Value::Double(s) => (',', hex(s)),
        Value::BigNumber(s) => ('(', hex(s)),
        Value::Verbatim { text, .. } => ('=', (text.len() + 4).to_string()),
        Value::Array(a) => ('*', a.len.map_or("?".into(), |n| n.to_string())),
        Value::Map(a) => ('%', a.len.map_or("?".into(), |n| n.to_string())),
        Value::Set(a) => ('~', a.len.map_or("?".into(), |n| n.to_string())),
        Value::Push(a) => ('>', a.len.map_or("?".into(), |n| n.to_string())),
        _ => unreachable!(),
    };
    let attr = if r.attributes.is_some() { " attr" } else { "" };
    format!("{used} {t} {d}{attr}")
}

/// The Python side writes RESP2 nulls with their own type byte; ours folds them into Null.
fn normalize_null(line: &str) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() >= 3 && f[2] == "-" && (f[1] == "$" || f[1] == "*") {
        return format!("{} _ -{}", f[0], if f.len() > 3 { " attr" } else { "" });
    }
    line.to_string()
}

#[test]
fn captured_requests_decode_exactly() {
    let mut frames = 0;
    for name in captures(".c2s.bin") {
        let buf = read(&name);
        let expect = String::from_utf8(read(&name.replace(".bin", ".txt"))).unwrap();
        let got = requests(&buf);
        let lines: Vec<&str> = expect.lines().collect();
        assert_eq!(got.len(), lines.len(), "{name}");
        for ((r, used), line) in got.iter().zip(lines) {
            let args: Vec<String> = r.args().map(arg_text).collect();
            let form = match r.form {
                Form::Multibulk => "m",
                Form::Inline => "i",
            };
            let mine = [vec![used.to_string(), form.to_string()], args]
                .concat()
                .join(" ");
            assert_eq!(mine, line, "{name}");
            assert_eq!(r.argc, r.args().count());
            if r.argc > 0 {
                assert_eq!(r.args().next().unwrap(), r.name);
                assert_eq!(r.command, Command::from_name(r.name));
            }
            frames += 1;
        }
    }
    assert!(frames > 2000, "{frames}");
}

#[test]
fn captured_replies_decode_exactly() {
    let mut frames = 0;
    for name in captures(".s2c.bin") {
        let buf = read(&name);
        let expect = String::from_utf8(read(&name.replace(".bin", ".txt"))).unwrap();
        let got = replies(&buf);
        let lines: Vec<&str> = expect.lines().collect();
        assert_eq!(got.len(), lines.len(), "{name}");
        for ((r, used), line) in got.iter().zip(lines) {
            assert_eq!(reply_line(r, *used), normalize_null(line), "{name}");
            frames += 1;
        }
    }
    assert!(frames > 1500, "{frames}");
}

fn find<'a>(frames: &'a [(Request<'a>, usize)], name: &[u8], nth: usize) -> &'a Request<'a> {
    &frames
        .iter()
        .filter(|(r, _)| r.name.eq_ignore_ascii_case(name))
        .nth(nth)
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(name)))
        .0
}

#[test]
fn captured_commands_and_keys() {
    // redis-cli 7.0, RESP2 session (commands listed in scripts/capture/redis_capture.sh).
    let buf = read("cli2-0.c2s.bin");
    let f = requests(&buf);
    // redis-cli opens with `COMMAND DOCS` (for its hints).
    assert_eq!(f[0].0.command, Command::Command);
    assert_eq!(f[0].0.key, None);
    type Case<'a> = (&'a [u8], usize, Command, Option<&'a [u8]>, usize);
    let cases: &[Case<'_>] = &[
        (b"PING", 0, Command::Ping, None, 1),
        (b"SET", 0, Command::Set, Some(b"user:1"), 3),
        (b"GET", 0, Command::Get, Some(b"user:1"), 2),
        (b"GET", 1, Command::Get, Some(b"missing"), 2),
        (b"INCR", 0, Command::Incr, Some(b"counter"), 2),
        (b"MSET", 0, Command::Mset, Some(b"a"), 5),
        (b"MGET", 0, Command::Mget, Some(b"a"), 4),
        (b"HSET", 0, Command::Hset, Some(b"h"), 6),
        (b"LRANGE", 0, Command::Lrange, Some(b"l"), 4),
        (b"NOSUCHCOMMAND", 0, Command::Unknown, None, 2),
        // EVAL script numkeys key arg: the key follows numkeys.
        (b"EVAL", 0, Command::Eval, Some(b"user:1"), 5),
        (b"XADD", 0, Command::Xadd, Some(b"st"), 5),
        // XREAD COUNT 1 STREAMS st 0: the key follows STREAMS.
        (b"XREAD", 0, Command::Xread, Some(b"st"), 6),
        // OBJECT ENCODING key: containers take argv[2].
        (b"OBJECT", 0, Command::Object, Some(b"user:1"), 3),
        (b"CLUSTER", 0, Command::Cluster, None, 2),
        (b"CLIENT", 0, Command::Client, None, 3),
        (b"CONFIG", 0, Command::Config, None, 3),
    ];
    for &(name, nth, cmd, key, argc) in cases {
        let r = find(&f, name, nth);
        assert_eq!((r.command, r.key, r.argc), (cmd, key, argc), "{}", cmd);
        assert_eq!(r.form, Form::Multibulk);
    }
    let big = find(&f, b"SET", 1);
    assert_eq!(big.key, Some(&b"bigkey"[..]));
    assert_eq!(big.args().nth(2).unwrap().len(), 70000);
    assert_eq!(Command::Get.as_str(), "get");
    assert_eq!(Command::Unknown.as_str(), "unknown");
}

#[test]
fn captured_inline_commands() {
    // Raw inline client (python socket), one burst: see README.
    let buf = read("inline-0.c2s.bin");
    let f = requests(&buf);
    let summary: Vec<(Command, Option<&[u8]>, usize)> =
        f.iter().map(|(r, _)| (r.command, r.key, r.argc)).collect();
    assert_eq!(
        summary,
        vec![
            (Command::Ping, None, 1),
            (Command::Set, Some(&b"greeting"[..]), 3),
            (Command::Get, Some(&b"greeting"[..]), 2),
            (Command::Get, Some(&b"sq\\'x"[..]), 2),
            (Command::Unknown, None, 0),
            (Command::Exists, Some(&b"a"[..]), 3),
            (Command::Quit, None, 1),
        ]
    );
    assert!(f.iter().all(|(r, _)| r.form == Form::Inline));
    assert_eq!(f[1].0.args().nth(2), Some(&b"hello world"[..]));
    // `GET greeting\n` ends with a bare LF, which redis-server accepts.
    assert_eq!(f[2].1, b"GET greeting\n".len());
}

#[test]
fn captured_benchmark_frames() {
    // redis-benchmark -P 16: GET frames are `*2 $3 GET $16 key:0000000000NN`.
    let name = captures(".c2s.bin")
        .into_iter()
        .find(|n| {
            let b = read(n);
            n.starts_with("bench") && b.starts_with(b"*2\r\n$3\r\nGET\r\n")
        })
        .expect("a GET session");
    let buf = read(&name);
    let f = requests(&buf);
    assert_eq!(f.len(), 800);
    for (r, used) in &f {
        assert_eq!(r.command, Command::Get);
        assert!(r.key.unwrap().starts_with(b"key:"));
        assert_eq!(*used, 36);
    }
}

#[test]
fn captured_resp3_replies() {
    // redis-cli -3: HELLO 3 reply is a map of 7 pairs.
    let buf = read("cli3-0.s2c.bin");
    let f = replies(&buf);
    assert!(matches!(f[0].0.value, Value::Map(a) if a.len == Some(7)));
    let types: Vec<ReplyType> = f.iter().map(|(r, _)| r.reply_type()).collect();
    for t in [
        ReplyType::Map,
        ReplyType::Set,
        ReplyType::Double,
        ReplyType::Null,
        ReplyType::Verbatim,
        ReplyType::Boolean,
        ReplyType::Push,
    ] {
        assert!(types.contains(&t), "{}", t.as_str());
    }
    // ZSCORE z m -> ,1.5
    assert!(f.iter().any(|(r, _)| r.value == Value::Double(b"1.5")));
    // INFO server in RESP3 is a verbatim string `=N\r\ntxt:...`.
    assert!(f
        .iter()
        .any(|(r, _)| matches!(r.value, Value::Verbatim { format: b"txt", text } if text.starts_with(b"# Server"))));
    // CLIENT TRACKING on; GET a; SET a 3 -> the server pushes `>2 invalidate [a]` (the first
    // push is DEBUG PROTOCOL push's).
    let push = f.iter().filter(|(r, _)| r.is_push()).nth(1).unwrap();
    match push.0.value {
        Value::Push(a) => {
            assert_eq!(a.len, Some(2));
            assert!(a.body.starts_with(b"$10\r\ninvalidate\r\n"));
        }
        _ => unreachable!(),
    }

    // Raw RESP3 client: DEBUG PROTOCOL attrib gives `|1 ... ` then a bulk string.
    let buf = read("resp3raw-0.s2c.bin");
    let f = replies(&buf);
    let attr = f[1].0;
    assert!(attr.attributes.unwrap().starts_with(b"|1\r\n"));
    assert!(matches!(attr.value, Value::Bulk(b) if b.starts_with(b"Some real reply")));
    assert_eq!(f[2].0.reply_type(), ReplyType::BigNumber);
    // DEBUG PROTOCOL push: a push, then the command's own reply.
    assert!(matches!(f[3].0.value, Value::Push(a) if a.len == Some(2)));
    assert!(matches!(f[4].0.value, Value::Bulk(_)));
    // SUBSCRIBE news in RESP3 answers with a push.
    assert!(matches!(f[5].0.value, Value::Push(a) if a.len == Some(3)));
}

#[test]
fn captured_cluster_redirections() {
    // 3-node cluster: GET foo -> MOVED 12182 127.0.0.1:<port of node 3>; GET hello while its
    // slot 866 migrates -> ASK 866 127.0.0.1:<port of node 2>.
    let buf = read("cluster-0.s2c.bin");
    let f = replies(&buf);
    let moved = f[1].0.error().unwrap();
    assert_eq!(moved.code(), b"MOVED");
    let r = moved.redirect.unwrap();
    assert_eq!(
        (r.kind, r.slot, r.host),
        (RedirectKind::Moved, 12182, &b"127.0.0.1"[..])
    );
    assert!(r.port > 1024);
    let ask = f[2].0.error().unwrap().redirect.unwrap();
    assert_eq!(
        (ask.kind, ask.slot, ask.host),
        (RedirectKind::Ask, 866, &b"127.0.0.1"[..])
    );
    assert_eq!(ask.kind.as_str(), "ask");
    assert_eq!(f[3].0.value, Value::Integer(866));
    // RESP2 error text from redis-server for an unknown command.
    let buf = read("cli2-0.s2c.bin");
    let f = replies(&buf);
    let codes: Vec<&[u8]> = f
        .iter()
        .filter_map(|(r, _)| r.error())
        .map(|e| e.code())
        .collect();
    // LPOP on a string, the unknown command, CLUSTER SLOTS without cluster mode.
    assert_eq!(codes, vec![&b"WRONGTYPE"[..], b"ERR", b"ERR"]);
    let e = f.iter().filter_map(|(r, _)| r.error()).nth(1).unwrap();
    assert!(e.text.starts_with(b"ERR unknown command 'NOSUCHCOMMAND'"));
    assert_eq!(e.redirect, None);
}

#[test]
fn redirect_forms() {
    type Case<'a> = (&'a [u8], Option<(RedirectKind, u16, &'a [u8], u16)>);
    let cases: &[Case<'_>] = &[
        (
            b"-MOVED 3999 127.0.0.1:6381\r\n",
            Some((RedirectKind::Moved, 3999, b"127.0.0.1", 6381)),
        ),
        (
            b"-ASK 0 ::1:7000\r\n",
            Some((RedirectKind::Ask, 0, b"::1", 7000)),
        ),
        (
            b"-MOVED 5 :7001\r\n",
            Some((RedirectKind::Moved, 5, b"", 7001)),
        ),
        (b"-MOVED 16384 h:1\r\n", None),
        (b"-MOVED x h:1\r\n", None),
        (b"-MOVED 1 h:99999\r\n", None),
        (b"-ERR MOVED 1 h:1\r\n", None),
    ];
    for (wire, want) in cases {
        let (r, used) = rep(wire);
        assert_eq!(used, wire.len());
        let got = r
            .error()
            .unwrap()
            .redirect
            .map(|r| (r.kind, r.slot, r.host, r.port));
        assert_eq!(got, *want, "{}", String::from_utf8_lossy(wire));
    }
}

fn unit<F>(d: Decoded<F>) -> Decoded<()> {
    match d {
        Decoded::Frame { used, .. } => Decoded::Frame { frame: (), used },
        Decoded::NeedMore(n) => Decoded::NeedMore(n),
    }
}

fn dreq(b: &[u8]) -> Result<Decoded<()>, Error> {
    decode_request(b, &L).map(unit)
}

fn drep(b: &[u8]) -> Result<Decoded<()>, Error> {
    decode_response(b, &L).map(unit)
}

/// Every strict prefix is NeedMore asking for more than it holds and no more than the frame.
fn assert_prefixes(frame: &[u8], used: usize, decode: fn(&[u8]) -> Result<Decoded<()>, Error>) {
    let step = if used > 8192 { 997 } else { 1 };
    let cuts = (0..used).step_by(step).chain(used.saturating_sub(64)..used);
    for cut in cuts {
        match decode(&frame[..cut]) {
            Ok(Decoded::NeedMore(n)) => {
                assert!(
                    n.bytes() > cut && n.bytes() <= used,
                    "cut {cut} of {used}: {n:?}"
                );
                assert!(matches!(n, Need::AtLeast(_)));
            }
            other => panic!("cut {cut} of {used}: {other:?}"),
        }
    }
}

#[test]
fn every_prefix_of_every_captured_frame_needs_more() {
    for name in captures(".c2s.bin") {
        let buf = read(&name);
        let mut p = 0;
        for (_, used) in requests(&buf) {
            assert_prefixes(&buf[p..p + used], used, dreq);
            p += used;
        }
    }
    for name in captures(".s2c.bin") {
        let buf = read(&name);
        let mut p = 0;
        for (_, used) in replies(&buf) {
            assert_prefixes(&buf[p..p + used], used, drep);
            p += used;
        }
    }
}

/// Feeds `stream` to a caller that behaves as the engine will (hold bytes until the codec's
/// bound is met), the bytes arriving in two pieces split at `split`; returns the frame ends.
fn drive(
    stream: &[u8],
    split: usize,
    decode: fn(&[u8]) -> Result<Decoded<()>, Error>,
) -> Vec<usize> {
    let mut held = split.min(stream.len());
    let mut start = 0;
    let mut ends = vec![];
    let mut calls = 0;
    while start < stream.len() {
        calls += 1;
        assert!(calls < 10 * stream.len() + 10);
        match decode(&stream[start..held]).unwrap() {
            Decoded::Frame { used, .. } => {
                start += used;
                ends.push(start);
            }
            Decoded::NeedMore(n) => {
                let want = start + n.bytes();
                assert!(want > held && want <= stream.len(), "need past the stream");
                held = want
                    .max(if held < split { split } else { held })
                    .min(stream.len());
            }
        }
    }
    ends
}

#[test]
fn split_at_every_point() {
    let mut req_stream = read("inline-0.c2s.bin");
    req_stream.extend(read("resp3raw-0.c2s.bin"));
    req_stream.extend(&read("cluster-0.c2s.bin")[..]);
    let whole = drive(&req_stream, req_stream.len(), dreq);
    for split in 0..=req_stream.len() {
        assert_eq!(drive(&req_stream, split, dreq), whole, "split {split}");
    }
    let mut rep_stream = read("resp3raw-0.s2c.bin");
    rep_stream.extend(read("inline-0.s2c.bin"));
    let cli3 = read("cli3-0.s2c.bin");
    let firsts = replies(&cli3);
    // Everything after COMMAND DOCS (the second reply, 170 KB).
    let skip = firsts[0].1 + firsts[1].1;
    rep_stream.extend(&cli3[skip..]);
    let whole = drive(&rep_stream, rep_stream.len(), drep);
    assert!(whole.len() > 30);
    for split in 0..=rep_stream.len() {
        assert_eq!(drive(&rep_stream, split, drep), whole, "split {split}");
    }
}

#[test]
fn trailing_bytes_are_not_consumed() {
    let get = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    for tail in [&b"*1\r\n$4\r\nPING\r\n"[..], b"garbage", b"\x00\xff", b"*"] {
        let buf = [&get[..], tail].concat();
        let (r, used) = req(&buf);
        assert_eq!(
            (r.command, r.key, used),
            (Command::Get, Some(&b"key"[..]), get.len())
        );
    }
    let reply = b"*2\r\n$1\r\na\r\n:1\r\n";
    for tail in [&b"+OK\r\n"[..], b"\r\n", b"zz"] {
        let buf = [&reply[..], tail].concat();
        assert_eq!(rep(&buf).1, reply.len());
    }
    // Inline requests end at the first LF.
    assert_eq!(req(b"PING\r\nPING\r\n").1, 6);
}

#[test]
fn resp3_edge_forms() {
    let cases: &[(&[u8], ReplyType)] = &[
        (b"$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n", ReplyType::Bulk),
        (
            b"*?\r\n:1\r\n%?\r\n+a\r\n:1\r\n.\r\n.\r\n",
            ReplyType::Array,
        ),
        (b"~?\r\n.\r\n", ReplyType::Set),
        (
            b"|1\r\n+k\r\n|1\r\n+x\r\n+y\r\n+v\r\n*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n",
            ReplyType::Array,
        ),
        (b"_\r\n", ReplyType::Null),
        (b"*-1\r\n", ReplyType::Null),
        (b"!21\r\nSYNTAX invalid syntax\r\n", ReplyType::Error),
        (b",-inf\r\n", ReplyType::Double),
        (b":+5\r\n", ReplyType::Integer),
        (b"*0\r\n", ReplyType::Array),
        (b"%0\r\n", ReplyType::Map),
    ];
    for (wire, t) in cases {
        let (r, used) = rep(wire);
        assert_eq!(
            (r.reply_type(), used),
            (*t, wire.len()),
            "{}",
            String::from_utf8_lossy(wire)
        );
        assert_prefixes(wire, wire.len(), drep);
    }
    let (r, _) = rep(b"$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n");
    assert!(matches!(
        r.value,
        Value::StreamedBulk {
            chunks: 2,
            len: 5,
            ..
        }
    ));
    assert_eq!(
        rep(b":-9223372036854775808\r\n").0.value,
        Value::Integer(i64::MIN)
    );
    let (r, _) = rep(b"!21\r\nSYNTAX invalid syntax\r\n");
    assert_eq!(r.error().unwrap().code(), b"SYNTAX");
    // Empty requests: redis-server ignores `*0`, `*-1` and blank lines without replying.
    for wire in [&b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"   \n"] {
        let (r, used) = req(wire);
        assert!(r.is_empty() && used == wire.len());
    }
}

#[test]
fn malformed_inputs_give_the_right_error() {
    use Error::*;
    let reqs: &[(&[u8], Error)] = &[
        (
            b"*2\r\n:1\r\n",
            ExpectedBulk {
                offset: 4,
                byte: b':',
            },
        ),
        (b"*x\r\n", BadInteger { offset: 1 }),
        (b"*1\r\n$-1\r\n", BadLength { offset: 4 }),
        (b"*1\r\n$3\r\nGETxx", BadLineEnd { offset: 11 }),
        (b"*3000000000\r\n", BadInteger { offset: 1 }),
        (b"*1\rx", BadLineEnd { offset: 2 }),
        (b"*99999999999999999999\r\n", BadInteger { offset: 20 }),
        (b"get \"unterminated\r\n", UnbalancedQuotes { offset: 4 }),
        (b"get \"a\"b\r\n", UnbalancedQuotes { offset: 7 }),
    ];
    for (wire, want) in reqs {
        assert_eq!(
            decode_request(wire, &L),
            Err(*want),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
    let reps: &[(&[u8], Error)] = &[
        (
            b"?\r\n",
            UnknownType {
                offset: 0,
                byte: b'?',
            },
        ),
        (
            b"*1\r\nX\r\n",
            UnknownType {
                offset: 4,
                byte: b'X',
            },
        ),
        (b"$-2\r\n", BadLength { offset: 0 }),
        (b"%-1\r\n", BadLength { offset: 0 }),
        (b"+OK\n", BadLineEnd { offset: 3 }),
        (b"+O\rK\r\n", BadLineEnd { offset: 2 }),
        (b"#x\r\n", BadScalar { offset: 1 }),
        (b"_x\r\n", BadScalar { offset: 1 }),
        (b"=3\r\ntxt\r\n", BadVerbatim { offset: 0 }),
        (b"=5\r\ntxtab\r\n", BadVerbatim { offset: 0 }),
        (b"$?\r\nx", BadChunk { offset: 4 }),
        (b".\r\n", Unexpected { offset: 0 }),
        (b"*1\r\n.\r\n", Unexpected { offset: 4 }),
        (b":12a\r\n", BadInteger { offset: 3 }),
        (b":9223372036854775808\r\n", BadInteger { offset: 1 }),
        (b"$3\r\nabcd\r\n", BadLineEnd { offset: 7 }),
    ];
    for (wire, want) in reps {
        assert_eq!(
            decode_response(wire, &L),
            Err(*want),
            "{}",
            String::from_utf8_lossy(wire)
        );
        let e = decode_response(wire, &L).unwrap_err();
        assert!(e.to_string().contains(e.rule()));
    }
}

#[test]
fn limits_are_enforced_before_waiting() {
    let small = Limits {
        max_frame: 100,
        max_depth: 3,
    };
    // A bulk length beyond max_frame is refused at once, not waited for.
    assert!(matches!(
        decode_request(b"*2\r\n$3\r\nSET\r\n$200\r\n", &small),
        Err(Error::FrameTooLarge { offset: 13, need, max: 100 }) if need >= 200
    ));
    assert!(matches!(
        decode_response(b"$101\r\n", &small),
        Err(Error::FrameTooLarge { .. })
    ));
    // Counts: each element needs at least 3 (reply) or 6 (request) bytes.
    assert!(matches!(
        decode_response(b"*40\r\n", &small),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(matches!(
        decode_response(b"%20\r\n", &small),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(matches!(
        decode_request(b"*20\r\n", &small),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(matches!(
        decode_response(b"*9223372036854775807\r\n", &L),
        Err(Error::FrameTooLarge { .. })
    ));
    assert_eq!(
        decode_response(b"*30\r\n", &small),
        Ok(Decoded::NeedMore(Need::AtLeast(5 + 90)))
    );
    // Inline lines: max_frame, and Redis's own 64 KiB.
    assert!(matches!(
        decode_request(&[b'a'; 150], &small),
        Err(Error::FrameTooLarge { .. })
    ));
    assert_eq!(
        decode_request(&vec![b'a'; 70_000], &L),
        Err(Error::InlineTooLong { offset: 0 })
    );
    // Depth.
    assert!(rep_with(b"*1\r\n*1\r\n*1\r\n:1\r\n", &small).is_ok());
    assert_eq!(
        decode_response(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", &small),
        Err(Error::TooDeep { offset: 12, max: 3 })
    );
    let deep: Vec<u8> = b"*1\r\n".repeat(100_000);
    assert!(matches!(
        decode_response(&deep, &L),
        Err(Error::TooDeep { .. })
    ));
    let zero = Limits { max_depth: 0, ..L };
    assert!(matches!(
        decode_response(b"*0\r\n", &zero),
        Err(Error::TooDeep { .. })
    ));
    assert!(decode_response(b"+OK\r\n", &zero).is_ok());
}

fn rep_with<'a>(b: &'a [u8], l: &Limits) -> Result<Decoded<Reply<'a>>, Error> {
    decode_response(b, l)
}

#[test]
fn need_more_is_a_sane_lower_bound() {
    let get = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    assert_eq!(
        decode_request(b"", &L),
        Ok(Decoded::NeedMore(Need::AtLeast(1)))
    );
    // After `*2\r\n`: two arguments of at least 6 bytes.
    assert_eq!(
        decode_request(&get[..4], &L),
        Ok(Decoded::NeedMore(Need::AtLeast(16)))
    );
    // Once the last length is known the bound is the exact end.
    assert_eq!(
        decode_request(&get[..17], &L),
        Ok(Decoded::NeedMore(Need::AtLeast(get.len())))
    );
    let big = b"$100000\r\n";
    assert_eq!(
        decode_response(big, &L),
        Ok(Decoded::NeedMore(Need::AtLeast(9 + 100_000 + 2)))
    );
}

#[test]
fn encoders_round_trip() {
    for text in [
        &b"ERR rate limited"[..],
        b"MOVED 1 127.0.0.1:7000",
        b"ERR",
        b"",
    ] {
        let mut out = b"keep".to_vec();
        encode_error(text, &mut out);
        assert_eq!(out.len(), 4 + error_len(text));
        let (r, used) = rep(&out[4..]);
        assert_eq!(used, error_len(text));
        assert_eq!(r.error().unwrap().text, text);
        assert!(!r.error().unwrap().blob);

        let mut out = vec![];
        encode_blob_error(text, &mut out);
        assert_eq!(out.len(), blob_error_len(text));
        let (r, used) = rep(&out);
        assert_eq!(used, out.len());
        assert_eq!(
            (r.error().unwrap().text, r.error().unwrap().blob),
            (text, true)
        );
    }
    // CR/LF cannot end the line early: they become spaces, as redis-server does.
    let mut out = vec![];
    encode_error(b"ERR bad\r\nthing", &mut out);
    assert_eq!(out, b"-ERR bad  thing\r\n");
    let mut out = vec![];
    encode_blob_error(&[b'x'; 1234], &mut out);
    assert!(out.starts_with(b"!1234\r\n"));
    assert_eq!(rep(&out).1, out.len());
}

/// Crashes found by `cargo fuzz run redis` (see fuzz/fuzz_targets/redis.rs), kept as tests.
#[test]
fn fuzz_regressions() {
    // RESP2 null bulk: the bound for `$-1\r` must not assume a data line follows.
    assert_prefixes(b"$-1\r\n", 5, drep);
    // A streamed aggregate may end right after an element: owe only its `.\r\n`.
    let s = b"*?\r\n:1\r\n.\r\n";
    assert_prefixes(s, s.len(), drep);
}
