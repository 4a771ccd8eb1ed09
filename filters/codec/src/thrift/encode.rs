//! The encoder of locally generated replies: a `TApplicationException` in the request's
//! transport and protocol.

use super::{
    AppExceptionType, Protocol, Transport, BINARY_VERSION_1, COMPACT_PROTOCOL_ID,
    COMPACT_TYPE_SHIFT, COMPACT_VERSION, HEADER_MAGIC, HEADER_PROTO_BINARY, HEADER_PROTO_COMPACT,
};

/// A locally generated `TApplicationException` reply (an `EXCEPTION` message), in the
/// transport and protocol of the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppExceptionReply<'a> {
    /// The request's transport.
    pub transport: Transport,
    /// The request's protocol; [`Protocol::Unknown`] is answered in strict binary.
    pub protocol: Protocol,
    /// The request's message name (as sent, `service:method` included).
    pub name: &'a str,
    /// The request's sequence id (also the THeader sequence id).
    pub seq_id: i32,
    /// The exception type code.
    pub kind: AppExceptionType,
    /// The exception message.
    pub message: &'a str,
}

fn varint_len(mut v: u32) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

impl AppExceptionReply<'_> {
    fn proto(&self) -> Protocol {
        match self.protocol {
            Protocol::Unknown(_) => Protocol::Binary,
            p => p,
        }
    }

    fn message_len(&self) -> usize {
        let (n, m) = (self.name.len(), self.message.len());
        match self.proto() {
            Protocol::Compact => {
                2 + varint_len(self.seq_id as u32)
                    + varint_len(n as u32)
                    + n
                    + 1
                    + varint_len(m as u32)
                    + m
                    + 1
                    + varint_len(zigzag32(self.kind.as_i32()))
                    + 1
            }
            Protocol::LaxBinary => 9 + n + 15 + m,
            _ => 12 + n + 15 + m,
        }
    }

    /// The exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self.transport {
            Transport::Unframed => self.message_len(),
            Transport::Framed => 4 + self.message_len(),
            // length, magic, flags, seq id, header words, one word of headers.
            Transport::Header => 14 + 4 + self.message_len(),
        }
    }

    /// Appends the reply to `out`; returns the number of bytes written.
    pub fn encode(&self, out: &mut Vec<u8>) -> usize {
        let len = self.encoded_len();
        out.reserve(len);
        let start = out.len();
        let body = self.message_len();
        let proto = self.proto();
        match self.transport {
            Transport::Unframed => {}
            Transport::Framed => out.extend_from_slice(&(body as u32).to_be_bytes()),
            Transport::Header => {
                out.extend_from_slice(&((body + 14) as u32).to_be_bytes());
                out.extend_from_slice(&HEADER_MAGIC.to_be_bytes());
                out.extend_from_slice(&0u16.to_be_bytes());
                out.extend_from_slice(&self.seq_id.to_be_bytes());
                out.extend_from_slice(&1u16.to_be_bytes());
                let id = if proto == Protocol::Compact {
                    HEADER_PROTO_COMPACT
                } else {
                    HEADER_PROTO_BINARY
                };
                // protocol id, no transforms, two bytes of padding.
                out.extend_from_slice(&[id as u8, 0, 0, 0]);
            }
        }
        let (n, m) = (self.name.len(), self.message.len());
        match proto {
            Protocol::Compact => {
                out.push(COMPACT_PROTOCOL_ID);
                out.push((3 << COMPACT_TYPE_SHIFT) | COMPACT_VERSION);
                put_varint(out, self.seq_id as u32);
                put_varint(out, n as u32);
                out.extend_from_slice(self.name.as_bytes());
                out.push(0x18); // field 1 (delta 1), binary
                put_varint(out, m as u32);
                out.extend_from_slice(self.message.as_bytes());
                out.push(0x15); // field 2 (delta 1), i32
                put_varint(out, zigzag32(self.kind.as_i32()));
                out.push(0);
            }
            _ => {
                if proto == Protocol::LaxBinary {
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                    out.extend_from_slice(self.name.as_bytes());
                    out.push(3);
                } else {
                    out.extend_from_slice(&(BINARY_VERSION_1 | 3).to_be_bytes());
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                    out.extend_from_slice(self.name.as_bytes());
                }
                out.extend_from_slice(&self.seq_id.to_be_bytes());
                out.extend_from_slice(&[11, 0, 1]);
                out.extend_from_slice(&(m as u32).to_be_bytes());
                out.extend_from_slice(self.message.as_bytes());
                out.extend_from_slice(&[8, 0, 2]);
                out.extend_from_slice(&self.kind.as_i32().to_be_bytes());
                out.push(0);
            }
        }
        debug_assert_eq!(out.len() - start, len);
        out.len() - start
    }
}
