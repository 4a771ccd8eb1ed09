//! A recording TCP relay on 127.0.0.1: sits between Envoy and a real server and keeps a copy of
//! every connection's bytes each way, so a test can count frames with its own independent parser
//! (an oracle that shares no code with the filters).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One relayed connection's bytes.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Client to server.
    pub c2s: Vec<u8>,
    /// Server to client.
    pub s2c: Vec<u8>,
}

/// The relay; stops accepting on drop (open connections end when either side closes).
#[derive(Debug)]
pub struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Arc<Mutex<Recorded>>>>>,
    accept: Option<JoinHandle<()>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, rec: Arc<Mutex<Recorded>>, c2s: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut r = rec.lock().expect("relay lock");
            if c2s {
                r.c2s.extend_from_slice(&buf[..n]);
            } else {
                r.s2c.extend_from_slice(&buf[..n]);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Relay {
    /// Relays `127.0.0.1:<port()>` to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Arc<Mutex<Recorded>>>>> = Arc::default();
        let (s, c) = (Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let rec = Arc::new(Mutex::new(Recorded::default()));
                c.lock().expect("relay lock").push(Arc::clone(&rec));
                let (c1, s1) = match (client.try_clone(), server.try_clone()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => continue,
                };
                let r1 = Arc::clone(&rec);
                std::thread::spawn(move || pump(c1, s1, r1, true));
                std::thread::spawn(move || pump(server, client, rec, false));
            }
        });
        Ok(Relay {
            port,
            stop,
            conns,
            accept: Some(accept),
        })
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A copy of every connection's bytes so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.conns
            .lock()
            .expect("relay lock")
            .iter()
            .map(|r| r.lock().expect("relay lock").clone())
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}
