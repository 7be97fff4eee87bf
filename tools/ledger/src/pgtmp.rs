//! A throwaway PostgreSQL cluster for a test or a benchmark: `initdb` in a temporary directory, `postgres` on a free loopback
//! port with its socket in that directory, stopped and removed on drop. As root (CI) both run as the `postgres`
//! user through `setpriv`, which execs in place, so the child we hold is the server itself and a signal to it
//! reaches the postmaster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    server: Option<Child>,
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    found.sort();
    found.pop()
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgCluster {
    /// Starts a cluster, or says why it cannot (the caller prints `skipped: <reason>`).
    pub fn start(name: &str) -> Result<PgCluster, String> {
        let bin = bin_dir().ok_or("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")?;
        let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").map_err(|e| e.to_string())?) == 0;
        let run_as = if root {
            Some(user_ids("postgres").ok_or("running as root and there is no postgres user to run the server as")?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!("bourse-ledger-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = run_as {
            for p in [dir.clone(), dir.join("data")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).map_err(|e| format!("chown: {e}"))?;
            }
        }
        let mut c = PgCluster { dir, port: free_port(), bin, run_as, server: None };
        let out = c
            .command("initdb")
            .args(["-D"])
            .arg(c.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        c.start_server()?;
        Ok(c)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg(path);
                c
            }
            None => Command::new(path),
        };
        c.stdin(Stdio::null()).current_dir(&self.dir);
        c
    }

    pub fn start_server(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.join("server.log")).map_err(|e| e.to_string())?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if postgres::Client::connect(&self.url(), postgres::NoTls).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(st))) = self.server.as_mut().map(|c| c.try_wait()) {
                return Err(format!("postgres exited with {st}: {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("postgres did not accept connections within 30 s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (SIGINT): the server rolls back open transactions and closes every connection.
    pub fn stop_server(&mut self) {
        if let Some(mut c) = self.server.take() {
            // Not reaped yet, so the pid is still the server's.
            let sent = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            if !sent.is_ok_and(|s| s.success()) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fresh database in the cluster; its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.url(), postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
