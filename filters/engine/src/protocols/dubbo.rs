//! Dubbo 2: requests and responses pair by request id. Either peer may send heartbeats, so both
//! directions are decoded as messages: a provider's heartbeat request is a server event, the
//! client's answer to it is not a request. A non-OK status is an error; an OK response carrying
//! an exception is a business exception.

use super::{method_labels, Ctx, Observe};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind, Tracker};
use meltemi_codec::dubbo::{self, Message, RequestPayload, ResponsePayload};
use meltemi_codec::{Decoded, Limits};

/// A label index outside every method label set: no per-method stats.
const NO_METHOD: u16 = u16::MAX;

/// Response status bytes with their own Istio `response_code` (the status in decimal).
const STATUSES: [u8; 11] = [20, 30, 31, 35, 40, 50, 60, 70, 80, 90, 100];
/// Code index of any other status.
const OTHER_STATUS: u16 = STATUSES.len() as u16;
/// Code index of an OK (20) response that carries a business exception.
const EXCEPTION: u16 = OTHER_STATUS + 1;

/// The Istio `response_code` values: the status byte, `other`, and `exception` for status 20
/// with an exception in the body.
fn reply_codes() -> Vec<String> {
    let mut v: Vec<String> = STATUSES.iter().map(|s| s.to_string()).collect();
    v.push("other".into());
    v.push("exception".into());
    v
}

fn status_code(status: u8) -> u16 {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .map_or(OTHER_STATUS, |i| i as u16)
}

/// Dubbo's [`Observe`]: the codec's messages both ways, labelled by configured method.
pub(crate) struct Dubbo;

impl Observe for Dubbo {
    type Conn = ();
    type Request<'a> = Message<'a>;
    type Response<'a> = Message<'a>;
    type Error = dubbo::Error;

    fn labels(methods: &[String]) -> LabelSet {
        method_labels(methods, reply_codes())
    }

    #[inline]
    fn decode_request<'a>(
        _: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
    ) -> Result<Decoded<Message<'a>>, dubbo::Error> {
        if head {
            dubbo::decode_head(buf, limits)
        } else {
            dubbo::decode(buf, limits)
        }
    }

    #[inline]
    fn decode_response<'a>(
        conn: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
        _: &Tracker,
    ) -> Result<Decoded<Message<'a>>, dubbo::Error> {
        Self::decode_request(conn, buf, head, limits)
    }

    fn request<S: MetricSink>(frame: &Message<'_>, cx: &mut Ctx<'_, S>) {
        let Message::Request(r) = frame else { return };
        let id = r.header.request_id as i64;
        let (label, kind) = match &r.payload {
            RequestPayload::Invocation(inv) => (
                cx.methods
                    .label(inv.service.as_str(), inv.method.as_str().unwrap_or("")),
                if r.header.is_two_way() {
                    RequestKind::Call
                } else {
                    RequestKind::Oneway
                },
            ),
            // Not a call of any method: counted as an event, never under `other`.
            RequestPayload::Heartbeat | RequestPayload::Event(_) => (NO_METHOD, RequestKind::Event),
            RequestPayload::Opaque => (cx.methods.label(None, ""), RequestKind::Call),
        };
        cx.tracker
            .request(cx.metrics, cx.sink, id, label, kind, cx.now_ns);
    }

    fn response<S: MetricSink>(frame: Message<'_>, cx: &mut Ctx<'_, S>) {
        match frame {
            Message::Request(_) => cx.tracker.server_event(cx.metrics, cx.sink),
            Message::Response(r) => {
                let status = status_code(r.header.status);
                let (outcome, code) = match r.payload {
                    ResponsePayload::Error(_) => (Outcome::Error, status),
                    ResponsePayload::Result(res) if res.kind.is_exception() => {
                        (Outcome::Exception, EXCEPTION)
                    }
                    _ => (Outcome::Success, status),
                };
                cx.tracker.response(
                    cx.metrics,
                    cx.sink,
                    r.header.request_id as i64,
                    outcome,
                    code,
                    cx.now_ns,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::protocols::TestSink as Sink;
    use crate::{Engine, FilterConfig, Session};

    fn frame(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../codec/testdata/dubbo")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn reply_codes_are_status_bytes() {
        let names = super::reply_codes();
        for (status, want) in [(20, "20"), (70, "70"), (100, "100"), (21, "other")] {
            assert_eq!(names[super::status_code(status) as usize], want);
        }
        assert_eq!(names[super::EXCEPTION as usize], "exception");
    }

    /// Heartbeats both ways (captured from dubbo-ssl-python and the Hessian2 provider) are
    /// events and server events, not calls of a method: `method.other` stays at zero.
    #[test]
    fn heartbeats_are_events_not_other_methods() {
        let e = Engine::new(
            FilterConfig::from_json(r#"{"protocol":"dubbo","stat_prefix":"d","methods":["fail"]}"#)
                .unwrap(),
        );
        let mut sink = Sink::default();
        let mut s = Session::new(&e, &mut sink);
        s.on_downstream(&e, &frame("17_client_heartbeat_request.bin"), 0, &mut sink);
        s.on_upstream(
            &e,
            &frame("18_provider_heartbeat_response.bin"),
            1,
            &mut sink,
        );
        s.on_upstream(
            &e,
            &frame("23_provider_heartbeat_request_from_provider.bin"),
            2,
            &mut sink,
        );
        s.on_downstream(
            &e,
            &frame("24_client_heartbeat_response_from_client.bin"),
            3,
            &mut sink,
        );
        let get = |name: &str| sink.get(&e, &format!("dubbo.d.{name}"));
        assert_eq!(get("request"), 1);
        assert_eq!(get("request_event"), 1);
        assert_eq!(get("response_success"), 1);
        assert_eq!(get("server_event"), 1);
        assert_eq!(get("request_active"), 0);
        for m in ["other", "fail"] {
            for o in ["total", "success", "error"] {
                assert_eq!(get(&format!("method.{m}.{o}")), 0, "method.{m}.{o}");
            }
        }
    }
}
