//! Head mode: a frame too big to hold, decoded from its first bytes.

use crate::{Decoded, Limits, Need};

use super::hessian::Reader;
use super::{
    decode, decode_header, Error, HStr, Header, Invocation, Message, Request, RequestPayload,
    Response, ResponseKind, ResponsePayload, RpcResult, Serialization, HEADER_LEN,
};

/// Head mode: decodes the message whose first bytes are `buf` (the frame may be much longer:
/// `used` is its whole length) from those bytes only. A call's service, version and method,
/// a result's kind and an error status are read; arguments, values and attachments are not
/// (empty views, no attachments). [`Need::AtLeast`] when those fields are cut.
pub fn decode_head<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<Message<'a>>, Error> {
    let total = match decode_header(buf, limits)? {
        Decoded::Frame { .. } => return decode(buf, limits),
        Decoded::NeedMore(Need::Exact(t)) => t,
        Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
    };
    let h = &buf[..HEADER_LEN];
    let header = Header {
        flags: h[2],
        status: h[3],
        request_id: u64::from_be_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]),
        body_len: (total - HEADER_LEN) as u32,
    };
    let body = &buf[HEADER_LEN..];
    let more = Decoded::NeedMore(Need::AtLeast(buf.len() + 1));
    let hessian = header.serialization().is_hessian();
    let message = if header.is_request() {
        let payload = if !hessian {
            RequestPayload::Opaque
        } else if header.is_event() {
            RequestPayload::Event(&[])
        } else {
            let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
            let head = (|| {
                Ok::<_, Error>((
                    r.nullable_string()?,
                    r.string()?,
                    r.nullable_string()?,
                    r.string()?,
                ))
            })();
            match head {
                Ok((dubbo_version, service, service_version, method)) => {
                    RequestPayload::Invocation(Invocation {
                        dubbo_version,
                        service,
                        service_version,
                        method,
                        parameter_types: HStr::Utf8(""),
                        arg_count: 0,
                        arguments: &[],
                        attachments: None,
                    })
                }
                Err(Error::Truncated { .. }) => return Ok(more),
                Err(_) if header.serialization() == Serialization::NativeHessian => {
                    RequestPayload::Opaque
                }
                Err(e) => return Err(e),
            }
        };
        Message::Request(Request {
            header,
            body,
            payload,
        })
    } else {
        let payload = if !hessian {
            ResponsePayload::Opaque
        } else if header.status != 20 {
            ResponsePayload::Error(None)
        } else if header.is_event() {
            ResponsePayload::Event(&[])
        } else {
            let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
            match r.int() {
                Ok(code) => ResponsePayload::Result(RpcResult {
                    kind: ResponseKind::from_code(code),
                    value: &[],
                    attachments: None,
                }),
                Err(Error::Truncated { .. }) => return Ok(more),
                Err(_) if header.serialization() == Serialization::NativeHessian => {
                    ResponsePayload::Opaque
                }
                Err(e) => return Err(e),
            }
        };
        Message::Response(Response {
            header,
            body,
            payload,
        })
    };
    Ok(Decoded::Frame {
        frame: message,
        used: total,
    })
}
