//! Locally generated error replies.

use super::{ErrorCode, ERROR_REPLY_LEN, LENGTH_PREFIX};

/// The 20 bytes of an error reply: `ReplyHeader` (xid, zxid, err) with no record after it.
///
/// Clients read no record when `err != 0` (`ClientCnxn.readResponse`), so this is a complete
/// reply to any opcode, `multi` included. Use the request's xid and the last zxid seen from the
/// server (clients keep the larger of their own and a positive zxid; 0 is safe).
pub const fn error_reply(xid: i32, zxid: i64, err: ErrorCode) -> [u8; ERROR_REPLY_LEN] {
    let mut out = [0u8; ERROR_REPLY_LEN];
    let len = ((ERROR_REPLY_LEN - LENGTH_PREFIX) as i32).to_be_bytes();
    let x = xid.to_be_bytes();
    let z = zxid.to_be_bytes();
    let e = err.as_i32().to_be_bytes();
    let mut i = 0;
    while i < 4 {
        out[i] = len[i];
        out[4 + i] = x[i];
        out[16 + i] = e[i];
        i += 1;
    }
    let mut i = 0;
    while i < 8 {
        out[8 + i] = z[i];
        i += 1;
    }
    out
}

/// Appends an error reply ([`error_reply`]) to `out`; returns the bytes written
/// ([`ERROR_REPLY_LEN`]).
pub fn encode_error_reply(xid: i32, zxid: i64, err: ErrorCode, out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&error_reply(xid, zxid, err));
    ERROR_REPLY_LEN
}
