//! Shared set-up of the module's end-to-end tests: Envoy config pieces (a listener with the
//! module before `tcp_proxy`, plain and bridge clusters), the Apache Thrift Python peers
//! (`testkit/clients/route_thrift.py`), a framed-binary Thrift client on one socket, and the
//! `meltemi` binary.
#![allow(dead_code)] // each test file uses its own part

use meltemi_testkit::config::Filter;
use meltemi_testkit::{free_port, venv_python, wait_for, Process, TempDir};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The Thrift peer script.
pub fn thrift_script() -> PathBuf {
    meltemi_testkit::workspace_root().join("testkit/clients/route_thrift.py")
}

/// A Thrift server on a free port whose every method answers `name`.
pub fn thrift_server(dir: &TempDir, name: &str) -> (Process, u16) {
    let port = free_port();
    let mut cmd = Command::new(venv_python());
    cmd.arg(thrift_script())
        .args(["serve", &port.to_string(), name]);
    let p = Process::spawn(name, cmd, dir.path().join(format!("{name}.log"))).unwrap();
    wait_listening(port, "thrift server");
    (p, port)
}

/// Waits (up to 10 s) until something accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap_or_else(|| panic!("{what} not listening on {port}"));
}

/// A listener on 127.0.0.1:`port`: the module with `filter_json`, then `tcp_proxy` to `cluster`
/// (YAML list item under `listeners:`).
pub fn module_listener(name: &str, port: u16, filter_json: &str, cluster: &str) -> String {
    let chain: String = [
        Filter::Module(filter_json.to_owned()),
        Filter::TcpProxy(cluster.to_owned()),
    ]
    .iter()
    .map(Filter::yaml)
    .collect();
    format!(
        r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:{chain}"#
    )
}

/// A routing listener of the engine's own `routing` object (stat prefix = `name`), primary `v1`.
pub fn routed_listener(protocol: &str, name: &str, port: u16, routing: &str) -> String {
    let json = format!(r#"{{"protocol":"{protocol}","stat_prefix":"{name}","routing":{routing}}}"#);
    module_listener(name, port, &json, "v1")
}

/// A static cluster on 127.0.0.1:`port` (YAML list item under `clusters:`).
pub fn tcp_cluster(name: &str, port: u16) -> String {
    cluster(name, port, "")
}

/// A static cluster on 127.0.0.1:`port` whose upstream is the module's HTTP-to-TCP bridge for
/// `protocol` (a detour's destination); `extra` goes after `type: STATIC` (more cluster fields).
pub fn bridge_cluster(protocol: &str, name: &str, port: u16, extra: &str) -> String {
    let bridge = format!(
        r#"{extra}
    upstream_config:
      name: envoy.upstreams.http.dynamic_modules
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.dynamic_modules.v3.Config
        dynamic_module_config: {{ name: meltemi }}
        bridge_name: {protocol}
        bridge_config:
          "@type": type.googleapis.com/google.protobuf.StringValue
          value: '{{"protocol":"{protocol}"}}'"#
    );
    cluster(name, port, &bridge)
}

fn cluster(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
  - name: "{name}"
    connect_timeout: 1s
    type: STATIC{extra}
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"#
    )
}

/// A whole static bootstrap from listener and cluster items.
pub fn static_resources(listeners: &[String], clusters: &[String]) -> String {
    format!(
        "static_resources:\n  listeners:{}\n  clusters:{}\n",
        listeners.concat(),
        clusters.concat()
    )
}

/// One client connection speaking framed binary Thrift (strict), calls without arguments whose
/// answer is a string (the peers answer their version name).
#[derive(Debug)]
pub struct ThriftConn {
    pub stream: TcpStream,
    seq: i32,
}

impl ThriftConn {
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
        let id = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
        match ftype {
            11 => {
                let n = r.u32()? as usize;
                text = Some(String::from_utf8_lossy(r.take(n)?).into_owned());
            }
            8 => code = r.u32()?,
            _ => return None,
        }
        let _ = id;
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

/// The `meltemi` controller binary, built on first use into the same target dir (a test of
/// another crate cannot use `CARGO_BIN_EXE_meltemi`).
pub fn meltemi_binary() -> PathBuf {
    let bin = meltemi_testkit::artifacts::target_dir()
        .join("debug")
        .join("meltemi");
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
        .current_dir(meltemi_testkit::workspace_root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p meltemi-controller failed");
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}
