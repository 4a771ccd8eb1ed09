//! Redis: requests are paired with replies in order (pipelines included). Pushes (RESP3 `>`)
//! answer no request. Per-command metrics use the codec's closed command table.

use super::{Ctx, DecodeFailure, Observe};
use crate::framer::Step;
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind, Tracker};
use meltemi_codec::redis::{self, catalog, Skipper};
use meltemi_codec::{Decoded, Limits};

/// The walks of a request and of a reply too big to hold (head mode), boxed: most connections
/// never need one.
#[derive(Debug, Default)]
pub(crate) struct Walks {
    down: Option<Box<Skipper>>,
    up: Option<Box<Skipper>>,
}

impl Walks {
    fn of(&mut self, request: bool) -> &mut Option<Box<Skipper>> {
        if request {
            &mut self.down
        } else {
            &mut self.up
        }
    }
}

/// Redis's [`Observe`]: in-order pairing, labelled by the codec's command table; head mode walks
/// a value with a [`Skipper`] (RESP carries no total length).
pub(crate) struct Redis;

impl Observe for Redis {
    type Conn = Walks;
    type Request<'a> = redis::Request<'a>;
    type Response<'a> = redis::Reply<'a>;
    type Error = redis::Error;
    const ORDERED: bool = true;

    fn labels(_methods: &[String]) -> LabelSet {
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

    /// Whole frames only: a head is walked ([`Observe::head`]).
    #[inline]
    fn decode_request<'a>(
        _: &mut Walks,
        buf: &'a [u8],
        _head: bool,
        limits: &Limits,
    ) -> Result<Decoded<redis::Request<'a>>, redis::Error> {
        redis::decode_request(buf, limits)
    }

    #[inline]
    fn decode_response<'a>(
        _: &mut Walks,
        buf: &'a [u8],
        _head: bool,
        limits: &Limits,
        _: &Tracker,
    ) -> Result<Decoded<redis::Reply<'a>>, redis::Error> {
        redis::decode_response(buf, limits)
    }

    fn request<S: MetricSink>(frame: &redis::Request<'_>, cx: &mut Ctx<'_, S>) {
        // An empty request (`*0`, blank inline line) gets no reply from the server.
        if !frame.is_empty() {
            account_request(frame.command, cx);
        }
    }

    fn response<S: MetricSink>(frame: redis::Reply<'_>, cx: &mut Ctx<'_, S>) {
        account_reply(frame.is_push(), frame.error().is_some(), cx);
    }

    fn head<S: MetricSink>(
        conn: &mut Walks,
        buf: &[u8],
        request: bool,
        cx: &mut Ctx<'_, S>,
    ) -> Result<Step, DecodeFailure> {
        head(conn.of(request), buf, request, cx)
    }

    fn stream(
        conn: &mut Walks,
        data: &[u8],
        request: bool,
    ) -> Result<Option<usize>, DecodeFailure> {
        stream(conn.of(request), data)
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
fn head<S: MetricSink>(
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
fn stream(walk: &mut Option<Box<Skipper>>, data: &[u8]) -> Result<Option<usize>, DecodeFailure> {
    let Some(s) = walk.as_mut() else {
        return Ok(Some(0));
    };
    let end = s.feed(data).map_err(DecodeFailure::from)?;
    if end.is_some() {
        *walk = None;
    }
    Ok(end)
}
