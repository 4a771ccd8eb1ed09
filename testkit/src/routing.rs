//! Per-request routing peers: the Apache Thrift Python servers that answer their version name
//! (`testkit/clients/route_thrift.py`), a framed-binary Thrift client on one socket, the
//! `meltemi` controller binary, and helpers to run `meltemi bootstrap` output in the rig.
//! Shared by the module's end-to-end tests and the demo.

use crate::{free_port, venv_python, wait_for, Process, TempDir};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The Thrift peer script.
pub fn thrift_script() -> PathBuf {
    crate::workspace_root().join("testkit/clients/route_thrift.py")
}

/// A Thrift server on a free port whose every method answers `name` (its log in `dir`).
pub fn version_server(dir: &TempDir, name: &str) -> io::Result<(Process, u16)> {
    let port = free_port();
    let mut cmd = Command::new(venv_python());
    cmd.arg(thrift_script())
        .args(["serve", &port.to_string(), name]);
    let p = Process::spawn(name, cmd, dir.path().join(format!("{name}.log")))?;
    await_listening(port, "thrift server")?;
    Ok((p, port))
}

/// Waits (up to 10 s) until something accepts connections on 127.0.0.1:`port`.
pub fn await_listening(port: u16, what: &str) -> io::Result<()> {
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .map(|_| ())
    .ok_or_else(|| io::Error::other(format!("{what} not listening on {port}")))
}

/// One client connection speaking framed binary Thrift (strict), calls without arguments whose
/// answer is a string (the peers answer their version name).
#[derive(Debug)]
pub struct ThriftConn {
    /// The client socket (its local address shows it is the same connection throughout).
    pub stream: TcpStream,
    seq: i32,
}

impl ThriftConn {
    /// Connects to 127.0.0.1:`port` (10 s read timeout).
    pub fn connect(port: u16) -> io::Result<ThriftConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(ThriftConn { stream, seq: 0 })
    }

    /// Calls `method`; the answer string, or `exc:<type>:<message>` for a
    /// TApplicationException.
    pub fn call(&mut self, method: &str) -> io::Result<String> {
        self.seq += 1;
        let mut msg = Vec::new();
        msg.extend_from_slice(&0x8001_0001u32.to_be_bytes()); // version 1, CALL
        msg.extend_from_slice(&(method.len() as i32).to_be_bytes());
        msg.extend_from_slice(method.as_bytes());
        msg.extend_from_slice(&self.seq.to_be_bytes());
        msg.push(0); // empty args struct: STOP
        let mut frame = (msg.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&msg);
        self.stream.write_all(&frame)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body)?;
        parse_reply(&body, self.seq).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad reply {body:?}"))
        })
    }
}

fn parse_reply(b: &[u8], want_seq: i32) -> Option<String> {
    let mut r = Rd(b);
    let word = r.u32()?;
    if word & 0xffff_0000 != 0x8001_0000 {
        return None;
    }
    let mtype = word & 0xff;
    let name_len = r.u32()? as usize;
    r.take(name_len)?;
    if r.u32()? as i32 != want_seq {
        return None;
    }
    let (mut text, mut code) = (None, 0);
    loop {
        let ftype = r.take(1)?[0];
        if ftype == 0 {
            break;
        }
        let _id = r.take(2)?;
        match ftype {
            11 => {
                let n = r.u32()? as usize;
                text = Some(String::from_utf8_lossy(r.take(n)?).into_owned());
            }
            8 => code = r.u32()?,
            _ => return None,
        }
    }
    match mtype {
        2 => text,
        3 => Some(format!("exc:{code}:{}", text.unwrap_or_default())),
        _ => None,
    }
}

struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The `meltemi` controller binary (debug), built on first use into the same target dir (a test
/// of another crate cannot use `CARGO_BIN_EXE_meltemi`).
pub fn meltemi_binary() -> io::Result<PathBuf> {
    let bin = crate::artifacts::target_dir().join("debug").join("meltemi");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "meltemi-controller",
            "--bin",
            "meltemi",
        ])
        .current_dir(crate::workspace_root())
        .status()?;
    if !status.success() {
        return Err(io::Error::other("cargo build -p meltemi-controller failed"));
    }
    if !bin.is_file() {
        return Err(io::Error::other(format!(
            "{} missing after the build",
            bin.display()
        )));
    }
    Ok(bin)
}

