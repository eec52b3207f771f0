//! Loading `meridian.yaml` and the zone files into validated model types.
//!
//! `raw` mirrors the files for serde; `validate` checks them and builds the model. Every problem
//! carries `file:line:col`; loading reports all problems it can find, not only the first.

pub mod gslb;
pub mod raw;
pub mod source;
pub mod validate;
pub mod zonefile;

use crate::geo::GeoDb;
use crate::model::Zone;
use crate::model::gslb::Datacenter;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One thing wrong in a file, at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every problem found while loading; never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Settings given on the command line. They beat the file's at start and at every reload, so a
/// reload compares like with like (a `--listen` address is not a change of `dns.listen`).
#[derive(Clone, Debug, Default)]
pub struct CommandLine {
    /// `--listen` (replaces `dns.listen`).
    pub listen: Option<Vec<SocketAddr>>,
    /// `--admin-listen` (`Some(None)`: off).
    pub admin_listen: Option<Option<SocketAddr>>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

impl CommandLine {
    pub fn apply(&self, config: &mut Config) {
        if let Some(listen) = &self.listen {
            config.dns.listen = listen.clone();
        }
        if let Some(admin) = self.admin_listen {
            config.admin.listen = admin;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
    }
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

/// `dns:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// UDP and TCP are both served on each address. Default: 127.0.0.1:5353.
    pub listen: Vec<SocketAddr>,
    /// UDP receive threads per address. Default: the number of CPUs.
    pub udp_workers: NonZeroUsize,
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
}

/// What an admin token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Read,
    Admin,
}

/// A bearer token for the admin API, read from its file.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Token({}, {:?})", self.name, self.role)
    }
}

/// `admin:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default 127.0.0.1:8053; `None` when `off`.
    pub listen: Option<SocketAddr>,
    pub tokens: Vec<Token>,
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
}

/// A whole validated configuration: the server settings and every zone.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub dns: DnsConfig,
    pub log: LogConfig,
    pub zones_dir: PathBuf,
    /// Where runtime state (overrides) is kept. Default `state` beside the config file.
    pub state_dir: PathBuf,
    pub admin: AdminConfig,
    pub zones: Vec<Zone>,
    /// `datacenters:`, in file order (a `DcId` is an index here).
    pub datacenters: Vec<Datacenter>,
    /// The opened `geoip.database`.
    pub geoip: Option<Arc<GeoDb>>,
    /// How often the database file is checked for replacement. Default 5 s.
    pub geoip_check_interval: Duration,
    pub health: HealthConfig,
}

impl Config {
    /// How long a full round of `probes` can take: every probe timing out, `max_concurrent` at
    /// a time, plus a little slack.
    pub fn first_round_bound(&self, probes: usize) -> Duration {
        let waves = probes.div_ceil(self.health.max_concurrent.get()).max(1) as u32;
        self.longest_check_timeout() * waves + Duration::from_millis(100)
    }

    /// The longest timeout of any check in use.
    pub fn longest_check_timeout(&self) -> Duration {
        self.datacenters
            .iter()
            .flat_map(|d| &d.endpoints)
            .filter_map(|e| e.check.as_ref().map(|c| c.timeout))
            .max()
            .unwrap_or_default()
    }
}

/// Reads and validates `path` and every file it points at.
pub fn load(path: &Path) -> Result<Config, Problems> {
    validate::load(path, None, &Overlay::default())
}

pub use validate::{DEFAULT_SOA_SERIAL, Overlay};

/// Loads the configuration as it would be with `overlay` applied on top of the files on disk.
pub fn load_overlay(
    path: &Path,
    previous: Option<&Arc<GeoDb>>,
    overlay: &Overlay,
) -> Result<Config, Problems> {
    validate::load(path, previous, overlay)
}
