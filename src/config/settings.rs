//! The server's own settings in `meridian.yaml`: `dns:`, `log:`, `health:`, `geoip:` and
//! `admin:`, each read into its typed form with its defaults. (`checks:` and `datacenters:`
//! have their own files.)

use super::diagnostics::{Diagnostics, did_you_mean};
use super::raw::{RawAdmin, RawAdminTls, RawDns, RawGeoip, RawHealth, RawLog};
use super::source::{parse_duration, positive_duration};
use crate::geo::GeoDb;
use serde_saphyr::Spanned;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `dns:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// UDP and TCP are both served on each address. Default: 127.0.0.1:5353.
    pub listen: Vec<SocketAddr>,
    /// UDP receive threads per address. Default: the number of CPUs.
    pub udp_workers: NonZeroUsize,
    /// Each UDP worker reads a socket of its own, the address's sockets sharing its port
    /// (SO_REUSEPORT): the kernel spreads senders over them by source address and port, so
    /// one sender is always served by one worker. `false`: the workers share one socket, for
    /// traffic from a few source ports (a load balancer or forwarder in front). Default: true.
    pub udp_reuseport: bool,
    /// A TCP connection with no query for this long is closed, and so is one whose answer
    /// cannot be written for this long (a client that does not read). Default: 10 s
    /// (RFC 7766 §6.2.3).
    pub tcp_idle_timeout: Duration,
    /// Open TCP connections beyond this are refused at accept. Default: 1024.
    pub tcp_max_connections: NonZeroUsize,
    /// After SIGTERM/SIGINT: UDP stops and listeners close at once; open TCP connections and
    /// admin requests get this long to finish, then the process exits anyway. Default: 5 s.
    pub shutdown_grace: Duration,
    /// Sent to clients that ask for it (NSID, RFC 5001), so operators can tell nodes apart.
    /// Default: none.
    pub nsid: Option<String>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `log:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Default: text.
    pub format: LogFormat,
    /// A tracing filter directive; default `info`.
    pub level: String,
}

/// `health:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Probes running at once, at most. Default 256.
    pub max_concurrent: NonZeroUsize,
    /// Hold state when every probe fails at once. Default true.
    pub partition_guard: bool,
    /// Longest wait at start for the first round of probes. Default: as long as a full round
    /// can take (the longest timeout for every `max_concurrent` probes, plus 100 ms).
    pub startup_wait: Option<Duration>,
    /// In cluster mode, how many of the nodes reporting on a target must see it down for the
    /// cluster to take it out. Default: a majority.
    pub quorum: Quorum,
}

/// `health.quorum`: how the nodes of a cluster decide that a target is down, from the views of
/// the live nodes that report on it (`n` of them; a node with no result yet does not vote).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quorum {
    /// More than half of them see it down.
    #[default]
    Majority,
    /// One of them sees it down.
    Any,
    /// All of them see it down.
    All,
    /// At least this many see it down (all of them, when fewer report).
    Nodes(NonZeroUsize),
}

impl Quorum {
    /// How many of `n` reporting nodes must see a target down.
    pub fn needed(self, n: usize) -> usize {
        match self {
            Quorum::Majority => n / 2 + 1,
            Quorum::Any => 1.min(n),
            Quorum::All => n,
            Quorum::Nodes(k) => k.get().min(n),
        }
    }
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quorum::Majority => f.write_str("majority"),
            Quorum::Any => f.write_str("any"),
            Quorum::All => f.write_str("all"),
            Quorum::Nodes(k) => write!(f, "{k}"),
        }
    }
}

/// What an admin token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Read,
    Admin,
}

/// A bearer token for the admin API, read from its file.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "AdminToken({}, {:?})", self.name, self.role)
    }
}

/// `admin:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default 127.0.0.1:8053; `None` when `off`.
    pub listen: Option<SocketAddr>,
    pub tokens: Vec<AdminToken>,
    /// Open admin connections, at most. Default 256.
    pub max_connections: NonZeroUsize,
    /// A request head must arrive within this of a connection opening or of its first byte.
    /// Default 10 s.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Host names (lowercase; `*.suffix` for any subdomain) that may reach the API besides
    /// loopback names and IP literals, checked while no tokens are configured. Default none.
    pub allowed_hosts: Vec<String>,
    /// HTTPS with this certificate and key; `None` (the default): plain HTTP.
    pub tls: Option<AdminTls>,
}