/// `yaml` (a block-style document, as `meltemi bootstrap` prints it) without its top-level
/// `key:` section: the rig adds its own `admin:` on a free port.
pub fn without_top_level(yaml: &str, key: &str) -> String {
    let head = format!("{key}:");
    let mut out = String::new();
    let mut skipping = false;
    for line in yaml.lines() {
        let top = !line.starts_with(' ') && !line.starts_with('-') && !line.is_empty();
        if top {
            skipping = line == head || line.starts_with(&format!("{head} "));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The demo service `calc.demo.svc.cluster.local` (ServiceEntry, one 127.0.0.1 endpoint per
/// version, listener on `listen`) and its subsets `v1`/`v2` (DestinationRule), as `service.yaml`.
pub fn write_calc_service(dir: &Path, listen: u16, p1: u16, p2: u16) -> io::Result<()> {
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: calc
  namespace: demo
  annotations: {{meltemi.io/listen-port: "{listen}"}}
spec:
  hosts: [calc.demo.svc.cluster.local]
  ports:
    - number: 9090
      name: tcp-thrift
      protocol: TCP
  resolution: STATIC
  endpoints:
    - address: 127.0.0.1
      ports: {{tcp-thrift: {p1}}}
      labels: {{version: v1}}
    - address: 127.0.0.1
      ports: {{tcp-thrift: {p2}}}
      labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: calc
  namespace: demo
spec:
  host: calc.demo.svc.cluster.local
  subsets:
    - name: v1
      labels: {{version: v1}}
    - name: v2
      labels: {{version: v2}}
"#
    );
    std::fs::write(dir.join("service.yaml"), yaml)
}

/// The MetaRouter of `calc` with one route `name` to `weights` (subset, percent; a single
/// destination carries no weight), written atomically (write, then rename) as `router.yaml`.
/// Returns the YAML.
pub fn write_calc_router(dir: &Path, name: &str, weights: &[(&str, u32)]) -> io::Result<String> {
    let dests: String = weights
        .iter()
        .map(|(subset, w)| {
            let weight = if weights.len() > 1 {
                format!("          weight: {w}\n")
            } else {
                String::new()
            };
            format!(
                "        - destination: {{host: calc.demo.svc.cluster.local, subset: {subset}}}\n{weight}"
            )
        })
        .collect();
    let yaml = format!(
        r#"apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata:
  name: calc
  namespace: demo
spec:
  hosts: [calc.demo.svc.cluster.local]
  routes:
    - name: {name}
      route:
{dests}"#
    );
    let tmp = dir.join("router.yaml.tmp");
    std::fs::write(&tmp, &yaml)?;
    std::fs::rename(&tmp, dir.join("router.yaml"))?;
    Ok(yaml)
}

/// `route.<route>.requests` and `route.<route>.detoured` of the module's stats (any listener),
/// from Envoy's `/stats`: how many requests the route saw and how many of them took the detour.
pub fn route_counts(stats: &std::collections::BTreeMap<String, u64>, route: &str) -> (u64, u64) {
    let sum = |stat: &str| -> u64 {
        let tail = format!(".route.{route}.{stat}");
        stats
            .iter()
            .filter(|(k, _)| k.starts_with("dynamicmodulescustom.") && k.ends_with(&tail))
            .map(|(_, v)| *v)
            .sum()
    };
    (sum("requests"), sum("detoured"))
}

/// The route-discovery render flags shared by `meltemi serve-routes` and `meltemi bootstrap`
/// (the `.so`, a 1 s refresh, outbound only).
pub const ROUTE_DISCOVERY_FLAGS: &[&str] = &[
    "--adapter",
    "module",
    "--route-discovery-cluster",
    "meltemi-routes",
    "--route-refresh-ms",
    "1000",
    "--no-inbound",
];

#[cfg(test)]
mod tests {
    use super::without_top_level;

    #[test]
    fn drops_one_top_level_section() {
        let y =
            "node:\n  id: a\nadmin:\n  address:\n    x: 1\nstatic_resources:\n  listeners: []\n";
        assert_eq!(
            without_top_level(y, "admin"),
            "node:\n  id: a\nstatic_resources:\n  listeners: []\n"
        );
        assert_eq!(without_top_level("admin: {}\nb: 1\n", "admin"), "b: 1\n");
    }
}
