//! Kafka: requests and responses pair by correlation id. A response's header version depends on
//! its request's api key and version, so both are kept with the request in flight. Produce with
//! `acks = 0` gets no response. Responses whose body starts with an error code count as errors
//! when it is non-zero.

use super::{Ctx, DecodeFailure};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::{Outcome, RequestKind};
use meltemi_codec::kafka::{self, ApiKey};
use meltemi_codec::{Decoded, Need};

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

pub(super) fn labels() -> LabelSet {
    let mut names: Vec<String> = ApiKey::ALL.iter().map(|a| a.as_str().to_string()).collect();
    names.push("unknown".into());
    LabelSet {
        family: "api",
        names,
        versions: MAX_VERSION_LABEL,
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

pub(super) fn request<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    match kafka::decode_request(buf, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
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
            Ok(Decoded::Frame { frame: (), used })
        }
    }
}

pub(super) fn response<S: MetricSink>(
    buf: &[u8],
    cx: &mut Ctx<'_, S>,
) -> Result<Decoded<()>, DecodeFailure> {
    // The correlation id comes first: it tells which request (and so which header version).
    let Some(cid) = kafka::peek_correlation_id(buf) else {
        return Ok(Decoded::NeedMore(Need::AtLeast(8)));
    };
    let known = cx.tracker.aux(i64::from(cid)).map(unpack);
    let hv = known.map_or(0, |(k, v)| kafka::response_header_version(k, v));
    match kafka::decode_response(buf, hv, cx.limits).map_err(DecodeFailure::from)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Frame { frame, used } => {
            let failed = known
                .and_then(|(k, v)| frame.error_code(k, v))
                .is_some_and(|e| e != 0);
            let outcome = if failed {
                Outcome::Error
            } else {
                Outcome::Success
            };
            cx.tracker
                .response(cx.metrics, cx.sink, i64::from(cid), outcome, cx.now_ns);
            Ok(Decoded::Frame { frame: (), used })
        }
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
}
