//! A real single-member etcd on loopback ports, for the tests that need one. Needs `etcd`
//! (Debian's etcd-server); `.ci/run` installs it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An etcd server of the test's own, stopped (and its data removed) when dropped.
pub struct EtcdServer {
    child: Option<Child>,
    pub endpoint: String,
    peer: String,
    pub dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it answers (at most 10 s).
    pub fn start() -> EtcdServer {
        let dir = tempfile::tempdir().unwrap();
        let client = super::targets::free_port();
        let peer = super::targets::free_port();
        let mut s = EtcdServer {
            child: None,
            endpoint: format!("http://127.0.0.1:{client}"),
            peer: format!("http://127.0.0.1:{peer}"),
            dir,
        };
        s.run();
        s
    }

    fn run(&mut self) {
        let child = Command::new("etcd")
            .arg("--name=t")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={}", self.endpoint))
            .arg(format!("--advertise-client-urls={}", self.endpoint))
            .arg(format!("--listen-peer-urls={}", self.peer))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer))
            .arg(format!("--initial-cluster=t={}", self.peer))
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "etcd did not start at {}",
                self.endpoint
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `etcdctl endpoint health` says yes.
    fn healthy(&self) -> bool {
        self.etcdctl(&["endpoint", "health"]).is_some()
    }

    /// Runs `etcdctl` against this server; its stdout when it succeeded.
    pub fn etcdctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .arg("--command-timeout=2s")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the server (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
