//! Child processes owned by a test, temp dirs and free ports.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The workspace root (where `Cargo.toml` with `[workspace]` and `.venv/` live), found at run
/// time from the running package's directory (cargo sets `CARGO_MANIFEST_DIR` for tests and
/// `cargo run`) or the current directory, so a binary built in one checkout and run from another
/// (a shared target dir) still finds this checkout's files.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("[workspace]")) {
            return dir.to_path_buf();
        }
    }
    // Built-in fallback: where the testkit crate was compiled.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), and never
/// handed out before by this process: tests of one binary run in parallel, and a port handed
/// to a peer that has not bound it yet is free again for the kernel, so without this two
/// tests could be given the same port (one test's cluster then reached the other's server).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    // Hold every candidate until the pick is made, so the kernel offers different ports.
    let mut held = Vec::new();
    for _ in 0..64 {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = l.local_addr().expect("bound address").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
        held.push(l);
    }
    panic!("no port on 127.0.0.1 that this process has not handed out already");
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/meltemi-<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "meltemi-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MELTEMI_KEEP_TMP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process that is killed (by its PID, through the `Child` handle) and reaped on drop.
/// Its stdout and stderr go to files in the owner's temp dir, so a failing test can show them.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Spawns `cmd`, sending stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> io::Result<Process> {
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {name}: {e}")))?;
        Ok(Process {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last `n` lines of the child's output.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The whole output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the child and waits for it (bounded).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            for _ in 0..250 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "testkit: {} (pid {}) did not exit after kill",
                self.name,
                c.id()
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
