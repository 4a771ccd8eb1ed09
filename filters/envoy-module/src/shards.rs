//! The module's own upstream Redis connections (issue 12, `docs/redis.md`).
//!
//! Envoy 1.40's network-filter ABI cannot open an upstream connection through the cluster
//! manager, and the HTTP callout + bridge lends one pooled TCP connection per request in
//! flight. So each Redis upstream ([`Shard`]) gets ONE TCP connection owned by the module,
//! shared by every client connection on every worker (multiplexed: Redis answers in order, so
//! a FIFO of waiters pairs each reply with its request):
//! - a worker writes a batch of commands (all of one read hook for that shard) with one
//!   `write`, pushing one [`Waiter`] per command under the same lock, so FIFO order = wire order;
//! - one reader thread per connection frames the replies (the codec's reply decoder), hands
//!   each to its waiter's [`Inbox`], and wakes each touched connection once per read through
//!   Envoy's network-filter scheduler (`scheduler_commit`), whose hook runs on that
//!   connection's worker, where the answer is written to the client.
//!
//! A connection that fails (connect, write, EOF) answers every waiter with a Redis error and
//! is re-opened by the next write. Deliberately simple for now: connects and writes happen on
//! the worker (loopback and LAN peers: microseconds; a 1 s connect and 2 s write timeout bound
//! the stall), no per-command timeout, no TLS, no health checks or address discovery (the
//! address comes from the filter config, not from Envoy's cluster).

use crate::host::Wake;
use meltemi_codec::redis::decode_response;
use meltemi_codec::{Decoded, Limits};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Locks, ignoring poisoning (a panic elsewhere must not wedge every connection).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Replies for one client connection, filled by reader threads, emptied on its worker.
pub struct Inbox {
    state: Mutex<InboxState>,
}

struct InboxState {
    /// `(slot, part, reply)` in arrival order.
    replies: Vec<(u64, u32, Vec<u8>)>,
    waker: Option<Box<dyn Wake>>,
    /// A wake is posted and not yet taken: no second one.
    pending: bool,
    closed: bool,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inbox")
    }
}

impl Inbox {
    pub fn new(waker: Option<Box<dyn Wake>>) -> Arc<Inbox> {
        Arc::new(Inbox {
            state: Mutex::new(InboxState {
                replies: Vec::new(),
                waker,
                pending: false,
                closed: false,
            }),
        })
    }

    fn deliver(&self, slot: u64, part: u32, reply: Vec<u8>) {
        let mut s = lock(&self.state);
        if !s.closed {
            s.replies.push((slot, part, reply));
        }
    }

    /// Posts one wake unless one is pending. Under the lock, so it never races [`Inbox::close`]
    /// (which deletes Envoy's scheduler).
    fn wake(&self) {
        let mut s = lock(&self.state);
        if s.closed || s.pending || s.replies.is_empty() {
            return;
        }
        let s = &mut *s;
        if let Some(w) = &s.waker {
            s.pending = true;
            w.wake(0);
        }
    }

    /// The replies that arrived (worker side); later ones post a new wake.
    pub fn take(&self) -> Vec<(u64, u32, Vec<u8>)> {
        let mut s = lock(&self.state);
        s.pending = false;
        std::mem::take(&mut s.replies)
    }

    /// The connection is gone: drop late replies, release Envoy's scheduler.
    pub fn close(&self) {
        let waker = {
            let mut s = lock(&self.state);
            s.closed = true;
            s.replies.clear();
            s.waker.take()
        };
        // Deleted outside the lock is fine too: `wake` checks `closed` first under it.
        drop(waker);
    }
}

/// Who gets a reply: a client connection's inbox, slot and part.
#[derive(Debug)]
pub struct Waiter {
    pub inbox: Arc<Inbox>,
    pub slot: u64,
    pub part: u32,
}

#[derive(Debug, Default)]
struct Queue {
    waiters: VecDeque<Waiter>,
    /// The reader saw the connection end and answered everyone: push no more.
    closed: bool,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    queue: Arc<Mutex<Queue>>,
}

/// One upstream Redis server and the module's one connection to it.
#[derive(Debug)]
pub struct Shard {
    name: String,
    address: String,
    conn: Mutex<Option<Conn>>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

impl Shard {
    pub fn new(name: &str, address: &str) -> Shard {
        Shard {
            name: name.to_owned(),
            address: address.to_owned(),
            conn: Mutex::new(None),
        }
    }

    fn connect(&self) -> std::io::Result<Conn> {
        let addr = self
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let reader = stream.try_clone()?;
        let queue = Arc::new(Mutex::new(Queue::default()));
        let q = Arc::clone(&queue);
        std::thread::Builder::new()
            .name(format!("meltemi-redis-{}", self.name))
            .spawn(move || read_loop(reader, q))?;
        Ok(Conn { stream, queue })
    }

