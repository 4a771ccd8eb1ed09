//! The Hessian2 bodies of requests (`DubboCodec.encodeRequestData`) and responses
//! (`encodeResponseData`), read as far as routing, policy and metrics need.

use crate::Limits;

use super::hessian::Reader;
use super::{
    Error, HStr, Header, Invocation, Request, RequestPayload, Response, ResponseKind,
    ResponsePayload, RpcResult, HEADER_LEN,
};

fn event_payload<'a>(body: &'a [u8], limits: &Limits) -> Result<Option<&'a [u8]>, Error> {
    // A heartbeat's event data is null: body `N` (or, leniently, empty).
    if body.is_empty() || body == b"N" {
        return Ok(None);
    }
    let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
    r.skip_value(0)?;
    Ok(Some(&body[..r.pos]))
}

pub(super) fn request_body<'a>(
    header: Header,
    body: &'a [u8],
    limits: &Limits,
) -> Result<Request<'a>, Error> {
    let payload = if !header.serialization().is_hessian() {
        RequestPayload::Opaque
    } else if header.is_event() {
        match event_payload(body, limits)? {
            None => RequestPayload::Heartbeat,
            Some(v) => RequestPayload::Event(v),
        }
    } else {
        RequestPayload::Invocation(invocation(body, limits)?)
    };
    Ok(Request {
        header,
        body,
        payload,
    })
}

fn invocation<'a>(body: &'a [u8], limits: &Limits) -> Result<Invocation<'a>, Error> {
    let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
    let dubbo_version = r.nullable_string()?;
    let service = r.string()?;
    let service_version = r.nullable_string()?;
    let method = r.string()?;
    // Some encoders stop after the method name (no descriptor, arguments or attachments).
    if r.at_end() {
        return Ok(Invocation {
            dubbo_version,
            service,
            service_version,
            method,
            parameter_types: HStr::Utf8(""),
            arg_count: 0,
            arguments: &[],
            attachments: None,
        });
    }
    let types_at = r.offset();
    let mut counter = DescriptorCounter::default();
    let parameter_types = r.string_with(|chunk| counter.feed(chunk))?;
    let arg_count = counter
        .finish()
        .ok_or(Error::BadParameterTypes { offset: types_at })?;
    if arg_count as usize > r.remaining() {
        return Err(Error::BadCount { offset: types_at });
    }
    let args_start = r.pos;
    for _ in 0..arg_count {
        r.skip_value(0)?;
    }
    let arguments = &body[args_start..r.pos];
    let attachments = r.attachments()?;
    Ok(Invocation {
        dubbo_version,
        service,
        service_version,
        method,
        parameter_types,
        arg_count,
        arguments,
        attachments,
    })
}

pub(super) fn response_body<'a>(
    header: Header,
    body: &'a [u8],
    limits: &Limits,
) -> Result<Response<'a>, Error> {
    let payload = if !header.serialization().is_hessian() {
        ResponsePayload::Opaque
    } else if header.status != 20 {
        if body.is_empty() {
            ResponsePayload::Error(None)
        } else {
            let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
            ResponsePayload::Error(r.nullable_string()?)
        }
    } else if header.is_event() {
        match event_payload(body, limits)? {
            None => ResponsePayload::Heartbeat,
            Some(v) => ResponsePayload::Event(v),
        }
    } else {
        let mut r = Reader::new(body, HEADER_LEN, limits.max_depth);
        let kind = ResponseKind::from_code(r.int()?);
        let start = r.pos;
        let (value, attachments) = match kind {
            ResponseKind::Unknown(_) => (&body[start..], None),
            k => {
                if !matches!(
                    k,
                    ResponseKind::NullValue | ResponseKind::NullValueWithAttachments
                ) {
                    r.skip_value(0)?;
                }
                let value = &body[start..r.pos];
                let att = if k.has_attachments() {
                    r.attachments()?
                } else {
                    None
                };
                (value, att)
            }
        };
        ResponsePayload::Result(RpcResult {
            kind,
            value,
            attachments,
        })
    };
    Ok(Response {
        header,
        body,
        payload,
    })
}

/// Counts JVM field descriptors (`Z B C S I J F D V`, `Lname;`, `[` prefixes) across chunks.
#[derive(Default)]
struct DescriptorCounter {
    count: u32,
    in_class: bool,
    array: bool,
    bad: bool,
}

impl DescriptorCounter {
    #[inline]
    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.in_class {
                if b == b';' {
                    self.in_class = false;
                    self.array = false;
                    self.count = self.count.saturating_add(1);
                }
                continue;
            }
            match b {
                b'[' => self.array = true,
                b'L' => self.in_class = true,
                b'Z' | b'B' | b'C' | b'S' | b'I' | b'J' | b'F' | b'D' | b'V' => {
                    self.array = false;
                    self.count = self.count.saturating_add(1);
                }
                _ => self.bad = true,
            }
        }
    }
    fn finish(&self) -> Option<u32> {
        (!self.bad && !self.in_class && !self.array).then_some(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_counts() {
        let count = |s: &str| {
            let mut c = DescriptorCounter::default();
            c.feed(s.as_bytes());
            c.finish()
        };
        assert_eq!(count(""), Some(0));
        assert_eq!(count("Ljava/lang/String;I[J[[Lx;Z"), Some(5));
        assert_eq!(count("Ljava/lang/String"), None);
        assert_eq!(count("["), None);
        assert_eq!(count("Q"), None);
    }
}
