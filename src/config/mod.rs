//! Loading `meridian.yaml` and the zone files into validated model types.
//!
//! One file per part of the configuration, named after its YAML key, each turning its `raw`
//! mirror into model types: `settings` (`dns:`, `log:`, `health:`, `geoip:`, `admin:`),
//! `checks`, `datacenters`, `gslb` (load-balanced names in zone files) and `zones` (zone files,
//! their records and imports). Below them: `source` (reading files, YAML, durations),
//! `zonefile` (RFC 1035 text), `raw` (serde shapes) and `diagnostics` (problems and the field
//! each names). Every problem carries `file:line:col`; loading reports all problems it can
//! find, not only the first.

pub mod checks;
pub mod cluster;
pub mod datacenters;
pub mod diagnostics;
pub mod gslb;
pub mod raw;
mod records;
pub mod settings;
pub mod source;
pub mod zonefile;
pub mod zones;

pub use cluster::{ClusterConfig, EtcdAuth, EtcdTls};
pub use diagnostics::{Problem, Problems};
pub use settings::{
    AdminConfig, AdminTls, AdminToken, DnsConfig, HealthConfig, LogConfig, LogFormat, Quorum, Role,
    TlsFilesError, listen_problems,
};
pub use source::{FileDigests, Overlay};
pub use zones::{DEFAULT_SOA_SERIAL, Known};

use crate::geo::GeoDb;
use crate::model::Zone;
use crate::model::gslb::Datacenter;
use diagnostics::Diagnostics;
use raw::{RawConfig, RawShared};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// `cluster:`: the data centers, checks, zones and overrides are the cluster's (read from
    /// the cache in `state_dir/cluster/`, which follows etcd), not this file's.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Where the overrides in force are kept: `state_dir`, or in cluster mode the cluster cache
    /// (the overrides are the cluster's).
    pub fn overrides_dir(&self) -> PathBuf {
        match &self.cluster {
            Some(_) => cluster::cache_dir(&self.state_dir),
            None => self.state_dir.clone(),
        }
    }

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
    load_overlay(path, None, &Overlay::default())
}

/// Loads the configuration as it would be with `overlay` applied on top of the files on disk.
/// `previous` is the GeoIP database in use: kept, not reopened, when its file is unchanged.
/// With `cluster:`, the data centers, checks and zones are read from the cluster cache.
pub fn load_overlay(
    path: &Path,
    previous: Option<&Arc<GeoDb>>,
    overlay: &Overlay,
) -> Result<Config, Problems> {
    load_known(path, previous, overlay, &Known::default())
}

/// Like [`load_overlay`], for a server serving the zones `known`: a zone file that reads the
/// same as one of them (its text, its imports, and for `gslb:` names the data centers) is not
/// parsed again and comes out `unchanged`, with no nodes. What spans zones (two files naming
/// the same zone) is checked as always.
pub fn load_known(
    path: &Path,
    previous: Option<&Arc<GeoDb>>,
    overlay: &Overlay,
    known: &Known,
) -> Result<Config, Problems> {
    load_from(path, previous, overlay, Shared::AsConfigured, known)
}

/// Where the admin API listens, as a client of it needs to know: its address and whether it
/// serves HTTPS (`admin.tls` is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminListen {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// Reads only `admin.listen` of the configuration at `path` (None when it is `off`) and whether
/// `admin.tls` is set: what a client of the admin API needs, without the zones, token files,
/// certificate files or GeoIP database a full load reads (an operator's shell may not be
/// allowed to read the token files or the key).
pub fn load_admin_listen(path: &Path) -> Result<Option<AdminListen>, Problems> {
    let text = source::read_text(path, &Overlay::default()).map_err(|p| Problems(vec![p]))?;
    let raw: RawConfig = source::parse_yaml(path, &text).map_err(|p| Problems(vec![p]))?;
    let mut d = Diagnostics::new(path);
    let tls = raw.admin.tls.is_some();
    let listen = settings::admin_listen(&mut d, &raw.admin).map(|addr| AdminListen { addr, tls });
    d.finish(listen).map_err(Problems)
}

/// Loads `path` with its own `checks:`, `datacenters:` and `zones_dir`, even when it has a
/// `cluster:` section: what `meridian cluster push` sends.
pub fn load_local(path: &Path) -> Result<Config, Problems> {
    load_from(
        path,
        None,
        &Overlay::default(),
        Shared::FromThisFile,
        &Known::default(),
    )
}

/// Where the shared part of the configuration (data centers, checks, zones) comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shared {
    /// From the cluster cache with `cluster:`, else from the file and `zones_dir`.
    AsConfigured,
    /// From the file and `zones_dir`, whatever `cluster:` says.
    FromThisFile,
}