    /// Writes `bytes` (whole commands) and queues their waiters, in order. Failures answer
    /// the waiters with an error reply (through their inboxes).
    pub fn send(&self, bytes: &[u8], waiters: Vec<Waiter>) {
        let mut conn = lock(&self.conn);
        if conn.as_ref().is_some_and(|c| lock(&c.queue).closed) {
            *conn = None;
        }
        if conn.is_none() {
            match self.connect() {
                Ok(c) => *conn = Some(c),
                Err(_) => {
                    drop(conn);
                    let msg = format!("-ERR meltemi: upstream {} unavailable\r\n", self.name);
                    fail(waiters, msg.as_bytes());
                    return;
                }
            }
        }
        let Some(c) = conn.as_mut() else { return };
        lock(&c.queue).waiters.extend(waiters);
        if c.stream.write_all(bytes).is_err() {
            // The reader sees the connection end and answers every queued waiter.
            let _ = c.stream.shutdown(Shutdown::Both);
            *conn = None;
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // The reader thread holds a clone of the socket: shut it down so the thread ends.
        if let Some(c) = lock(&self.conn).take() {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }
}

fn fail(waiters: impl IntoIterator<Item = Waiter>, msg: &[u8]) {
    let mut touched: Vec<Arc<Inbox>> = Vec::new();
    for w in waiters {
        w.inbox.deliver(w.slot, w.part, msg.to_vec());
        if !touched.iter().any(|t| Arc::ptr_eq(t, &w.inbox)) {
            touched.push(w.inbox);
        }
    }
    for t in touched {
        t.wake();
    }
}

/// The reader thread of one upstream connection.
fn read_loop(mut stream: TcpStream, queue: Arc<Mutex<Queue>>) {
    let limits = Limits::default();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut touched: Vec<Arc<Inbox>> = Vec::new();
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut off = 0;
        let mut broken = false;
        loop {
            match decode_response(&buf[off..], &limits) {
                Ok(Decoded::Frame { used, .. }) => {
                    let w = lock(&queue).waiters.pop_front();
                    if let Some(w) = w {
                        w.inbox
                            .deliver(w.slot, w.part, buf[off..off + used].to_vec());
                        if !touched.iter().any(|t| Arc::ptr_eq(t, &w.inbox)) {
                            touched.push(w.inbox);
                        }
                    }
                    off += used;
                }
                Ok(Decoded::NeedMore(_)) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        buf.drain(..off);
        for t in touched.drain(..) {
            t.wake();
        }
        if broken {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    let left = {
        let mut q = lock(&queue);
        q.closed = true;
        std::mem::take(&mut q.waiters)
    };
    fail(left, b"-ERR meltemi: upstream connection closed\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Count(Arc<AtomicU64>);
    impl Wake for Count {
        fn wake(&self, _: u64) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait_replies(inbox: &Inbox, n: usize) -> Vec<(u64, u32, Vec<u8>)> {
        let mut got = Vec::new();
        for _ in 0..500 {
            got.extend(inbox.take());
            if got.len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn replies_pair_with_waiters_in_order_and_a_dead_upstream_answers_errors() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 64];
            let _ = s.read(&mut b).unwrap();
            // Two replies, the second split over two writes.
            s.write_all(b"+A\r\n$3\r\nb").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(b"cd\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            // Then the server dies with a third command owed.
        });
        let wakes = Arc::new(AtomicU64::new(0));
        let inbox = Inbox::new(Some(Box::new(Count(Arc::clone(&wakes)))));
        let shard = Shard::new("t", &addr);
        let w = |slot| Waiter {
            inbox: Arc::clone(&inbox),
            slot,
            part: 0,
        };
        shard.send(b"*1\r\n$4\r\nPING\r\n", vec![w(1), w(2), w(3)]);
        let got = wait_replies(&inbox, 3);
        server.join().unwrap();
        assert_eq!(got[0], (1, 0, b"+A\r\n".to_vec()));
        assert_eq!(got[1], (2, 0, b"$3\r\nbcd\r\n".to_vec()));
        assert_eq!(got[2].0, 3);
        assert!(got[2]
            .2
            .starts_with(b"-ERR meltemi: upstream connection closed"));
        assert!(wakes.load(Ordering::SeqCst) >= 2);
        // Nobody listens any more: the next send fails fast with an error reply.
        drop(shard);
        let shard = Shard::new("gone", "127.0.0.1:1");
        shard.send(b"*1\r\n$4\r\nPING\r\n", vec![w(4)]);
        let got = wait_replies(&inbox, 1);
        assert!(got[0]
            .2
            .starts_with(b"-ERR meltemi: upstream gone unavailable"));
        inbox.close();
    }
}
