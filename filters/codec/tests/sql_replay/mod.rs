//! Replays a capture of `scripts/capture/redis_relay.py --log`: records of a direction byte (`>`
//! client to server, `<` server to client), a 4-byte big-endian length and the bytes, in the
//! causal order the relay saw them.

/// The records of a capture: (from the client, bytes).
pub fn records(log: &[u8]) -> Vec<(bool, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < log.len() {
        let dir = log[at];
        let n = u32::from_be_bytes(log[at + 1..at + 5].try_into().unwrap()) as usize;
        out.push((dir == b'>', &log[at + 5..at + 5 + n]));
        at += 5 + n;
    }
    out
}

/// Feeds the records to `on_bytes(from_client, buffered)`, which decodes whole frames from
/// the front of that direction's buffer and returns how many bytes it used.
pub fn replay(log: &[u8], mut on_bytes: impl FnMut(bool, &[u8]) -> usize) {
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for (client, bytes) in records(log) {
        let buf = if client { &mut down } else { &mut up };
        buf.extend_from_slice(bytes);
        let used = on_bytes(client, buf);
        buf.drain(..used);
    }
    assert!(down.is_empty() && up.is_empty(), "bytes left over");
}
