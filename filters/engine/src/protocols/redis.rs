//! Redis: requests are paired with replies in order (pipelines included). Pushes (RESP3 `>`)
//! answer no request. Per-command metrics use the codec's closed command table.

use super::{Ctx, DecodeFailure};
use crate::framer::Step;
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind};
use meltemi_codec::redis::{self, catalog, Skipper};
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
                account_request(frame.command, cx);
            }
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

fn account_request<S: MetricSink>(command: redis::Command, cx: &mut Ctx<'_, S>) {
    let label = catalog::index(command) as u16;
    let kind = if command == redis::Command::Ping {
        RequestKind::Event
    } else {
        RequestKind::Call
    };
    cx.tracker
        .request(cx.metrics, cx.sink, 0, label, kind, cx.now_ns);
}

pub(super) fn response<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match redis::decode_response(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            account_reply(frame.is_push(), frame.error().is_some(), cx);
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

fn account_reply<S: MetricSink>(push: bool, error: bool, cx: &mut Ctx<'_, S>) {
    if push {
        cx.tracker.server_event(cx.metrics, cx.sink);
    } else {
        let (outcome, code) = if error {
            (Outcome::Error, 1)
        } else {
            (Outcome::Success, 0)
        };
        cx.tracker
            .response(cx.metrics, cx.sink, 0, outcome, code, cx.now_ns);
    }
}

/// Head mode (a request or reply too big to hold, see `framer`): accounts for it from its first
/// bytes (the command; the reply's type byte), then walks it with a [`Skipper`] that takes
/// every later byte until it ends.
pub(super) fn head<S: MetricSink>(
    walk: &mut Option<Box<Skipper>>,
    buf: &[u8],
    request: bool,
    cx: &mut Ctx<'_, S>,
) -> Result<Step, DecodeFailure> {
    let mut skipper = if request {
        match redis::request_head(buf).map_err(DecodeFailure::from)? {
            Decoded::NeedMore(n) => return Ok(Step::Need(n)),
            Decoded::Frame { frame, .. } => account_request(frame, cx),
        }
        Skipper::request(buf.first().copied().unwrap_or(b'*'), cx.limits)
    } else {
        match redis::reply_head(buf) {
            Decoded::NeedMore(n) => return Ok(Step::Need(n)),
            Decoded::Frame { frame, .. } => {
                account_reply(frame == b'>', matches!(frame, b'-' | b'!'), cx)
            }
        }
        Skipper::reply(cx.limits)
    };
    match skipper.feed(buf).map_err(DecodeFailure::from)? {
        Some(used) => Ok(Step::Frame(used)),
        None => {
            *walk = Some(Box::new(skipper));
            Ok(Step::Stream)
        }
    }
}

/// Head mode: the next bytes of the value [`head`] started walking.
pub(super) fn stream(
    walk: &mut Option<Box<Skipper>>,
    data: &[u8],
) -> Result<Option<usize>, DecodeFailure> {
    let Some(s) = walk.as_mut() else {
        return Ok(Some(0));
    };
    let end = s.feed(data).map_err(DecodeFailure::from)?;
    if end.is_some() {
        *walk = None;
    }
    Ok(end)
}
