//! Thrift: calls and replies pair by sequence id. A reply whose result struct holds a declared
//! exception is a business exception; an `EXCEPTION` message (TApplicationException) is an error.

use super::{Ctx, DecodeFailure};
use crate::metrics::MetricSink;
use crate::observe::{Outcome, RequestKind};
use meltemi_codec::thrift::{self, MessageType, ReplyStatus};
use meltemi_codec::Decoded;

pub(super) fn request<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match thrift::decode_request(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            // A transformed (zlib) THeader payload has no readable message: forwarded, uncounted.
            if let Some(m) = frame.message {
                let kind = match m.kind {
                    MessageType::Oneway => RequestKind::Oneway,
                    _ => RequestKind::Call,
                };
                let label = cx.methods.label(m.service, m.method);
                cx.tracker.request(
                    cx.metrics,
                    cx.sink,
                    i64::from(m.seq_id),
                    label,
                    kind,
                    cx.now_ns,
                );
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

pub(super) fn response<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match thrift::decode_response(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            if let Some(m) = frame.message {
                let outcome = match m.reply {
                    Some(ReplyStatus::Success) | None => Outcome::Success,
                    Some(ReplyStatus::DeclaredException { .. }) => Outcome::Exception,
                    Some(ReplyStatus::AppException(_)) => Outcome::Error,
                };
                cx.tracker
                    .response(cx.metrics, cx.sink, i64::from(m.seq_id), outcome, cx.now_ns);
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}