/// `admin.tls`: the PEM files the admin API serves HTTPS with (relative paths are read from
/// the configuration's directory). Checked at every load; the listener reads them again
/// whenever they change on disk, so a renewed certificate needs no restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTls {
    /// The certificate chain, the server's own certificate first.
    pub cert_file: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key_file: PathBuf,
}

/// Why `admin.tls`'s files cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
        key: bool,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("the key in {} cannot sign: {source}", path.display())]
    BadKey { path: PathBuf, source: rustls::Error },
    #[error("the certificate in {} cannot be read: {source}", path.display())]
    BadCertificate { path: PathBuf, source: rustls::Error },
    #[error("{} is not the key of the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
}

impl TlsFilesError {
    /// The field at fault: `admin.tls.cert_file` or `admin.tls.key_file`.
    pub fn field(&self) -> &'static str {
        match self {
            TlsFilesError::Read { key: false, .. }
            | TlsFilesError::NoCertificate { .. }
            | TlsFilesError::BadCertificate { .. } => "admin.tls.cert_file",
            _ => "admin.tls.key_file",
        }
    }
}

impl AdminTls {
    /// Reads and checks the pair: a certificate chain, a key rustls can sign with, and the
    /// key belonging to the first certificate.
    pub fn read(&self) -> Result<rustls::sign::CertifiedKey, TlsFilesError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |path: &PathBuf, key| {
            std::fs::read(path).map_err(|source| TlsFilesError::Read {
                path: path.clone(),
                source,
                key,
            })
        };
        let (cert_pem, key_pem) = (read(&self.cert_file, false)?, read(&self.key_file, true)?);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .ok()
            .filter(|c: &Vec<_>| !c.is_empty())
            .ok_or_else(|| TlsFilesError::NoCertificate {
                path: self.cert_file.clone(),
            })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsFilesError::NoKey {
            path: self.key_file.clone(),
        })?;
        let signer = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|source| TlsFilesError::BadKey {
                path: self.key_file.clone(),
                source,
            })?;
        let pair = rustls::sign::CertifiedKey::new(chain, signer);
        match pair.keys_match() {
            Ok(()) => Ok(pair),
            Err(rustls::Error::InconsistentKeys(_)) => Err(TlsFilesError::Mismatch {
                cert: self.cert_file.clone(),
                key: self.key_file.clone(),
            }),
            Err(source) => Err(TlsFilesError::BadCertificate {
                path: self.cert_file.clone(),
                source,
            }),
        }
    }
}

// === dns ===

/// Reads `dns:`.
pub(crate) fn dns(d: &mut Diagnostics, raw: &RawDns) -> DnsConfig {
    let mut listen = Vec::new();
    for addr in raw.listen.iter().flatten() {
        match addr.value.parse::<SocketAddr>() {
            Ok(a) => listen.push(a),
            Err(_) => d.at(
                addr,
                "dns.listen",
                format_args!(
                    "`{}` is not an address:port (like 127.0.0.1:53 or [::1]:53)",
                    addr.value
                ),
            ),
        }
    }
    match &raw.listen {
        None => listen.push(SocketAddr::from(([127, 0, 0, 1], 5353))),
        // Conflicts are looked for once every entry parses (indexes then match).
        Some(entries) if entries.len() == listen.len() => {
            for (i, problem) in listen_problems(&listen) {
                d.at(&entries[i], "dns.listen", problem);
            }
        }
        Some(_) => {}
    }
    let cpus = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    DnsConfig {
        listen,
        udp_workers: count(d, &raw.udp_workers, "dns.udp_workers", Some(256), cpus),
        udp_reuseport: raw.udp_reuseport.as_ref().is_none_or(|r| r.value),
        tcp_idle_timeout: duration(d, &raw.tcp_idle_timeout, "dns.tcp_idle_timeout", 10),
        tcp_max_connections: count(
            d,
            &raw.tcp_max_connections,
            "dns.tcp_max_connections",
            None,
            nonzero(1024),
        ),
        shutdown_grace: duration(d, &raw.shutdown_grace, "dns.shutdown_grace", 5),
        nsid: match &raw.nsid {
            None => None,
            Some(n) if n.value == "hostname" => Some(hostname()),
            Some(n) if n.value.is_empty() || n.value.len() > 255 => {
                d.at(n, "dns.nsid", "between 1 and 255 characters, or `hostname`");
                None
            }
            Some(n) => Some(n.value.clone()),
        },
    }
}

