//! A real three-member etcd cluster on loopback ports, for the tests that kill its leader.
//! Needs `etcd` and `etcdctl` (Debian's etcd-server and etcd-client).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Member {
    name: String,
    client: String,
    peer: String,
    child: Option<Child>,
}

/// Three etcd members forming one cluster; stopped (and their data removed) when dropped.
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts three members and waits until the cluster has a leader (at most 20 s).
    pub fn start() -> EtcdCluster {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("http://127.0.0.1:{}", super::targets::free_port()),
                peer: format!("http://127.0.0.1:{}", super::targets::free_port()),
                child: None,
            })
            .collect();
        let mut c = EtcdCluster { members, dir };
        for i in 0..3 {
            c.run(i);
        }
        c.wait_for_leader();
        c
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn run(&mut self, i: usize) {
        let initial = self.initial_cluster();
        let data = self.dir.path().join(&self.members[i].name);
        let m = &mut self.members[i];
        let child = Command::new("etcd")
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={}", m.client))
            .arg(format!("--advertise-client-urls={}", m.client))
            .arg(format!("--listen-peer-urls={}", m.peer))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer))
            .arg(format!("--initial-cluster={initial}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=meridian-test")
            // Loopback: short heartbeats make elections quick.
            .arg("--heartbeat-interval=50")
            .arg("--election-timeout=500")
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        m.child = Some(child);
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// `etcdctl` against the members that are running; its stdout when it succeeded.
    pub fn etcdctl(&self, args: &[&str]) -> Option<String> {
        let live: Vec<&str> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client.as_str())
            .collect();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", live.join(",")))
            .arg("--command-timeout=2s")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The index of the member that leads now, if one does.
    pub fn leader(&self) -> Option<usize> {
        let out = self.etcdctl(&["endpoint", "status", "--write-out=json"])?;
        let status: serde_json::Value = serde_json::from_str(&out).ok()?;
        let leader = status.as_array()?.first()?["Status"]["leader"].as_u64()?;
        status.as_array()?.iter().find_map(|s| {
            (s["Status"]["header"]["member_id"].as_u64() == Some(leader))
                .then(|| s["Endpoint"].as_str())
                .flatten()
                .and_then(|e| self.members.iter().position(|m| m.client == e))
        })
    }

    /// Waits until a member leads (at most 20 s).
    pub fn wait_for_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            assert!(Instant::now() < deadline, "the etcd cluster elected no leader");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills member `i` outright (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.run(i);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

impl EtcdCluster {
    /// Sends `sig` to member `i` (SIGSTOP: a member that stops answering without closing its
    /// connections, as behind a partition).
    pub fn signal(&self, i: usize, sig: i32) {
        let pid = self.members[i].child.as_ref().expect("running").id();
        // SAFETY: kill(2) on a child process of ours.
        unsafe { libc::kill(pid as i32, sig) };
    }
}
