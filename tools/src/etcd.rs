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

/// Members started together on loopback, each with its own data directory: a real quorum with elections.
pub struct EtcdCluster {
    pub members: Vec<Option<EtcdMember>>,
}

impl EtcdCluster {
    pub fn start(tag: &str, n: usize) -> anyhow::Result<EtcdCluster> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| Ok((free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let initial: Vec<String> = ports.iter().enumerate().map(|(i, (_, p))| format!("m{i}={}", url(*p))).collect();
        let mut members = Vec::new();
        for (i, &(client, peer)) in ports.iter().enumerate() {
            let dir = TempDir::new(&format!("bourse-etcd-{tag}-m{i}"))?;
            let log = std::fs::File::create(dir.path().join("etcd.log"))?;
            let child = Command::new("etcd")
                .arg("--name")
                .arg(format!("m{i}"))
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &url(client), "--advertise-client-urls", &url(client)])
                .args(["--listen-peer-urls", &url(peer), "--initial-advertise-peer-urls", &url(peer)])
                .arg("--initial-cluster")
                .arg(initial.join(","))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting etcd (ci/setup.sh installs etcd-server)")?;
            members.push(Some(EtcdMember { child, client: SocketAddr::from((Ipv4Addr::LOCALHOST, client)), _dir: dir }));
        }
        let cluster = EtcdCluster { members };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.members.iter().flatten().all(EtcdMember::healthy) {
            if Instant::now() >= deadline {
                bail!("the {n}-member etcd cluster did not become healthy within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.members.iter().flatten().map(|m| m.client).collect()
    }

    /// The index of the member that is leader now, as the first answering member says.
    pub fn leader(&self) -> Option<usize> {
        for m in self.members.iter().flatten() {
            let (Some(me), Some(leader)) = m.status() else { continue };
            if me == leader {
                return self.members.iter().position(|x| x.as_ref().is_some_and(|x| x.client == m.client));
            }
            return self.members.iter().position(|x| x.as_ref().and_then(|x| x.status().0).as_deref() == Some(leader.as_str()));
        }
        None
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.members[i] = None;
    }
}

impl EtcdMember {
    /// (this member's id, the leader's id) from `POST /v3/maintenance/status`.
    fn status(&self) -> (Option<String>, Option<String>) {
        let Ok(mut s) = TcpStream::connect_timeout(&self.client, Duration::from_millis(200)) else { return (None, None) };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = write!(
            s,
            "POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        let Some(body) = reply.split("\r\n\r\n").nth(1) else { return (None, None) };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else { return (None, None) };
        let text = |v: Option<&serde_json::Value>| v.and_then(|x| x.as_str()).map(str::to_string);
        (text(v.get("header").and_then(|h| h.get("member_id"))), text(v.get("leader")))
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