/// Why a listen list cannot bind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListenProblem {
    #[error("{0} is an IPv4-mapped address: list it as {1}")]
    Ipv4Mapped(SocketAddr, SocketAddr),
    #[error("{0} is listed twice")]
    Twice(SocketAddr),
    #[error(
        "{0} overlaps {1}: the wildcard address already takes port {port} on every address of its \
         family, so both cannot bind; list either the wildcard or the specific addresses",
        port = .0.port()
    )]
    Overlaps(SocketAddr, SocketAddr),
}

/// Listen lists that cannot bind, found without binding (so `check` may run beside a running
/// server): an address listed twice, a wildcard and a specific address of the same family on
/// the same port (the second bind fails), an IPv4-mapped IPv6 address (IPv6 sockets are
/// IPv6-only). Port 0 takes a free port each time, so it never conflicts. Returns, per
/// offending entry, its index and the problem.
pub fn listen_problems(addrs: &[SocketAddr]) -> Vec<(usize, ListenProblem)> {
    let mut problems = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        if let IpAddr::V6(v6) = a.ip()
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            problems.push((i, ListenProblem::Ipv4Mapped(*a, SocketAddr::from((v4, a.port())))));
            continue;
        }
        if a.port() == 0 {
            continue;
        }
        let earlier = addrs[..i].iter().find(|b| {
            b.port() == a.port() && b.is_ipv4() == a.is_ipv4() && {
                b.ip() == a.ip() || b.ip().is_unspecified() || a.ip().is_unspecified()
            }
        });
        match earlier {
            Some(b) if b.ip() == a.ip() => problems.push((i, ListenProblem::Twice(*a))),
            Some(b) => problems.push((i, ListenProblem::Overlaps(*a, *b))),
            None => {}
        }
    }
    problems
}

/// This host's name (for `dns.nsid: hostname`).
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

// === log ===

/// Reads `log:`.
pub(crate) fn log(d: &mut Diagnostics, raw: &RawLog) -> LogConfig {
    let format = match raw.format.as_ref().map(|f| (f, f.value.as_str())) {
        None | Some((_, "text")) => LogFormat::Text,
        Some((_, "json")) => LogFormat::Json,
        Some((f, other)) => {
            d.at(
                f,
                "log.format",
                format_args!(
                    "`{other}` is neither `text` nor `json`{}",
                    did_you_mean(other, ["text", "json"])
                ),
            );
            LogFormat::Text
        }
    };
    if let Some(l) = &raw.level
        && tracing_subscriber::EnvFilter::try_new(&l.value).is_err()
    {
        d.at(
            l,
            "log.level",
            format_args!("`{}` is not a level or filter (like info, debug)", l.value),
        );
    }
    LogConfig {
        format,
        level: raw
            .level
            .as_ref()
            .map_or_else(|| "info".into(), |l| l.value.clone()),
    }
}

// === health ===

/// Reads `health:`.
pub(crate) fn health(d: &mut Diagnostics, raw: &RawHealth) -> HealthConfig {
    HealthConfig {
        max_concurrent: count(
            d,
            &raw.max_concurrent,
            "health.max_concurrent",
            None,
            nonzero(256),
        ),
        partition_guard: raw.partition_guard.as_ref().is_none_or(|g| g.value),
        startup_wait: raw.startup_wait.as_ref().and_then(|w| {
            parse_duration(&w.value)
                .map_err(|e| d.at(w, "health.startup_wait", e))
                .ok()
        }),
        quorum: raw.quorum.as_ref().map_or(Quorum::default(), |q| {
            quorum(&q.value).unwrap_or_else(|| {
                d.at(
                    q,
                    "health.quorum",
                    format_args!(
                        "`{}` is not a quorum: say majority, any, all, or a number of nodes (like 2){}",
                        q.value,
                        did_you_mean(&q.value, ["majority", "any", "all"])
                    ),
                );
                Quorum::default()
            })
        }),
    }
}

