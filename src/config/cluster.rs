//! `cluster:`: this node's name and how it reaches etcd. With it, the data centers, checks,
//! zones and overrides come from etcd (through the cache in `state_dir/cluster/`) instead of
//! this file and `zones_dir`.

use super::diagnostics::Diagnostics;
use super::raw::RawCluster;
use super::source::{positive_duration, safe_name};
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `cluster:` settings, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name, in events and audit records. Default: the host name.
    pub node: String,
    /// etcd members, as `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// Every key Meridian reads or writes starts with this. Default `/meridian/`.
    pub prefix: String,
    /// How long one request to etcd may take before the member counts as unreachable.
    /// Default 2 s.
    pub timeout: Duration,
    /// The TTL of the lease this node's health reports are bound to: a node that stops (or
    /// loses etcd) drops out of every quorum this long after its last keep-alive. Default 10 s.
    pub lease_ttl: Duration,
    /// TLS towards etcd: the CA that signed the members' certificates (default: the system's
    /// roots) and this node's client certificate and key, when etcd asks for one.
    pub tls: Option<EtcdTls>,
    /// etcd's own authentication: a user and the file holding its password.
    pub auth: Option<EtcdAuth>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdAuth {
    pub username: String,
    /// Read when connecting, never kept in the configuration.
    pub password_file: PathBuf,
}

/// Where a node in cluster mode keeps its copy of the cluster's state: `state_dir/cluster`.
pub fn cache_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("cluster")
}

/// Reads `cluster:`; files are relative to `base`.
pub(crate) fn cluster(d: &mut Diagnostics, base: &Path, raw: &Spanned<RawCluster>) -> ClusterConfig {
    let raw = &raw.value;
    let node = match &raw.node {
        Some(n) => {
            safe_name(d, n, "cluster.node");
            n.value.clone()
        }
        None => super::settings::hostname(),
    };
    let etcd = &raw.etcd.value;
    if etcd.endpoints.value.is_empty() {
        d.at(
            &etcd.endpoints,
            "cluster.etcd.endpoints",
            "list at least one etcd member, like http://127.0.0.1:2379",
        );
    }
    let mut https = false;
    for e in &etcd.endpoints.value {
        match endpoint_scheme(&e.value) {
            Some(secure) => https |= secure,
            None => d.at(
                e,
                "cluster.etcd.endpoints",
                format_args!(
                    "`{}` is not an etcd member's URL (http://host:port or https://host:port)",
                    e.value
                ),
            ),
        }
    }
    let prefix = match &etcd.prefix {
        None => "/meridian/".to_string(),
        Some(p) if p.value.is_empty() || !p.value.ends_with('/') => {
            d.at(
                p,
                "cluster.etcd.prefix",
                format_args!("`{}` must end with `/`, like /meridian/", p.value),
            );
            p.value.clone()
        }
        Some(p) => p.value.clone(),
    };
    let timeout = positive_duration(
        d,
        &etcd.timeout,
        "cluster.etcd.timeout",
        " (like 2s)",
        Duration::from_secs(2),
    );
    let lease_ttl = positive_duration(
        d,
        &etcd.lease_ttl,
        "cluster.etcd.lease_ttl",
        " (like 10s)",
        Duration::from_secs(10),
    );
    if let Some(raw) = &etcd.lease_ttl {
        if lease_ttl < Duration::from_secs(1) || lease_ttl.subsec_nanos() != 0 {
            d.at(
                raw,
                "cluster.etcd.lease_ttl",
                "etcd's leases last whole seconds: give at least 1s, in seconds (like 10s)",
            );
        } else if lease_ttl < 2 * timeout {
            d.at(
                raw,
                "cluster.etcd.lease_ttl",
                format_args!(
                    "at least twice cluster.etcd.timeout ({timeout:?}): the lease is kept alive every third of it, and one keep-alive may take a timeout"
                ),
            );
        }
    }
    let file = |f: &Option<Spanned<String>>| f.as_ref().map(|f| base.join(&f.value));
    let (cert_file, key_file) = (file(&etcd.cert_file), file(&etcd.key_file));
    match (&etcd.cert_file, &etcd.key_file) {
        (Some(c), None) => d.at(c, "cluster.etcd.cert_file", "give key_file with it"),
        (None, Some(k)) => d.at(k, "cluster.etcd.key_file", "give cert_file with it"),
        _ => {}
    }
    let any_tls = etcd.ca_file.is_some() || cert_file.is_some();
    if any_tls && !https {
        d.at(
            &etcd.endpoints,
            "cluster.etcd.endpoints",
            "ca_file, cert_file and key_file are for https:// members; these are http://",
        );
    }
    let tls = https.then(|| EtcdTls {
        ca_file: file(&etcd.ca_file),
        cert_file,
        key_file,
    });
    let auth = match (&etcd.username, &etcd.password_file) {
        (Some(u), Some(p)) => Some(EtcdAuth {
            username: u.value.clone(),
            password_file: base.join(&p.value),
        }),
        (Some(u), None) => {
            d.at(u, "cluster.etcd.username", "give password_file with it");
            None
        }
        (None, Some(p)) => {
            d.at(p, "cluster.etcd.password_file", "give username with it");
            None
        }
        (None, None) => None,
    };
    ClusterConfig {
        node,
        endpoints: etcd.endpoints.value.iter().map(|e| e.value.clone()).collect(),
        prefix,
        timeout,
        lease_ttl,
        tls,
        auth,
    }
}

