//! Dubbo 2: requests and responses pair by request id. Either peer may send heartbeats, so both
//! directions are decoded as messages: a provider's heartbeat request is a server event, the
//! client's answer to it is not a request. A non-OK status is an error; an OK response carrying
//! an exception is a business exception.

use super::{Ctx, DecodeFailure};
use crate::metrics::MetricSink;
use crate::observe::{Outcome, RequestKind};
use meltemi_codec::dubbo::{self, Message, RequestPayload, ResponsePayload};
use meltemi_codec::Decoded;

pub(super) fn request<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match dubbo::decode(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            if let Message::Request(r) = frame {
                let id = r.header.request_id as i64;
                let (label, kind) = match r.payload {
                    RequestPayload::Invocation(inv) => (
                        cx.methods
                            .label(inv.service.as_str(), inv.method.as_str().unwrap_or("")),
                        if r.header.is_two_way() {
                            RequestKind::Call
                        } else {
                            RequestKind::Oneway
                        },
                    ),
                    RequestPayload::Heartbeat | RequestPayload::Event(_) => {
                        (cx.methods.label(None, ""), RequestKind::Event)
                    }
                    RequestPayload::Opaque => (cx.methods.label(None, ""), RequestKind::Call),
                };
                cx.tracker
                    .request(cx.metrics, cx.sink, id, label, kind, cx.now_ns);
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

pub(super) fn response<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match dubbo::decode(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            match frame {
                Message::Request(_) => cx.tracker.server_event(cx.metrics, cx.sink),
                Message::Response(r) => {
                    let outcome = match r.payload {
                        ResponsePayload::Error(_) => Outcome::Error,
                        ResponsePayload::Result(res) if res.kind.is_exception() => {
                            Outcome::Exception
                        }
                        _ => Outcome::Success,
                    };
                    cx.tracker.response(
                        cx.metrics,
                        cx.sink,
                        r.header.request_id as i64,
                        outcome,
                        cx.now_ns,
                    );
                }
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}