/// The file in the cluster cache holding `checks:` and `datacenters:` (in the set of
/// documents in use, `current`).
pub fn shared_file(state_dir: &Path) -> PathBuf {
    cluster::cache_dir(state_dir).join("current/datacenters.yaml")
}

/// The directory in the cluster cache holding one file per zone.
pub fn shared_zones_dir(state_dir: &Path) -> PathBuf {
    cluster::cache_dir(state_dir).join("current/zones")
}

fn load_from(
    path: &Path,
    previous: Option<&Arc<GeoDb>>,
    overlay: &Overlay,
    shared: Shared,
    known: &Known,
) -> Result<Config, Problems> {
    let text = source::read_text(path, overlay).map_err(|p| Problems(vec![p]))?;
    let raw: RawConfig = source::parse_yaml(path, &text).map_err(|p| Problems(vec![p]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut d = Diagnostics::new(path);
    let state_dir = base.join(raw.state_dir.as_ref().map_or("state", |z| z.value.as_str()));
    let cluster = raw.cluster.as_ref().map(|c| cluster::cluster(&mut d, base, c));
    // In cluster mode the shared part is the cluster's: what this file says of it is not
    // served (it may be there for `cluster push`).
    let from_cluster = cluster.is_some() && shared == Shared::AsConfigured;
    let shared_raw = if from_cluster {
        let file = shared_file(&state_dir);
        match read_shared(&file, overlay) {
            Ok(r) => Some((file, r)),
            Err(p) => {
                d.append(vec![p]);
                Some((file, RawShared::default()))
            }
        }
    } else {
        None
    };

    // In file order, so problems come out in the order they are written.
    let dns = settings::dns(&mut d, &raw.dns);
    let log = settings::log(&mut d, &raw.log);
    let mut refused_locations = std::collections::HashSet::new();
    let datacenters = match &shared_raw {
        None => {
            let checks = checks::checks(&mut d, base, &raw.checks.0);
            datacenters::datacenters(&mut d, &raw.datacenters.0, &checks, &mut refused_locations)
        }
        Some((file, shared)) => {
            let mut ds = Diagnostics::new(file);
            let checks = checks::checks(&mut ds, base, &shared.checks.0);
            let datacenters =
                datacenters::datacenters(&mut ds, &shared.datacenters.0, &checks, &mut refused_locations);
            d.append(ds.into_problems());
            datacenters
        }
    };
    let health = settings::health(&mut d, &raw.health);
    let (geoip, geoip_check_interval) = settings::geoip(&mut d, base, raw.geoip.as_ref(), previous);
    let admin = settings::admin(&mut d, base, &raw.admin, !overlay.admin_tls_unread);
    let zones_dir = if from_cluster {
        shared_zones_dir(&state_dir)
    } else {
        base.join(raw.zones_dir.as_ref().map_or("zones", |z| z.value.as_str()))
    };
    let cx = gslb::GslbContext::new(&datacenters, raw.geoip.is_some(), &refused_locations);
    let zones = if from_cluster && !zones_dir.exists() {
        // No zone has reached this node yet.
        Vec::new()
    } else {
        zones::zones(&mut d, &zones_dir, &cx, overlay, known)
    };

    let config = Config {
        path: path.to_path_buf(),
        dns,
        log,
        zones_dir,
        state_dir,
        admin,
        zones,
        datacenters,
        geoip,
        geoip_check_interval,
        health,
        cluster,
    };
    d.finish(config).map_err(Problems)
}

/// The cluster's `checks:` and `datacenters:` document; an absent file is an empty one (no
/// data center has been pushed yet).
fn read_shared(file: &Path, overlay: &Overlay) -> Result<RawShared, Problem> {
    let text = match overlay.files.get(file) {
        Some(Some(text)) => text.clone(),
        Some(None) => return Ok(RawShared::default()),
        None => match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RawShared::default()),
            Err(e) => {
                return Err(diagnostics::Loc::start(file).problem(format!("cannot read file: {e}")));
            }
        },
    };
    if text.trim().is_empty() {
        return Ok(RawShared::default());
    }
    source::parse_yaml(file, &text)
}

#[cfg(test)]
mod tests {
    use super::{Config, Known, Overlay, load, load_known};
    use std::path::{Path, PathBuf};

    const MERIDIAN: &str = "zones_dir: zones\n\
        datacenters:\n  eu: { endpoints: [{ address: 198.51.100.10 }] }\n  \
        us: { endpoints: [{ address: 192.0.2.10 }] }\n";

