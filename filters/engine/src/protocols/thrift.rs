//! Thrift: calls and replies pair by sequence id. Outcomes as Envoy's `thrift_proxy` counts them
//! (`conn_manager.cc`, `ResponseDecoder::transportEnd`): a reply whose result struct holds field
//! 0 is a success, a reply holding an IDL-declared exception (field id >= 1) is an error
//! (`response_error`), an `EXCEPTION` message (TApplicationException) is an exception
//! (`response_exception`).

use super::{method_labels, Ctx, Observe};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind, Tracker};
use meltemi_codec::thrift::{self, AppExceptionType, MessageType, ReplyStatus};
use meltemi_codec::{Decoded, Limits};

/// The Istio `response_code` values: `0` for a normal reply, `error` for a reply carrying a
/// declared exception (`response_error`), `app_<type>` for a TApplicationException of type
/// 0..=10 and `app_other` beyond (`response_exception`).
fn reply_codes() -> Vec<String> {
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

/// Thrift's [`Observe`]: the codec's frames both ways, labelled by configured method.
pub(crate) struct Thrift;

impl Observe for Thrift {
    type Conn = ();
    type Request<'a> = thrift::Frame<'a>;
    type Response<'a> = thrift::Frame<'a>;
    type Error = thrift::Error;

    fn labels(methods: &[String]) -> LabelSet {
        method_labels(methods, reply_codes())
    }

    #[inline]
    fn decode_request<'a>(
        _: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
    ) -> Result<Decoded<thrift::Frame<'a>>, thrift::Error> {
        if head {
            thrift::decode_head(buf, limits)
        } else {
            thrift::decode(buf, limits)
        }
    }

    #[inline]
    fn decode_response<'a>(
        conn: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
        _: &Tracker,
    ) -> Result<Decoded<thrift::Frame<'a>>, thrift::Error> {
        Self::decode_request(conn, buf, head, limits)
    }

    fn request<S: MetricSink>(frame: &thrift::Frame<'_>, cx: &mut Ctx<'_, S>) {
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

    fn response<S: MetricSink>(frame: thrift::Frame<'_>, cx: &mut Ctx<'_, S>) {
        let Some(m) = frame.message else { return };
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
