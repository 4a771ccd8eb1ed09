//! Real protocol peers from Debian's packages, started on free loopback ports.

use crate::proc::{free_port, Process, TempDir};
use crate::wait_for;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// A real `redis-server` (Debian package) on 127.0.0.1, no persistence, stopped on drop.
#[derive(Debug)]
pub struct RedisServer {
    process: Process,
    port: u16,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers PING.
    pub fn start() -> io::Result<RedisServer> {
        Self::start_with_args(&[])
    }

    /// Starts with extra command-line arguments (for example `["--requirepass", "x"]`).
    pub fn start_with_args(args: &[&str]) -> io::Result<RedisServer> {
        let dir = TempDir::new("redis")?;
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.current_dir(dir.path())
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .args(args);
        let mut process = Process::spawn("redis-server", cmd, dir.path().join("redis.log"))?;
        let ok = wait_for(Duration::from_secs(10), || {
            if !process.is_running() {
                return Some(false);
            }
            ping(port).then_some(true)
        });
        if ok != Some(true) {
            return Err(io::Error::other(format!(
                "redis-server did not start: {}",
                process.log_tail(20)
            )));
        }
        Ok(RedisServer {
            process,
            port,
            _dir: dir,
        })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the server now (a "backend down" test).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Runs Debian's `redis-cli -h 127.0.0.1 -p PORT ARGS...` and returns its stdout, trimmed.
pub fn redis_cli(port: u16, args: &[&str]) -> io::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