/// `Some(true)` for an https URL with a host and port, `Some(false)` for http, else `None`.
fn endpoint_scheme(url: &str) -> Option<bool> {
    let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':')?;
    (!host.is_empty() && !authority.contains('/') && port.parse::<u16>().is_ok()).then_some(secure)
}

#[cfg(test)]
mod tests {
    use super::endpoint_scheme;
    use crate::config::load;

    fn problems(cluster: &str) -> Vec<(Option<String>, String)> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meridian.yaml"), format!("cluster:\n{cluster}")).unwrap();
        match load(&dir.path().join("meridian.yaml")) {
            Ok(_) => Vec::new(),
            Err(p) => p.0.into_iter().map(|p| (p.field, p.message)).collect(),
        }
    }

    #[test]
    fn each_cluster_problem_names_its_field() {
        let cases = [
            (
                "  etcd: { endpoints: [] }",
                "cluster.etcd.endpoints",
                "list at least one",
            ),
            (
                "  etcd: { endpoints: [\"127.0.0.1:2379\"] }",
                "cluster.etcd.endpoints",
                "not an etcd member's URL",
            ),
            (
                "  etcd: { endpoints: [\"http://e:2379\"], prefix: /m }",
                "cluster.etcd.prefix",
                "must end with `/`",
            ),
            (
                "  etcd: { endpoints: [\"http://e:2379\"], timeout: 0s }",
                "cluster.etcd.timeout",
                "above zero",
            ),
            (
                "  etcd: { endpoints: [\"https://e:2379\"], cert_file: c.pem }",
                "cluster.etcd.cert_file",
                "give key_file",
            ),
            (
                "  etcd: { endpoints: [\"http://e:2379\"], ca_file: ca.pem }",
                "cluster.etcd.endpoints",
                "for https:// members",
            ),
            (
                "  etcd: { endpoints: [\"http://e:2379\"], username: m }",
                "cluster.etcd.username",
                "give password_file",
            ),
            (
                "  node: \"a b\"\n  etcd: { endpoints: [\"http://e:2379\"] }",
                "cluster.node.a b",
                "may hold only",
            ),
        ];
        for (yaml, field, words) in cases {
            let got = problems(yaml);
            assert!(
                got.iter()
                    .any(|(f, m)| f.as_deref() == Some(field) && m.contains(words)),
                "{yaml}: {got:?}"
            );
        }
        assert_eq!(problems("  etcd: { endpoints: [\"http://127.0.0.1:2379\"] }"), []);
    }

    /// With `cluster:`, the data centers and zones served are the cache's, not the file's.
    #[test]
    fn cluster_mode_serves_the_cache_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("zones")).unwrap();
        std::fs::write(
            dir.path().join("meridian.yaml"),
            "datacenters:\n  local: { endpoints: [{ address: 192.0.2.1 }] }\n\
             cluster: { node: n1, etcd: { endpoints: [\"http://127.0.0.1:2379\"] } }\n",
        )
        .unwrap();
        let path = dir.path().join("meridian.yaml");
        let c = load(&path).unwrap();
        assert!(
            c.datacenters.is_empty() && c.zones.is_empty(),
            "nothing cached yet"
        );
        let cache = dir.path().join("state/cluster/current");
        std::fs::create_dir_all(cache.join("zones")).unwrap();
        std::fs::write(
            cache.join("datacenters.yaml"),
            "datacenters:\n  shared: { endpoints: [{ address: 192.0.2.2 }] }\n",
        )
        .unwrap();
        let c = load(&path).unwrap();
        let names: Vec<&str> = c.datacenters.iter().map(|d| &*d.name).collect();
        assert_eq!(names, ["shared"]);
        assert_eq!(c.cluster.as_ref().unwrap().node, "n1");
        // `push` reads the file's own.
        let local = crate::config::load_local(&path).unwrap();
        let names: Vec<&str> = local.datacenters.iter().map(|d| &*d.name).collect();
        assert_eq!(names, ["local"]);
    }

    #[test]
    fn endpoints_are_urls_with_a_port() {
        assert_eq!(endpoint_scheme("http://127.0.0.1:2379"), Some(false));
        assert_eq!(endpoint_scheme("https://etcd-1.internal:2379/"), Some(true));
        assert_eq!(endpoint_scheme("http://[::1]:2379"), Some(false));
        assert_eq!(endpoint_scheme("127.0.0.1:2379"), None);
        assert_eq!(endpoint_scheme("http://127.0.0.1"), None);
        assert_eq!(endpoint_scheme("http://:2379"), None);
        assert_eq!(endpoint_scheme("http://host:2379/v3"), None);
    }
}
