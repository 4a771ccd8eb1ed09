//! TARS: requests and responses pair by `iRequestId`; a one-way call (`cPacketType` 1) expects
//! none. Outcomes come from the framework's `iRet` (a TUP response's `STATUS_RESULT_CODE`): 0
//! is a success, anything else an error, and the code is the Istio `response_code` (`-3` no
//! such function, `-9` overload, ...). The framework's keep-alive `tars_ping` is an event, not
//! a call of a method. Labels: the configured `servant:function` or `function` names.

use super::{method_labels, Ctx, Observe};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind, Tracker};
use meltemi_codec::tars::{self, Request, Response};
use meltemi_codec::{Decoded, Limits};

/// A label index outside every method label set: no per-method stats.
const NO_METHOD: u16 = u16::MAX;

/// The framework's return codes with their own Istio `response_code` (TarsCpp `BaseF.tars`).
const CODES: [i32; 15] = [
    0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -99,
];
/// Code index of any other `iRet`.
const OTHER_CODE: u16 = CODES.len() as u16;

/// The Istio `response_code` values: the codes in decimal, then `other`.
fn reply_codes() -> Vec<String> {
    let mut v: Vec<String> = CODES.iter().map(|c| c.to_string()).collect();
    v.push("other".into());
    v
}

fn code_index(ret: i32) -> u16 {
    CODES
        .iter()
        .position(|c| *c == ret)
        .map_or(OTHER_CODE, |i| i as u16)
}

/// The framework's keep-alive function (tars4nodejs and TarsCpp send it on idle connections).
const PING: &[u8] = b"tars_ping";

/// TARS's [`Observe`]: `RequestPacket`s one way, `ResponsePacket`s (or TUP's answers) the other.
pub(crate) struct Tars;

impl Observe for Tars {
    type Conn = ();
    type Request<'a> = Request<'a>;
    type Response<'a> = Response<'a>;
    type Error = tars::Error;

    fn labels(methods: &[String]) -> LabelSet {
        method_labels(methods, reply_codes())
    }

    #[inline]
    fn decode_request<'a>(
        _: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
    ) -> Result<Decoded<Request<'a>>, tars::Error> {
        if head {
            tars::decode_request_head(buf, limits)
        } else {
            tars::decode_request(buf, limits)
        }
    }

    #[inline]
    fn decode_response<'a>(
        _: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
        _: &Tracker,
    ) -> Result<Decoded<Response<'a>>, tars::Error> {
        if head {
            tars::decode_response_head(buf, limits)
        } else {
            tars::decode_response(buf, limits)
        }
    }

    fn request<S: MetricSink>(r: &Request<'_>, cx: &mut Ctx<'_, S>) {
        let (label, kind) = if r.function == PING {
            (NO_METHOD, RequestKind::Event)
        } else {
            let label = cx
                .methods
                .label(r.servant_name(), r.function_name().unwrap_or(""));
            let kind = if r.is_oneway() {
                RequestKind::Oneway
            } else {
                RequestKind::Call
            };
            (label, kind)
        };
        cx.tracker.request(
            cx.metrics,
            cx.sink,
            i64::from(r.request_id),
            label,
            kind,
            cx.now_ns,
        );
    }

    fn response<S: MetricSink>(r: Response<'_>, cx: &mut Ctx<'_, S>) {
        // A TUP answer's code lies past the head of a frame too big to hold: counted a success.
        let ret = r.ret.unwrap_or(0);
        let outcome = if ret == 0 {
            Outcome::Success
        } else {
            Outcome::Error
        };
        cx.tracker.response(
            cx.metrics,
            cx.sink,
            i64::from(r.request_id),
            outcome,
            code_index(ret),
            cx.now_ns,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::protocols::TestSink as Sink;
    use crate::{Engine, FilterConfig, Session};

    fn stream(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../codec/testdata/tars")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn reply_codes_are_the_framework_codes() {
        let names = super::reply_codes();
        for (ret, want) in [(0, "0"), (-3, "-3"), (-9, "-9"), (-99, "-99"), (7, "other")] {
            assert_eq!(names[super::code_index(ret) as usize], want);
        }
    }

    /// The captured streams (TARS, TUP 2, TUP 3) through a session, fed in small chunks and
    /// with a held-bytes cap below the 20 KB echo (so it is decoded from its head): per
    /// function counts, outcomes by iRet, the one-way call, no decode error.
    #[test]
    fn captured_streams_count_per_function_and_outcome() {
        for case in ["tars", "tup2", "tup3"] {
            for (chunk, held) in [(usize::MAX, 0), (7, 0), (1000, 4096)] {
                let mut json = r#"{"protocol":"tars","stat_prefix":"t","methods":["Meltemi.CalcServer.CalcObj:add","echo","fail","log"]"#.to_string();
                if held > 0 {
                    json.push_str(&format!(r#","max_held_bytes":{held}"#));
                }
                json.push('}');
                let e = Engine::new(FilterConfig::from_json(&json).unwrap());
                let mut sink = Sink::default();
                let mut s = Session::new(&e, &mut sink);
                let c2s = stream(&format!("{case}.c2s.bin"));
                let s2c = stream(&format!("{case}.s2c.bin"));
                for (i, c) in c2s.chunks(chunk.min(c2s.len())).enumerate() {
                    s.on_downstream(&e, c, i as u64, &mut sink);
                }
                for (i, c) in s2c.chunks(chunk.min(s2c.len())).enumerate() {
                    s.on_upstream(&e, c, 100 + i as u64, &mut sink);
                }
                let get = |name: &str| sink.get(&e, &format!("tars.t.{name}"));
                let at = format!("{case} chunk {chunk} held {held}");
                assert_eq!(get("request"), 7, "{at}");
                assert_eq!(get("request_oneway"), 1, "{at}");
                assert_eq!(get("response_success"), 4, "{at}");
                assert_eq!(get("response_error"), 2, "{at}");
                assert_eq!(get("request_active"), 0, "{at}");
                assert_eq!(get("request_decoding_error"), 0, "{at}");
                assert_eq!(get("response_decoding_error"), 0, "{at}");
                for (m, total, ok, err) in [
                    ("Meltemi_CalcServer_CalcObj:add", 2, 2, 0),
                    ("echo", 2, 2, 0),
                    ("fail", 1, 0, 1),
                    ("log", 1, 0, 0),
                    ("other", 1, 0, 1),
                ] {
                    assert_eq!(get(&format!("method.{m}.total")), total, "{at} {m}");
                    assert_eq!(get(&format!("method.{m}.success")), ok, "{at} {m}");
                    assert_eq!(get(&format!("method.{m}.error")), err, "{at} {m}");
                }
            }
        }
    }
}