fn quorum(text: &str) -> Option<Quorum> {
    Some(match text {
        "majority" => Quorum::Majority,
        "any" => Quorum::Any,
        "all" => Quorum::All,
        n => Quorum::Nodes(n.parse().ok()?),
    })
}

// === geoip ===

/// Opens `geoip.database`, or keeps `previous` when it is the same file, unchanged; and
/// reads how often to look for a replacement (default 5 s).
pub(crate) fn geoip(
    d: &mut Diagnostics,
    base: &Path,
    raw: Option<&RawGeoip>,
    previous: Option<&Arc<GeoDb>>,
) -> (Option<Arc<GeoDb>>, Duration) {
    let db = raw.and_then(|g| {
        let file = base.join(&g.database.value);
        let identity = crate::file_id::FileId::of(&file);
        if let Some(prev) =
            previous.filter(|p| p.path == file && p.identity == identity && identity.is_some())
        {
            return Some(prev.clone());
        }
        GeoDb::open(&file)
            .map(Arc::new)
            .map_err(|e| d.at(&g.database, "geoip.database", e))
            .ok()
    });
    let interval = raw.map_or(&None, |g| &g.check_interval);
    let interval = positive_duration(d, interval, "geoip.check_interval", "", Duration::from_secs(5));
    (db, interval)
}

// === admin ===

/// `admin.listen`: the default, `off` (None), or an address.
pub(crate) fn admin_listen(d: &mut Diagnostics, raw: &RawAdmin) -> Option<SocketAddr> {
    match &raw.listen {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8053))),
        Some(l) if l.value == "off" => None,
        Some(l) => l
            .value
            .parse()
            .map_err(|_| {
                d.at(
                    l,
                    "admin.listen",
                    format_args!("`{}` is not an address:port (or `off`)", l.value),
                )
            })
            .ok(),
    }
}

/// Reads `admin:`; token files are read relative to `base`, and `admin.tls`'s pair is read and
/// checked when `read_tls`.
pub(crate) fn admin(d: &mut Diagnostics, base: &Path, raw: &RawAdmin, read_tls: bool) -> AdminConfig {
    let listen = admin_listen(d, raw);
    let mut tokens = Vec::new();
    for t in raw.tokens.iter().map(|t| &t.value) {
        let role = match t.role.value.as_str() {
            "read" => Role::Read,
            "admin" => Role::Admin,
            other => {
                d.at(
                    &t.role,
                    "admin.tokens",
                    format_args!(
                        "role `{other}` is neither `read` nor `admin`{}",
                        did_you_mean(other, ["read", "admin"])
                    ),
                );
                continue;
            }
        };
        let file = base.join(&t.token_file.value);
        match std::fs::read_to_string(&file) {
            Ok(secret) if secret.trim().len() >= 16 => tokens.push(AdminToken {
                name: t.name.value.clone(),
                role,
                secret: secret.trim().to_string(),
            }),
            Ok(_) => d.at(
                &t.token_file,
                "admin.tokens",
                format_args!("{} holds fewer than 16 characters", file.display()),
            ),
            Err(e) => d.at(
                &t.token_file,
                "admin.tokens",
                format_args!("cannot read {}: {e}", file.display()),
            ),
        }
    }
    let max_connections = count(
        d,
        &raw.max_connections,
        "admin.max_connections",
        None,
        nonzero(256),
    );
    let timeout = |d: &mut Diagnostics, value, field, secs| {
        positive_duration(d, value, field, " (like 10s)", Duration::from_secs(secs))
    };
    let tls = raw.tls.as_ref().map(|t| admin_tls(d, base, t, read_tls));
    AdminConfig {
        listen,
        tokens,
        tls,
        max_connections,
        header_timeout: timeout(d, &raw.header_timeout, "admin.header_timeout", 10),
        idle_timeout: timeout(d, &raw.idle_timeout, "admin.idle_timeout", 60),
        allowed_hosts: raw
            .allowed_hosts
            .iter()
            .filter_map(|h| {
                let name = h.value.trim_end_matches('.').to_ascii_lowercase();
                let bare = name.strip_prefix("*.").unwrap_or(&name);
                let ok = !bare.is_empty()
                    && bare.split('.').all(|l| {
                        !l.is_empty()
                            && l.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    });
                if !ok {
                    d.at(
                        h,
                        "admin.allowed_hosts",
                        format_args!(
                            "`{}` is not a host name (like meridian.internal or *.example.net)",
                            h.value
                        ),
                    );
                }
                ok.then_some(name)
            })
            .collect(),
    }
}

