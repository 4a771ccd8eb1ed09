//! Per-connection Redis router glue: the module is the terminal filter of the connection. It
//! frames the client's commands (copied out of Envoy's read buffer, which is drained), plans
//! each with the engine's [`RedisRouter`], sends the commands to the module's own shard
//! connections ([`crate::shards`]) and writes the replies back strictly in the client's order:
//! a pipeline keeps its order even when its commands went to different upstreams.

use crate::host::{Close, Direction, NetworkHost};
use crate::shards::{Inbox, Shard, Waiter};
use meltemi_codec::redis::decode_request;
use meltemi_codec::{Decoded, Limits};
use meltemi_engine::redis_route::{err, Merge, Plan, RedisRouter};
use std::collections::VecDeque;
use std::sync::Arc;

/// One client request's place in the reply order.
#[derive(Debug)]
enum Slot {
    /// Its reply, ready to be written.
    Done(Vec<u8>),
    /// Waiting for one upstream reply.
    One,
    /// Waiting for the replies of several parts.
    Split(Merge),
}

/// The router's per-connection state.
#[derive(Debug)]
pub struct RedisConn {
    inbox: Arc<Inbox>,
    /// Client bytes not yet framed (module-owned: Envoy's buffer is drained at once).
    buf: Vec<u8>,
    slots: VecDeque<Slot>,
    /// Slot number of `slots[0]`.
    base: u64,
    /// After QUIT: close once every earlier reply is written.
    closing: bool,
    closed: bool,
    limits: Limits,
}

/// Commands of one read for one shard, written with one `write`.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    waiters: Vec<Waiter>,
}

impl RedisConn {
    pub fn new(host: &mut impl NetworkHost, max_frame: usize) -> RedisConn {
        RedisConn {
            inbox: Inbox::new(host.scheduler()),
            buf: Vec::new(),
            slots: VecDeque::new(),
            base: 0,
            closing: false,
            closed: false,
            limits: Limits {
                max_frame,
                ..Limits::default()
            },
        }
    }

    /// Client bytes arrived: frame, route, send; write what is ready.
    /// Returns the bytes written to the client.
    pub fn on_read(
        &mut self,
        host: &mut impl NetworkHost,
        router: &RedisRouter,
        shards: &[Shard],
    ) -> Vec<u8> {
        for c in host.chunks(Direction::Downstream).iter() {
            self.buf.extend_from_slice(c);
        }
        let n = host.buffered(Direction::Downstream);
        host.drain(Direction::Downstream, n);
        if self.closing || self.closed {
            self.buf.clear();
            return Vec::new();
        }
        let mut batches: Vec<Batch> = Vec::new();
        batches.resize_with(shards.len(), Batch::default);
        let mut off = 0;
        while off < self.buf.len() && !self.closing {
            let raw = &self.buf[off..];
            let (req, used) = match decode_request(raw, &self.limits) {
                Ok(Decoded::Frame { frame, used }) => (frame, used),
                Ok(Decoded::NeedMore(_)) => break,
                Err(e) => {
                    // As Redis does: a protocol error reply, then the connection closes.
                    let msg = format!("ERR Protocol error: {}", e.rule());
                    self.push_done(err(&msg));
                    self.closing = true;
                    off = self.buf.len();
                    break;
                }
            };
            let slot = self.base + self.slots.len() as u64;
            match router.plan(&req, &raw[..used]) {
                Plan::Nothing => {}
                Plan::Local { reply, close } => {
                    self.push_done(reply);
                    self.closing |= close;
                }
                Plan::One { cluster, rewritten } => {
                    let b = &mut batches[cluster];
                    b.bytes
                        .extend_from_slice(rewritten.as_deref().unwrap_or(&raw[..used]));
                    b.waiters.push(self.waiter(slot, 0));
                    self.slots.push_back(Slot::One);
                }
                Plan::Split { parts, merge } => {
                    let n = parts.len();
                    for (i, p) in parts.into_iter().enumerate() {
                        let b = &mut batches[p.cluster];
                        b.bytes.extend_from_slice(&p.bytes);
                        b.waiters.push(self.waiter(slot, i as u32));
                    }
                    self.slots.push_back(Slot::Split(Merge::new(merge, n)));
                }
            }
            off += used;
        }
        self.buf.drain(..off);
        for (shard, b) in shards.iter().zip(batches) {
            if !b.waiters.is_empty() {
                shard.send(&b.bytes, b.waiters);
            }
        }
        self.flush(host)
    }

    fn waiter(&self, slot: u64, part: u32) -> Waiter {
        Waiter {
            inbox: Arc::clone(&self.inbox),
            slot,
            part,
        }
    }

    fn push_done(&mut self, reply: Vec<u8>) {
        self.slots.push_back(Slot::Done(reply));
    }

    /// Replies arrived from the shards (the scheduler's hook on this worker).
    /// Returns the bytes written to the client.
    pub fn on_scheduled(&mut self, host: &mut impl NetworkHost) -> Vec<u8> {
        for (slot, part, reply) in self.inbox.take() {
            let Some(i) = slot.checked_sub(self.base) else {
                continue;
            };
            let Some(s) = self.slots.get_mut(i as usize) else {
                continue;
            };
            let done = match s {
                Slot::One => Some(reply),
                Slot::Split(m) => {
                    if m.add(part as usize, reply) {
                        let Slot::Split(m) = std::mem::replace(s, Slot::One) else {
                            unreachable!()
                        };
                        Some(m.finish())
                    } else {
                        None
                    }
                }
                Slot::Done(_) => None,
            };
            if let Some(r) = done {
                *s = Slot::Done(r);
            }
        }
        self.flush(host)
    }

    /// Writes every ready reply at the head of the order, in one write; returns them.
    fn flush(&mut self, host: &mut impl NetworkHost) -> Vec<u8> {
        if self.closed {
            return Vec::new();
        }
        let mut out = Vec::new();
        while let Some(Slot::Done(_)) = self.slots.front() {
            if let Some(Slot::Done(r)) = self.slots.pop_front() {
                out.extend_from_slice(&r);
            }
            self.base += 1;
        }
        if !out.is_empty() {
            host.write_to_client(&out, false);
        }
        if self.closing && self.slots.is_empty() {
            self.closed = true;
            self.inbox.close();
            host.close(Close::FlushWrite);
        }
        out
    }

    /// The connection closed: late replies are dropped, Envoy's scheduler released.
    pub fn on_close(&mut self) {
        self.closed = true;
        self.inbox.close();
    }
}

impl Drop for RedisConn {
    fn drop(&mut self) {
        self.inbox.close();
    }
}
