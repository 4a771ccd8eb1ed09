//! Kafka: requests and responses pair by correlation id. A response's header version depends on
//! its request's api key and version, so both are kept with the request in flight. Produce with
//! `acks = 0` gets no response. Responses whose body starts with an error code count as errors
//! when it is non-zero.

use super::{Ctx, Observe};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind, Tracker};
use meltemi_codec::kafka::{self, ApiKey};
use meltemi_codec::{Decoded, Limits, Need};

/// Api versions counted per api key: `0..MAX_VERSION_LABEL` (Fetch, the highest, is at 17 in
/// current Kafka; later versions are still counted per api key).
const MAX_VERSION_LABEL: u16 = 20;

/// Label index of an api key: its position in [`ApiKey::ALL`], or `ALL.len()` for unknown keys.
fn label(k: ApiKey) -> u16 {
    ApiKey::ALL
        .iter()
        .position(|a| *a == k)
        .unwrap_or(ApiKey::ALL.len()) as u16
}

/// Error codes with their own Istio `response_code` (Kafka's number): -1..=40 and a few common
/// later ones (SASL_AUTHENTICATION_FAILED 58, LISTENER_NOT_FOUND 72, MEMBER_ID_REQUIRED 79,
/// FENCED_INSTANCE_ID 82). The set is closed so the stats stay bounded.
const EXTRA_CODES: [i16; 4] = [58, 72, 79, 82];
const LOW_CODES: i16 = 42; // -1..=40
/// Code index of any other error code.
const OTHER_CODE: u16 = LOW_CODES as u16 + EXTRA_CODES.len() as u16;
/// Code index of a response whose top-level error code this filter does not read.
const UNKNOWN_CODE: u16 = OTHER_CODE + 1;

fn reply_codes() -> Vec<String> {
    let mut v: Vec<String> = (-1..=40)
        .chain(EXTRA_CODES)
        .map(|c: i16| c.to_string())
        .collect();
    v.push("other".into());
    v.push("unknown".into());
    v
}

fn code_index(code: Option<i16>) -> u16 {
    match code {
        None => UNKNOWN_CODE,
        Some(c @ -1..=40) => (c + 1) as u16,
        Some(c) => EXTRA_CODES
            .iter()
            .position(|e| *e == c)
            .map_or(OTHER_CODE, |i| LOW_CODES as u16 + i as u16),
    }
}

fn pack(k: ApiKey, v: i16) -> u32 {
    (u32::from(k.code() as u16) << 16) | u32::from(v as u16)
}

fn unpack(aux: u32) -> (ApiKey, i16) {
    (
        ApiKey::from_code((aux >> 16) as u16 as i16),
        (aux & 0xffff) as u16 as i16,
    )
}

/// A response, with the request it answers as the tracker kept it (api key and version).
pub(crate) struct Answer<'a> {
    correlation_id: i32,
    request: Option<(ApiKey, i16)>,
    frame: kafka::Response<'a>,
}

/// Kafka's [`Observe`]: labelled by api key, counted per api version too.
pub(crate) struct Kafka;

impl Observe for Kafka {
    type Conn = ();
    type Request<'a> = kafka::Request<'a>;
    type Response<'a> = Answer<'a>;
    type Error = kafka::Error;

    fn labels(_methods: &[String]) -> LabelSet {
        let mut names: Vec<String> = ApiKey::ALL.iter().map(|a| a.as_str().to_string()).collect();
        names.push("unknown".into());
        LabelSet {
            family: "api",
            names,
            versions: MAX_VERSION_LABEL,
            exceptions: false,
            reply_codes: reply_codes(),
        }
    }

    #[inline]
    fn decode_request<'a>(
        _: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
    ) -> Result<Decoded<kafka::Request<'a>>, kafka::Error> {
        if head {
            kafka::decode_request_head(buf, limits)
        } else {
            kafka::decode_request(buf, limits)
        }
    }

    #[inline]
    fn decode_response<'a>(
        _: &mut (),
        buf: &'a [u8],
        head: bool,
        limits: &Limits,
        tracker: &Tracker,
    ) -> Result<Decoded<Answer<'a>>, kafka::Error> {
        // The correlation id comes first: it tells which request (and so which header version).
        let Some(cid) = kafka::peek_correlation_id(buf) else {
            return Ok(Decoded::NeedMore(Need::AtLeast(8)));
        };
        let known = tracker.aux(i64::from(cid)).map(unpack);
        let hv = known.map_or(0, |(k, v)| kafka::response_header_version(k, v));
        let decoded = if head {
            kafka::decode_response_head(buf, hv, limits)
        } else {
            kafka::decode_response(buf, hv, limits)
        }?;
        Ok(match decoded {
            Decoded::NeedMore(n) => Decoded::NeedMore(n),
            Decoded::Frame { frame, used } => Decoded::Frame {
                frame: Answer {
                    correlation_id: cid,
                    request: known,
                    frame,
                },
                used,
            },
        })
    }

    fn request<S: MetricSink>(frame: &kafka::Request<'_>, cx: &mut Ctx<'_, S>) {
        let h = frame.header;
        let kind = if frame.expects_response() {
            RequestKind::Call
        } else {
            RequestKind::Oneway
        };
        cx.tracker.request_aux(
            cx.metrics,
            cx.sink,
            i64::from(h.correlation_id),
            label(h.api_key),
            kind,
            pack(h.api_key, h.api_version),
            cx.now_ns,
        );
        if let Some(id) = cx.metrics.version_counter(label(h.api_key), h.api_version) {
            cx.sink.inc(id, 1);
        }
    }

    fn response<S: MetricSink>(a: Answer<'_>, cx: &mut Ctx<'_, S>) {
        let error_code = a.request.and_then(|(k, v)| a.frame.error_code(k, v));
        let failed = error_code.is_some_and(|e| e != 0);
        let outcome = if failed {
            Outcome::Error
        } else {
            Outcome::Success
        };
        cx.tracker.response(
            cx.metrics,
            cx.sink,
            i64::from(a.correlation_id),
            outcome,
            code_index(error_code),
            cx.now_ns,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aux_round_trips() {
        for k in ApiKey::ALL {
            for v in [0i16, 3, 17] {
                assert_eq!(unpack(pack(*k, v)), (*k, v));
            }
        }
    }

    #[test]
    fn reply_codes_index_their_own_names() {
        let names = reply_codes();
        for c in (-1..=40).chain(EXTRA_CODES) {
            assert_eq!(names[code_index(Some(c)) as usize], c.to_string());
        }
        assert_eq!(names[code_index(Some(41)) as usize], "other");
        assert_eq!(names[code_index(Some(-2)) as usize], "other");
        assert_eq!(names[code_index(None) as usize], "unknown");
        assert_eq!(names.len(), UNKNOWN_CODE as usize + 1);
    }
}