/// Reads `admin.tls` and (when `read`) checks its files now, so `meridian check`, the start
/// and a reload catch a bad pair before the listener would.
fn admin_tls(d: &mut Diagnostics, base: &Path, raw: &Spanned<RawAdminTls>, read: bool) -> AdminTls {
    let t = &raw.value;
    let tls = AdminTls {
        cert_file: base.join(&t.cert_file.value),
        key_file: base.join(&t.key_file.value),
    };
    if let Some(e) = read.then(|| tls.read().err()).flatten() {
        let at = if e.field() == "admin.tls.cert_file" {
            &t.cert_file
        } else {
            &t.key_file
        };
        d.at(at, e.field(), e);
    }
    tls
}

// === shared readers ===

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("a nonzero default")
}

/// A count of at least 1 (and at most `max`, if given); `default` when absent (or wrong: a
/// problem fails the load, so the stand-in is never used).
fn count(
    d: &mut Diagnostics,
    value: &Option<Spanned<u64>>,
    field: &str,
    max: Option<usize>,
    default: NonZeroUsize,
) -> NonZeroUsize {
    let Some(v) = value else { return default };
    let n = NonZeroUsize::new(v.value as usize).filter(|n| max.is_none_or(|m| n.get() <= m));
    n.unwrap_or_else(|| {
        match max {
            Some(m) => d.say(v, Some(field), format_args!("{field} must be between 1 and {m}")),
            None => d.say(v, Some(field), format_args!("{field} must be at least 1")),
        }
        default
    })
}

/// Any duration (zero allowed), `default_secs` when absent or unreadable.
fn duration(
    d: &mut Diagnostics,
    value: &Option<Spanned<String>>,
    field: &str,
    default_secs: u64,
) -> Duration {
    let default = Duration::from_secs(default_secs);
    let Some(v) = value else { return default };
    parse_duration(&v.value).unwrap_or_else(|e| {
        d.at(v, field, e);
        default
    })
}

#[cfg(test)]
mod tests {
    use super::{Quorum, listen_problems};
    use std::net::SocketAddr;

