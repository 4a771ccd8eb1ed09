//! Thrift: calls and replies pair by sequence id. Outcomes as Envoy's `thrift_proxy` counts them
//! (`conn_manager.cc`, `ResponseDecoder::transportEnd`): a reply whose result struct holds field
//! 0 is a success, a reply holding an IDL-declared exception (field id >= 1) is an error
//! (`response_error`), an `EXCEPTION` message (TApplicationException) is an exception
//! (`response_exception`).

use super::{Ctx, DecodeFailure};
use crate::metrics::MetricSink;
use crate::observe::{Outcome, RequestKind};
use meltemi_codec::thrift::{self, AppExceptionType, MessageType, ReplyStatus};
use meltemi_codec::Decoded;

/// The Istio `response_code` values: `0` for a normal reply, `error` for a reply carrying a
/// declared exception (`response_error`), `app_<type>` for a TApplicationException of type
/// 0..=10 and `app_other` beyond (`response_exception`).
pub(super) fn reply_codes() -> Vec<String> {
    let mut v = vec!["0".to_string(), "error".to_string()];
    v.extend((0..=10).map(|t| format!("app_{t}")));
    v.push("app_other".into());
    v
}

fn app_code(t: AppExceptionType) -> u16 {
    match t.as_i32() {
        c @ 0..=10 => 2 + c as u16,
        _ => 13,
    }
}

/// A whole frame, or (`head`) the first bytes of one too big to hold (see `framer`).
fn decode<'a>(
    buf: &'a [u8],
    head: bool,
    cx: &Ctx<'_, impl MetricSink>,
) -> Result<Decoded<thrift::Frame<'a>>, DecodeFailure> {
    if head {
        thrift::decode_head(buf, cx.limits)
    } else {
        thrift::decode(buf, cx.limits)
    }
    .map_err(DecodeFailure::from)
}

pub(super) fn request<S: MetricSink>(
    buf: &[u8],
    head: bool,
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match decode(buf, head, cx)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            account_request(&frame, cx);
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

/// Accounts for one decoded client frame (also called by routing, which decodes it once).
pub(crate) fn account_request<S: MetricSink>(frame: &thrift::Frame<'_>, cx: &mut Ctx<'_, S>) {
    // A transformed (zlib) THeader payload has no readable message: forwarded, uncounted.
    let Some(m) = &frame.message else { return };
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

pub(super) fn response<S: MetricSink>(
    buf: &[u8],
    head: bool,
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match decode(buf, head, cx)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            if let Some(m) = frame.message {
                let (outcome, code) = match m.reply {
                    Some(ReplyStatus::Success) | None => (Outcome::Success, 0),
                    Some(ReplyStatus::DeclaredException { .. }) => (Outcome::Error, 1),
                    Some(ReplyStatus::AppException(e)) => (Outcome::Exception, app_code(e.kind)),
                };
                cx.tracker.response(
                    cx.metrics,
                    cx.sink,
                    i64::from(m.seq_id),
                    outcome,
                    code,
                    cx.now_ns,
                );
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_exception_types_have_their_own_codes() {
        let names = reply_codes();
        assert_eq!(
            names[app_code(AppExceptionType::UnknownMethod) as usize],
            "app_1"
        );
        assert_eq!(
            names[app_code(AppExceptionType::UnsupportedClientType) as usize],
            "app_10"
        );
        assert_eq!(
            names[app_code(AppExceptionType::Other(77)) as usize],
            "app_other"
        );
        assert_eq!(names.len(), 14);
    }
}