    fn zone(name: &str, extra: &str) -> String {
        format!(
            "zone: {name}\nsoa: {{ mname: ns1, rname: hostmaster }}\nns: [ns1]\n\
             records:\n  ns1: {{ A: [192.0.2.1] }}\n{extra}"
        )
    }

    /// A configuration directory: meridian.yaml, zones a.test (records only), b.test (a
    /// load-balanced name) and c.test (records imported from a master file).
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meridian.yaml");
        std::fs::write(&path, MERIDIAN).unwrap();
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        std::fs::write(
            zones.join("a.test.yaml"),
            zone("a.test", "  www: { A: [192.0.2.80] }\n"),
        )
        .unwrap();
        let gslb = "gslb:\n  www: { policy: failover, datacenters: [eu, us] }\n";
        std::fs::write(zones.join("b.test.yaml"), zone("b.test", gslb)).unwrap();
        std::fs::write(zones.join("c.test.yaml"), zone("c.test", "import: c.test.zone\n")).unwrap();
        std::fs::write(zones.join("c.test.zone"), "www 300 A 192.0.2.81\n").unwrap();
        (dir, path)
    }

    /// What a server loaded with `config` knows of its zones.
    fn known(config: &Config) -> Known {
        Known {
            zones: config
                .zones
                .iter()
                .map(|z| (z.source.clone(), (z.origin.clone(), z.stamp.clone())))
                .collect(),
            ..Known::default()
        }
    }

    /// The zones of `config` read again, by name.
    fn read(config: &Config) -> Vec<String> {
        let mut read: Vec<String> = config
            .zones
            .iter()
            .filter(|z| !z.unchanged)
            .map(|z| z.origin.to_string())
            .collect();
        read.sort();
        read
    }

    fn load_again(path: &Path, before: &Config) -> Config {
        load_known(path, None, &Overlay::default(), &known(before)).unwrap()
    }

    /// A zone file that reads as when it was loaded (its text, its imports, and for `gslb:`
    /// names the data centers they were checked against) is not parsed again; any change to
    /// one of those is.
    #[test]
    fn only_zones_whose_files_read_differently_are_parsed_again() {
        let (dir, path) = tree();
        let zones = dir.path().join("zones");
        let full = load(&path).unwrap();
        assert_eq!(read(&full), ["a.test.", "b.test.", "c.test."]);

        let same = load_again(&path, &full);
        assert_eq!(read(&same), Vec::<String>::new());
        assert!(same.zones.iter().all(|z| z.nodes.is_empty()));
        assert_eq!(
            same.zones
                .iter()
                .map(|z| (&z.origin, &z.source, &z.stamp))
                .collect::<Vec<_>>(),
            full.zones
                .iter()
                .map(|z| (&z.origin, &z.source, &z.stamp))
                .collect::<Vec<_>>()
        );

        // Its own text.
        std::fs::write(
            zones.join("a.test.yaml"),
            zone("a.test", "  www: { A: [192.0.2.90] }\n"),
        )
        .unwrap();
        let next = load_again(&path, &same);
        assert_eq!(read(&next), ["a.test."]);
        assert!(!next.zones[0].nodes.is_empty());
        // The master file it imports.
        std::fs::write(zones.join("c.test.zone"), "www 300 A 192.0.2.82\n").unwrap();
        let next = load_again(&path, &next);
        assert_eq!(read(&next), ["c.test."]);
        // An edit in memory (the API's overlay) is a change like one on disk.
        let mut overlay = Overlay::default();
        overlay
            .files
            .insert(zones.join("a.test.yaml"), Some(zone("a.test", "")));
        let edited = load_known(&path, None, &overlay, &known(&next)).unwrap();
        assert_eq!(read(&edited), ["a.test."]);

        // An endpoint's address is nothing a load-balanced name is checked against.
        std::fs::write(&path, MERIDIAN.replace("192.0.2.10", "192.0.2.11")).unwrap();
        let next = load_again(&path, &next);
        assert_eq!(read(&next), Vec::<String>::new());
        // The data centers' order is (a name keeps the position of its data center).
        let swapped = "zones_dir: zones\ndatacenters:\n  us: { endpoints: [{ address: 192.0.2.10 }] }\n  \
                       eu: { endpoints: [{ address: 198.51.100.10 }] }\n";
        std::fs::write(&path, swapped).unwrap();
        let next = load_again(&path, &next);
        assert_eq!(read(&next), ["b.test."]);
    }

    /// A file not modified since it was hashed is not read again; one modified is, and so is
    /// one changed too recently for its identity to be trusted.
    #[test]
    fn files_not_modified_are_not_read_again() {
        let (dir, path) = tree();
        let zones = dir.path().join("zones");
        let served = load(&path).unwrap();
        let trusting = Known {
            files: std::sync::Arc::new(super::FileDigests::new(std::time::Duration::ZERO)),
            ..known(&served)
        };
        let first = load_known(&path, None, &Overlay::default(), &trusting).unwrap();
        assert_eq!(read(&first), Vec::<String>::new());
        let reads = trusting.files.reads();
        assert_eq!(reads, 4, "three zone files and one master file hashed once");
        let again = load_known(&path, None, &Overlay::default(), &trusting).unwrap();
        assert_eq!(read(&again), Vec::<String>::new());
        assert_eq!(trusting.files.reads(), reads, "nothing read again");
        std::fs::write(zones.join("c.test.zone"), "www 300 A 192.0.2.182\n").unwrap();
        let next = load_known(&path, None, &Overlay::default(), &trusting).unwrap();
        assert_eq!(read(&next), ["c.test."]);

        // With the default margin (2 s), files written just now are read every time: a second
        // write within the same timestamp tick, of the same size, would not change their
        // identity.
        let careful = known(&next);
        load_known(&path, None, &Overlay::default(), &careful).unwrap();
        assert_eq!(careful.files.reads(), 4);
        load_known(&path, None, &Overlay::default(), &careful).unwrap();
        assert_eq!(careful.files.reads(), 8);
    }

    /// What spans zones is judged over every zone, parsed again or not: the problems of a load
    /// that reuses zones are those of a full load of the same files, word for word.
    #[test]
    fn what_spans_zones_is_judged_as_in_a_full_load() {
        let (dir, path) = tree();
        let zones = dir.path().join("zones");
        let served = load(&path).unwrap();
        let problems = |known: &Known| {
            let p = load_known(&path, None, &Overlay::default(), known).unwrap_err();
            p.0.iter().map(ToString::to_string).collect::<Vec<_>>()
        };

        // A new file naming a zone served: before its file (the served one is refused) and
        // after it (the new one is).
        std::fs::write(zones.join("0.yaml"), zone("a.test", "")).unwrap();
        std::fs::write(zones.join("z.yaml"), zone("b.test", "")).unwrap();
        let full = problems(&Known::default());
        assert_eq!(full.len(), 2, "{full:?}");
        assert!(
            full[0].contains("a.test.yaml:1:7: zone a.test. is already defined at"),
            "{full:?}"
        );
        assert!(
            full[1].contains("z.yaml:1:7: zone b.test. is already defined at"),
            "{full:?}"
        );
        assert_eq!(problems(&known(&served)), full);
        std::fs::remove_file(zones.join("0.yaml")).unwrap();
        std::fs::remove_file(zones.join("z.yaml")).unwrap();

        // A data center gone that a zone not edited names.
        std::fs::write(
            &path,
            MERIDIAN.replace("  us: { endpoints: [{ address: 192.0.2.10 }] }\n", ""),
        )
        .unwrap();
        let full = problems(&Known::default());
        assert_eq!(full.len(), 1, "{full:?}");
        assert!(
            full[0].contains("no data center `us` in the configuration"),
            "{full:?}"
        );
        assert_eq!(problems(&known(&served)), full);
    }

    /// Each problem names its field as data, not only in its message.
    #[test]
    fn problems_carry_their_field_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        std::fs::write(
            dir.path().join("meridian.yaml"),
            "dns:\n  listen: [\"127.0.0.1\"]\n  udp_workers: 0\n\
             datacenters:\n  eu:\n    endpoints:\n      - address: 192.0.2.300\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("zones/example.test.yaml"),
            "zone: example.test\nsoa: { mname: ns1, rname: hostmaster }\n\
             records:\n  www: { A: [192.0.2.1], SPF: x }\n",
        )
        .unwrap();
        let problems = load(&dir.path().join("meridian.yaml")).unwrap_err().0;
        let fields: Vec<(Option<&str>, u32)> =
            problems.iter().map(|p| (p.field.as_deref(), p.line)).collect();
        assert_eq!(
            fields,
            [
                (Some("dns.listen"), 2),
                (Some("dns.udp_workers"), 3),
                (Some("datacenters.eu.endpoints[0].address"), 7),
                (Some("records.www.SPF"), 4),
                (Some("ns"), 1),
            ],
            "{problems:?}"
        );
        // The message still says the field, for people reading `meridian check`.
        assert!(problems[0].message.starts_with("dns.listen: "), "{}", problems[0]);
        assert!(
            problems[4].message.ends_with("add an `ns:` list"),
            "{}",
            problems[4]
        );
    }
}
