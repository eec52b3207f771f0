//! A real single-member etcd on loopback ports (or on another local address), for the tests
//! that need one, plain or with TLS (certificates made here with rcgen) and any other flags. Needs `etcd` (Debian's
//! etcd-server); `.ci/run` installs it.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An etcd server of the test's own, stopped (and its data removed) when dropped.
pub struct EtcdServer {
    child: Option<Child>,
    pub endpoint: String,
    peer: String,
    pub dir: tempfile::TempDir,
    /// Flags of etcd beyond the ones every server gets (TLS, and the builder's own).
    flags: Vec<String>,
    /// Flags of every `etcdctl` run: TLS files, and `--user` once set.
    ctl_flags: Vec<String>,
}

/// How to start an [`EtcdServer`]: [`EtcdServer::builder`].
#[derive(Default)]
pub struct EtcdBuilder {
    tls: Option<Pki>,
    flags: Vec<String>,
    /// Where clients reach it; 127.0.0.1 when `None`.
    listen: Option<IpAddr>,
}

impl EtcdBuilder {
    /// Serves clients over TLS with `pki`'s server certificate, and asks them for a
    /// certificate signed by its CA (`--client-cert-auth`); `etcdctl` shows its client one.
    pub fn tls(mut self, pki: &Pki) -> EtcdBuilder {
        self.tls = Some(pki.clone());
        self
    }

    /// One more flag for etcd, like `--auth-token-ttl=1`.
    pub fn flag(mut self, flag: &str) -> EtcdBuilder {
        self.flags.push(flag.to_string());
        self
    }

    /// Serves clients on `ip` (a local address, like one a network namespace lab added to
    /// the root namespace) instead of 127.0.0.1. Peers stay on 127.0.0.1: there is one member.
    /// Not with `tls`: the server certificate names 127.0.0.1 alone.
    pub fn listen(mut self, ip: IpAddr) -> EtcdBuilder {
        self.listen = Some(ip);
        self
    }

    /// Starts etcd and waits until it answers (at most 10 s).
    pub fn start(self) -> EtcdServer {
        let dir = tempfile::tempdir().unwrap();
        let ip = self.listen.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let client = free_port_on(ip);
        let peer = super::targets::free_port();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut flags = Vec::new();
        let mut ctl_flags = Vec::new();
        if let Some(pki) = &self.tls {
            let path = |p: &Path| p.display().to_string();
            flags.push(format!("--cert-file={}", path(&pki.server_cert)));
            flags.push(format!("--key-file={}", path(&pki.server_key)));
            flags.push(format!("--trusted-ca-file={}", path(&pki.ca)));
            flags.push("--client-cert-auth".to_string());
            ctl_flags.push(format!("--cacert={}", path(&pki.ca)));
            ctl_flags.push(format!("--cert={}", path(&pki.client_cert)));
            ctl_flags.push(format!("--key={}", path(&pki.client_key)));
        }
        flags.extend(self.flags);
        let mut s = EtcdServer {
            child: None,
            endpoint: format!("{scheme}://{}", std::net::SocketAddr::new(ip, client)),
            peer: format!("http://127.0.0.1:{peer}"),
            dir,
            flags,
            ctl_flags,
        };
        s.run();
        s
    }
}

/// A port free on `ip` now.
fn free_port_on(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("bind {ip}: {e}"))
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdServer {
    /// Starts a plain etcd (no TLS, no authentication) and waits until it answers (at most
    /// 10 s).
    pub fn start() -> EtcdServer {
        EtcdServer::builder().start()
    }

    /// An etcd with TLS or other flags.
    pub fn builder() -> EtcdBuilder {
        EtcdBuilder::default()
    }

    /// From now on `etcdctl` runs as `user` (`name:password`), as it must once
    /// authentication is enabled.
    pub fn etcdctl_as(&mut self, user: &str) {
        self.ctl_flags.retain(|f| !f.starts_with("--user="));
        self.ctl_flags.push(format!("--user={user}"));
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
            .args(&self.flags)
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
            .args(&self.ctl_flags)
            .args(args)
            .output()
            .ok()?;
        if !out.status.success() {
            // Shown with the failing test's output.
            eprintln!(
                "etcdctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
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

    /// Replaces its data with `snapshot` (as `etcdctl snapshot save` wrote it) and starts
    /// again: an etcd restored from a backup.
    pub fn restore(&mut self, snapshot: &Path) {
        self.stop();
        let data = self.dir.path().join("data");
        std::fs::remove_dir_all(&data).unwrap();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "restore"])
            .arg(snapshot)
            .arg(format!("--data-dir={}", data.display()))
            .arg("--name=t")
            .arg(format!("--initial-cluster=t={}", self.peer))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.run();
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

/// A CA, a server certificate it signed for 127.0.0.1 (an IP address SAN) and a client
/// certificate it signed, as PEM files.
#[derive(Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// Makes the certificates and writes them in `dir`, their names prefixed with `name`
    /// (two sets in one directory do not trust each other).
    pub fn generate(dir: &Path, name: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
            KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let server = leaf(
            vec!["127.0.0.1".to_string()],
            "etcd",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(Vec::new(), "meridian", ExtendedKeyUsagePurpose::ClientAuth);
        let write = |file: &str, pem: &str| {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, pem).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server.0),
            server_key: write("server-key.pem", &server.1),
            client_cert: write("client.pem", &client.0),
            client_key: write("client-key.pem", &client.1),
        }
    }
}
