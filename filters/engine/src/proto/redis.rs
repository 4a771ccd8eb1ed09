//! Redis: requests are paired with replies in order (pipelines included). Pushes (RESP3 `>`)
//! answer no request. Per-command metrics use the codec's closed command table.

use super::{Ctx, DecodeFailure};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind};
use meltemi_codec::redis::{self, catalog};
use meltemi_codec::Decoded;

pub(super) fn labels() -> LabelSet {
    LabelSet {
        family: "command",
        names: (0..=catalog::COUNT)
            .filter_map(catalog::by_index)
            .map(|c| c.as_str().to_string())
            .collect(),
        versions: 0,
        exceptions: false,
        reply_codes: vec!["ok".into(), "error".into()],
    }
}

pub(super) fn request<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match redis::decode_request(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            // An empty request (`*0`, blank inline line) gets no reply from the server.
            if !frame.is_empty() {
                let label = catalog::index(frame.command) as u16;
                let kind = if frame.command == redis::Command::Ping {
                    RequestKind::Event
                } else {
                    RequestKind::Call
                };
                cx.tracker
                    .request(cx.metrics, cx.sink, 0, label, kind, cx.now_ns);
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

pub(super) fn response<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match redis::decode_response(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            if frame.is_push() {
                cx.tracker.server_event(cx.metrics, cx.sink);
            } else {
                let (outcome, code) = if frame.error().is_some() {
                    (Outcome::Error, 1)
                } else {
                    (Outcome::Success, 0)
                };
                cx.tracker
                    .response(cx.metrics, cx.sink, 0, outcome, code, cx.now_ns);
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}