    /// `admin.tls` reads a pair relative to the configuration, and each bad pair is a problem
    /// at the file at fault, with its field path.
    #[test]
    fn admin_tls_reads_a_pair_and_points_at_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        let pair = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
        };
        pair("a");
        pair("b");
        let load = |cert: &str, key: &str| {
            let path = dir.path().join("meridian.yaml");
            let text = format!("admin:\n  tls:\n    cert_file: {cert}\n    key_file: {key}\n");
            std::fs::write(&path, text).unwrap();
            crate::config::load(&path).map(|c| c.admin.tls).map_err(|p| {
                p.0.into_iter()
                    .map(|p| (p.field.unwrap_or_default(), p.line, p.message))
                    .collect::<Vec<_>>()
            })
        };
        let tls = load("a.pem", "a-key.pem").unwrap().expect("tls set");
        assert_eq!(tls.cert_file, dir.path().join("a.pem"));
        assert_eq!(tls.key_file, dir.path().join("a-key.pem"));
        for (cert, key, field, line, says) in [
            ("gone.pem", "a-key.pem", "admin.tls.cert_file", 3, "cannot read"),
            ("a.pem", "gone.pem", "admin.tls.key_file", 4, "cannot read"),
            (
                "a-key.pem",
                "a-key.pem",
                "admin.tls.cert_file",
                3,
                "no PEM certificate",
            ),
            ("a.pem", "a.pem", "admin.tls.key_file", 4, "no PEM private key"),
            (
                "a.pem",
                "b-key.pem",
                "admin.tls.key_file",
                4,
                "is not the key of the certificate",
            ),
        ] {
            let problems = load(cert, key).expect_err(cert);
            assert!(
                problems.len() == 1
                    && problems[0].0 == field
                    && problems[0].1 == line
                    && problems[0].2.contains(says),
                "{cert} {key}: {problems:?}"
            );
        }
        std::fs::write(
            dir.path().join("meridian.yaml"),
            "admin: { tls: { cert_file: a.pem } }\n",
        )
        .unwrap();
        let problems = crate::config::load(&dir.path().join("meridian.yaml")).expect_err("no key_file");
        assert!(
            problems.0.iter().any(|p| p.message.contains("key_file")),
            "{problems:?}"
        );
    }

    #[test]
    fn quorum_rules_read_and_a_bad_one_names_its_field() {
        let load = |quorum: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("meridian.yaml");
            std::fs::create_dir(dir.path().join("zones")).unwrap();
            std::fs::write(&path, format!("health: {{ quorum: {quorum} }}\n")).unwrap();
            crate::config::load(&path).map(|c| c.health.quorum).map_err(|p| {
                p.0.into_iter()
                    .map(|p| (p.field, p.line, p.message))
                    .collect::<Vec<_>>()
            })
        };
        let two = Quorum::Nodes(std::num::NonZeroUsize::new(2).unwrap());
        for (text, want) in [
            ("majority", Quorum::Majority),
            ("any", Quorum::Any),
            ("all", Quorum::All),
            ("2", two),
        ] {
            assert_eq!(load(text), Ok(want), "{text}");
            assert_eq!(want.to_string(), text);
        }
        for bad in ["most", "0", "-1", "1.5"] {
            let problems = load(bad).expect_err(bad);
            assert!(
                problems
                    .iter()
                    .any(|(f, line, m)| f.as_deref() == Some("health.quorum")
                        && *line == 1
                        && m.contains("not a quorum")),
                "{bad}: {problems:?}"
            );
        }
        assert_eq!((Quorum::Majority.needed(3), Quorum::Majority.needed(2)), (2, 2));
        assert_eq!((Quorum::Any.needed(0), two.needed(1)), (0, 1));
    }

    fn problems(list: &[&str]) -> Vec<(usize, String)> {
        let addrs: Vec<SocketAddr> = list.iter().map(|a| a.parse().unwrap()).collect();
        listen_problems(&addrs)
            .into_iter()
            .map(|(i, p)| (i, p.to_string()))
            .collect()
    }

    #[test]
    fn listen_lists_that_cannot_bind() {
        // (list, index of the offending entry, words of the problem)
        let bad: &[(&[&str], usize, &str)] = &[
            (&["127.0.0.1:53", "127.0.0.1:53"], 1, "listed twice"),
            (&["0.0.0.0:53", "127.0.0.1:53"], 1, "overlaps 0.0.0.0:53"),
            (&["127.0.0.1:53", "0.0.0.0:53"], 1, "overlaps 127.0.0.1:53"),
            (&["[::]:53", "[::1]:53"], 1, "overlaps [::]:53"),
            (&["[::ffff:192.0.2.1]:53"], 0, "list it as 192.0.2.1:53"),
        ];
        for (list, index, words) in bad {
            let p = problems(list);
            assert_eq!(p.len(), 1, "{list:?}: {p:?}");
            assert_eq!(p[0].0, *index, "{list:?}");
            assert!(p[0].1.contains(words), "{list:?}: {}", p[0].1);
        }
        let good: &[&[&str]] = &[
            &["0.0.0.0:53", "[::]:53"],
            &["0.0.0.0:53", "[::1]:53"],
            &["127.0.0.1:53", "127.0.0.2:53", "[::1]:53"],
            &["127.0.0.1:0", "127.0.0.1:0", "0.0.0.0:0"],
            &["0.0.0.0:53", "127.0.0.1:5353"],
        ];
        for list in good {
            assert!(problems(list).is_empty(), "{list:?}");
        }
    }
}
