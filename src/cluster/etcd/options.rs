//! How to reach etcd: the members, TLS towards them, and the user to authenticate as. Files
//! named here are read when connecting, and a file that cannot be read or holds the wrong thing
//! is an error that names it.

use super::EtcdError;
use crate::config::ClusterConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What [`Etcd::connect`](super::Etcd::connect) needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The members, as `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// How long one request (or a connection, or a TLS handshake) may take.
    pub timeout: Duration,
    /// For `https://` members: whom to trust and what to show. `None` trusts the system's
    /// roots and shows no client certificate.
    pub tls: Option<Tls>,
    /// etcd's own authentication, when etcd has it enabled.
    pub auth: Option<Auth>,
}

/// TLS towards `https://` members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of the CA (or CAs) that signed the members' certificates; `None`: the system's
    /// roots.
    pub ca: Option<PathBuf>,
    /// PEM files of this node's client certificate (with its chain) and private key, for an
    /// etcd started with `--client-cert-auth`. Both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A user of etcd's authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub username: String,
    /// The file holding the password (a trailing line break is not part of it).
    pub password_file: PathBuf,
}

impl From<&ClusterConfig> for Options {
    fn from(c: &ClusterConfig) -> Options {
        Options {
            endpoints: c.endpoints.clone(),
            timeout: c.timeout,
            tls: c.tls.as_ref().map(|t| Tls {
                ca: t.ca_file.clone(),
                cert: t.cert_file.clone(),
                key: t.key_file.clone(),
            }),
            auth: c.auth.as_ref().map(|a| Auth {
                username: a.username.clone(),
                password_file: a.password_file.clone(),
            }),
        }
    }
}

/// A file's bytes, or an error that names it.
pub(super) fn read(path: &Path, what: &str) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|e| bad_file(path, format!("cannot read the {what}: {e}")))
}

/// A file that does not hold what it should.
pub(super) fn bad_file(path: &Path, problem: String) -> EtcdError {
    EtcdError::File {
        path: path.to_path_buf(),
        problem,
    }
}

/// The password in `auth.password_file`, without its trailing line break.
pub(super) fn password(auth: &Auth) -> Result<String, EtcdError> {
    let path = &auth.password_file;
    let bytes = read(path, "etcd password file")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| bad_file(path, "the etcd password file is not UTF-8 text".into()))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(bad_file(
            path,
            format!(
                "the etcd password file is empty: write the password of etcd user `{}` in it",
                auth.username
            ),
        ));
    }
    Ok(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn a_password_file_loses_its_line_break_only() {
        let dir = tempfile::tempdir().unwrap();
        let auth = |path: PathBuf| Auth {
            username: "meridian".into(),
            password_file: path,
        };
        let p = password(&auth(tmp(&dir, "pw-lf", b"s3cret \n"))).unwrap();
        assert_eq!(p, "s3cret ");
        let p = password(&auth(tmp(&dir, "pw-crlf", b"s3cret\r\n"))).unwrap();
        assert_eq!(p, "s3cret");
        let e = password(&auth(tmp(&dir, "pw-empty", b"\n"))).unwrap_err();
        assert!(
            e.to_string().contains("pw-empty") && e.to_string().contains("empty"),
            "{e}"
        );
        let missing = dir.path().join("no-such-file");
        let e = password(&auth(missing.clone())).unwrap_err();
        assert!(
            matches!(&e, EtcdError::File { path, .. } if *path == missing),
            "{e}"
        );
    }

    #[test]
    fn options_come_from_the_cluster_section() {
        use crate::config::{EtcdAuth, EtcdTls};
        let config = ClusterConfig {
            node: "a".into(),
            endpoints: vec!["https://10.0.0.1:2379".into()],
            prefix: "/meridian/".into(),
            timeout: Duration::from_secs(3),
            lease_ttl: Duration::from_secs(10),
            tls: Some(EtcdTls {
                ca_file: Some("/etc/meridian/etcd-ca.pem".into()),
                cert_file: Some("/etc/meridian/etcd.pem".into()),
                key_file: Some("/etc/meridian/etcd-key.pem".into()),
            }),
            auth: Some(EtcdAuth {
                username: "meridian".into(),
                password_file: "/etc/meridian/etcd.password".into(),
            }),
        };
        let options = Options::from(&config);
        assert_eq!(options.endpoints, config.endpoints);
        assert_eq!(options.timeout, Duration::from_secs(3));
        let tls = options.tls.unwrap();
        assert_eq!(tls.ca, Some("/etc/meridian/etcd-ca.pem".into()));
        assert_eq!(tls.cert, Some("/etc/meridian/etcd.pem".into()));
        assert_eq!(tls.key, Some("/etc/meridian/etcd-key.pem".into()));
        let auth = options.auth.unwrap();
        assert_eq!(auth.username, "meridian");
        assert_eq!(auth.password_file, PathBuf::from("/etc/meridian/etcd.password"));
    }
}
