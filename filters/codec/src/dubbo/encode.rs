//! Encoders for locally generated replies.

use super::{Status, HEADER_LEN, HESSIAN2, MAGIC};

/// Whether a client speaking `dubbo_version` reads the `*_WITH_ATTACHMENTS` response kinds
/// (Apache Dubbo `Version.isSupportResponseAttachment`: protocol versions 2.0.2 to 2.0.99).
pub fn supports_response_attachments(dubbo_version: &str) -> bool {
    let mut it = dubbo_version.split('.');
    let (Some(a), Some(b), Some(c)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let c: u32 = match c.parse() {
        Ok(c) => c,
        Err(_) => return false,
    };
    a == "2" && b == "0" && (2..=99).contains(&c)
}

/// Hessian chunk size in UTF-16 units, as Java's `Hessian2Output` uses.
const CHUNK: usize = 0x8000;

/// Bytes of a character as Java's Hessian writes it: supplementary characters become two
/// 3-byte surrogates (CESU-8), so Java peers can read them.
#[inline]
fn java_utf8_len(c: char) -> (usize, usize) {
    match c as u32 {
        0..=0x7f => (1, 1),
        0x80..=0x7ff => (2, 1),
        0x800..=0xffff => (3, 1),
        _ => (6, 2),
    }
}

/// Length of `s` encoded as a Hessian2 string.
pub fn hessian_string_len(s: &str) -> usize {
    let mut total = 0;
    let mut units = 0;
    let mut chunk_units = 0;
    for c in s.chars() {
        let (b, u) = java_utf8_len(c);
        if chunk_units + u > CHUNK {
            total += 3; // `R` b1 b0
            chunk_units = 0;
        }
        chunk_units += u;
        units += u;
        total += b;
    }
    let _ = units;
    total
        + match chunk_units {
            0..=31 => 1,
            32..=1023 => 2,
            _ => 3,
        }
}

/// Writes `s` as a Hessian2 string (chunked above 32768 UTF-16 units, as Java does).
pub fn write_hessian_string(out: &mut Vec<u8>, s: &str) {
    // Find chunk boundaries first: a chunk's header carries its unit count.
    let mut rest = s;
    loop {
        let mut units = 0;
        let mut split = rest.len();
        for (i, c) in rest.char_indices() {
            let u = java_utf8_len(c).1;
            if units + u > CHUNK {
                split = i;
                break;
            }
            units += u;
        }
        let (chunk, tail) = rest.split_at(split);
        let last = tail.is_empty();
        if !last {
            out.push(b'R');
            out.extend_from_slice(&(units as u16).to_be_bytes());
        } else if units <= 31 {
            out.push(units as u8);
        } else if units <= 1023 {
            out.push(0x30 + (units >> 8) as u8);
            out.push(units as u8);
        } else {
            out.push(b'S');
            out.extend_from_slice(&(units as u16).to_be_bytes());
        }
        for c in chunk.chars() {
            let v = c as u32;
            if v > 0xffff {
                let v = v - 0x1_0000;
                for sur in [0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff)] {
                    out.push(0xe0 | (sur >> 12) as u8);
                    out.push(0x80 | ((sur >> 6) & 0x3f) as u8);
                    out.push(0x80 | (sur & 0x3f) as u8);
                }
            } else {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
        if last {
            return;
        }
        rest = tail;
    }
}

fn write_header(out: &mut Vec<u8>, flags: u8, status: u8, request_id: u64, body_len: usize) {
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(flags);
    out.push(status);
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
}

/// Length of the frame [`encode_error_response`] writes.
pub fn error_response_len(message: &str) -> usize {
    HEADER_LEN + hessian_string_len(message)
}

/// Writes a Dubbo error response (Hessian2): `status` (anything but OK, e.g.
/// [`Status::ServiceError`], [`Status::ServerThreadpoolExhausted`], [`Status::ServerTimeout`]) and
/// the message string as the body, as `ExchangeCodec.encodeResponse` does for a failed request.
pub fn encode_error_response(out: &mut Vec<u8>, request_id: u64, status: Status, message: &str) {
    let len = error_response_len(message);
    out.reserve(len);
    write_header(out, HESSIAN2, status.code(), request_id, len - HEADER_LEN);
    write_hessian_string(out, message);
}

/// What an exception response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionBody<'s> {
    /// A `Throwable` object of the given class (e.g. `java.lang.RuntimeException`) with fields
    /// `detailMessage`, `cause` (null), `stackTrace` (empty) and `suppressedExceptions` (null).
    Object {
        /// Fully qualified Java class name.
        class: &'s str,
        /// The message.
        message: &'s str,
    },
    /// A plain string (what Envoy's dubbo_proxy writes for its local exceptions).
    String(&'s str),
}

const THROWABLE_FIELDS: [&str; 4] = [
    "detailMessage",
    "cause",
    "stackTrace",
    "suppressedExceptions",
];
const STACK_TRACE_TYPE: &str = "[java.lang.StackTraceElement";

fn exception_body_len(body: &ExceptionBody<'_>, with_attachments: bool) -> usize {
    let value = match body {
        ExceptionBody::String(m) => hessian_string_len(m),
        ExceptionBody::Object { class, message } => {
            1 + hessian_string_len(class)
                + 1
                + THROWABLE_FIELDS
                    .iter()
                    .map(|f| hessian_string_len(f))
                    .sum::<usize>()
                + 1
                + hessian_string_len(message)
                + 1
                + 1
                + hessian_string_len(STACK_TRACE_TYPE)
                + 1
        }
    };
    1 + value + if with_attachments { 2 } else { 0 }
}

/// Length of the frame [`encode_exception_response`] writes.
pub fn exception_response_len(body: &ExceptionBody<'_>, with_attachments: bool) -> usize {
    HEADER_LEN + exception_body_len(body, with_attachments)
}

/// Writes an OK response whose result is an exception (`RESPONSE_WITH_EXCEPTION`, or
/// `RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS` with an empty map when `with_attachments`; pass
/// [`supports_response_attachments`] of the request's Dubbo version).
pub fn encode_exception_response(
    out: &mut Vec<u8>,
    request_id: u64,
    body: &ExceptionBody<'_>,
    with_attachments: bool,
) {
    let body_len = exception_body_len(body, with_attachments);
    out.reserve(HEADER_LEN + body_len);
    write_header(out, HESSIAN2, Status::Ok.code(), request_id, body_len);
    // Response kind as a compact int.
    out.push(0x90 + if with_attachments { 3 } else { 0 });
    match body {
        ExceptionBody::String(m) => write_hessian_string(out, m),
        ExceptionBody::Object { class, message } => {
            out.push(b'C');
            write_hessian_string(out, class);
            out.push(0x90 + THROWABLE_FIELDS.len() as u8);
            for f in THROWABLE_FIELDS {
                write_hessian_string(out, f);
            }
            out.push(0x60); // instance of class 0
            write_hessian_string(out, message);
            out.push(b'N'); // cause
            out.push(0x70); // stackTrace: typed list of length 0
            write_hessian_string(out, STACK_TRACE_TYPE);
            out.push(b'N'); // suppressedExceptions
        }
    }
    if with_attachments {
        out.extend_from_slice(b"HZ");
    }
}

#[cfg(test)]
mod tests {
    use super::super::hessian::Reader;
    use super::super::HStr;
    use super::*;

    #[test]
    fn string_lengths_match_writer() {
        for s in [
            "",
            "a",
            "héllo",
            "世界",
            "😀x",
            &"y".repeat(40_000),
            &"é".repeat(70_000),
        ] {
            let mut v = Vec::new();
            write_hessian_string(&mut v, s);
            assert_eq!(v.len(), hessian_string_len(s), "{}", s.len());
            let mut r = Reader::new(&v, 0, 4);
            let h = r.string().unwrap();
            assert_eq!(r.pos, v.len());
            if s.len() < 0x8000 && !s.contains('😀') {
                assert_eq!(h, HStr::Utf8(s));
            }
        }
    }

    #[test]
    fn versions() {
        assert!(supports_response_attachments("2.0.2"));
        assert!(supports_response_attachments("2.0.99"));
        assert!(!supports_response_attachments("2.0.1"));
        assert!(!supports_response_attachments("2.7.8"));
        assert!(!supports_response_attachments("2.4.10"));
    }
}
