//! Raw TCP: no decoding. The session never feeds a raw connection's bytes to the framer
//! ([`super::Wire::decodes`]); this is the table's entry for it (no labels, by-id pairing with
//! nothing to pair).

use super::{Ctx, Observe};
use crate::metrics::{LabelSet, MetricSink};
use crate::observe::Tracker;
use meltemi_codec::{Decoded, Limits};
use std::convert::Infallible;

/// Bytes only.
pub(crate) struct Raw;

impl Observe for Raw {
    type Conn = ();
    type Request<'a> = ();
    type Response<'a> = ();
    type Error = Infallible;
    const ORDERED: bool = true;

    fn labels(_methods: &[String]) -> LabelSet {
        LabelSet {
            family: "method",
            names: Vec::new(),
            versions: 0,
            exceptions: false,
            reply_codes: Vec::new(),
        }
    }

    fn decode_request(
        _: &mut (),
        buf: &[u8],
        _head: bool,
        _: &Limits,
    ) -> Result<Decoded<()>, Infallible> {
        Ok(Decoded::Frame {
            frame: (),
            used: buf.len(),
        })
    }

    fn decode_response(
        conn: &mut (),
        buf: &[u8],
        head: bool,
        limits: &Limits,
        _: &Tracker,
    ) -> Result<Decoded<()>, Infallible> {
        Self::decode_request(conn, buf, head, limits)
    }

    fn request<S: MetricSink>(_: &(), _: &mut Ctx<'_, S>) {}

    fn response<S: MetricSink>(_: (), _: &mut Ctx<'_, S>) {}
}
