//! A single-member etcd on free loopback ports with its data in a temporary directory, for the witness tests and
//! `bourse bench failover --witness`. Killed when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::demo::TempDir;

pub struct EtcdMember {
    child: Child,
    /// The client port (gRPC and the JSON gateway).
    pub client: SocketAddr,
    _dir: TempDir,
}

/// Whether the `etcd` binary is installed (Debian's etcd-server).
pub fn available() -> bool {
    Command::new("etcd").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdMember {
    /// Starts the member and waits until it reports itself healthy.
    pub fn start(tag: &str) -> anyhow::Result<EtcdMember> {
        let dir = TempDir::new(&format!("bourse-etcd-{tag}"))?;
        let (client, peer) = (free_port()?, free_port()?);
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let child = Command::new("etcd")
            .arg("--name")
            .arg("witness")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &url(client), "--advertise-client-urls", &url(client)])
            .args(["--listen-peer-urls", &url(peer), "--initial-advertise-peer-urls", &url(peer)])
            .arg("--initial-cluster")
            .arg(format!("witness={}", url(peer)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd (ci/setup.sh installs etcd-server)")?;
        let member = EtcdMember { child, client: SocketAddr::from((Ipv4Addr::LOCALHOST, client)), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !member.healthy() {
            if Instant::now() >= deadline {
                bail!("etcd did not become healthy on {} within 10 s", member.client);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(member)
    }

    /// `GET /health` answers `"health":"true"`.
    pub fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.client, Duration::from_millis(200)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = write!(s, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply.contains("\"health\":\"true\"")
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
