//! `meridian cluster push` and `meridian cluster pull`: the cluster's shared state between a
//! node's files and etcd.
//!
//! Push validates a `meridian.yaml` and its zones as a whole (`config::load_local`), turns
//! them into documents (`documents`), and writes the keys whose text differs in one
//! transaction conditioned on the revisions it read, so a change someone else made meanwhile
//! is never overwritten. Overrides and keys that are not Meridian's are never touched. A dry
//! run loads the cluster's current state as pull would write it and says what changes in the
//! configuration's terms (`diff`).
//!
//! Pull writes the cluster's state as a tree a file-mode server runs from: `meridian.yaml`
//! (the `datacenters` document, then `zones_dir: zones`), `zones/<zone>.yaml` and
//! `state/overrides.json`. Pushing that tree back changes nothing.

use super::diff;
use super::documents::{ClusterState, DocumentError, Documents, Edit, KeyChange, plan, zone_key};
use super::etcd::{Etcd, EtcdError, Expect, Options, Write};
use super::keys::{Audit, ForeignKey, Key};
use crate::config::diagnostics::Diagnostics;
use crate::config::raw::RawConfig;
use crate::config::source::parse_yaml;
use crate::config::{self, ClusterConfig, Config, Problem, Problems};
use crate::files::write_atomic;
use crate::model::Zone;
use crate::overrides::Saved;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why push or pull stopped. Each names the file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The configuration does not validate: every problem, as `meridian check` prints them.
    #[error("{0}")]
    Invalid(Problems),
    #[error(
        "{}: no `cluster:` section, so no cluster to reach: add one naming the etcd members \
         (cluster.etcd.endpoints)",
        file.display()
    )]
    NoCluster { file: PathBuf },
    #[error("cannot read {}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("etcd at {endpoints}: {source}")]
    Etcd { endpoints: String, source: EtcdError },
    #[error(
        "etcd refused one transaction of {writes} writes ({reason}): etcd takes at most \
         --max-txn-ops operations (default 128) and --max-request-bytes bytes (default 1.5 MiB) \
         in one; raise both on every member (say --max-txn-ops=10000 \
         --max-request-bytes=67108864) to push this state whole; nothing was written"
    )]
    TooLarge { writes: usize, reason: String },
    #[error(
        "{key} changed in the cluster since it was read, so nothing was written: run the \
         command again (with --dry-run to see the cluster as it is now)"
    )]
    Conflict { key: String },
    #[error("{}: {reason}: pull writes a fresh tree; name a new or empty directory", dir.display())]
    OutNotEmpty { dir: PathBuf, reason: &'static str },
    #[error("cannot write {}: {source}", file.display())]
    Write { file: PathBuf, source: std::io::Error },
}

fn read_text(file: &Path) -> Result<String, FilesError> {
    std::fs::read_to_string(file).map_err(|source| FilesError::Read {
        file: file.to_path_buf(),
        source,
    })
}

fn invalid(problem: Problem) -> FilesError {
    FilesError::Invalid(Problems(vec![problem]))
}

// === the cluster named by --config ===

/// What push and pull read of `--config`: how to reach the cluster, and this node's GeoIP
/// database (location rules in zones validate only with one).
#[derive(Clone, Debug)]
pub struct ClusterFile {
    pub path: PathBuf,
    pub cluster: ClusterConfig,
    /// `geoip.database`, as an absolute path.
    pub geoip: Option<PathBuf>,
}

impl ClusterFile {
    /// Reads the `cluster:` section of `path` (validated) and its `geoip.database`; of the
    /// rest, only the shape is checked.
    pub fn read(path: &Path) -> Result<ClusterFile, FilesError> {
        let text = read_text(path)?;
        let raw: RawConfig = parse_yaml(path, &text).map_err(invalid)?;
        let Some(section) = &raw.cluster else {
            return Err(FilesError::NoCluster {
                file: path.to_path_buf(),
            });
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut d = Diagnostics::new(path);
        let cluster = config::cluster::cluster(&mut d, base, section);
        let cluster = d.finish(cluster).map_err(|p| FilesError::Invalid(Problems(p)))?;
        let geoip = raw
            .geoip
            .as_ref()
            .map(|g| absolute(&base.join(&g.database.value)));
        Ok(ClusterFile {
            path: path.to_path_buf(),
            cluster,
            geoip,
        })
    }

    /// A client for the cluster (connected at the first call).
    pub fn connect(&self) -> Result<Cluster, FilesError> {
        let c = &self.cluster;
        let endpoints = c.endpoints.join(", ");
        let etcd = Etcd::connect(&Options::from(c)).map_err(|source| FilesError::Etcd {
            endpoints: endpoints.clone(),
            source,
        })?;
        Ok(Cluster {
            etcd,
            prefix: c.prefix.clone(),
            endpoints,
            node: c.node.clone(),
        })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The cluster push and pull talk to.
pub struct Cluster {
    etcd: Etcd,
    prefix: String,
    endpoints: String,
    /// This node's name, for the audit record.
    node: String,
}

impl Cluster {
    fn error(&self, e: EtcdError) -> FilesError {
        match e {
            EtcdError::Conflict { key } => FilesError::Conflict {
                key: String::from_utf8_lossy(&key).into_owned(),
            },
            source => FilesError::Etcd {
                endpoints: self.endpoints.clone(),
                source,
            },
        }
    }

    /// Every key under the prefix, as of one revision.
    pub async fn read(&self) -> Result<ClusterState, FilesError> {
        let listing = self
            .etcd
            .list(self.prefix.as_bytes())
            .await
            .map_err(|e| self.error(e))?;
        Ok(ClusterState::from_listing(&self.prefix, listing))
    }

    /// Writes `changes` in one transaction with `audit`, which also requires every document of
    /// `read` that it does not change to be as read: what was validated as a whole is what the
    /// cluster holds afterwards. When any key is no longer as it was read, nothing is written
    /// and [`FilesError::Conflict`] names the key. Returns the revision the transaction made.
    pub async fn commit(
        &self,
        changes: &[KeyChange],
        read: &ClusterState,
        audit: &Audit,
    ) -> Result<i64, FilesError> {
        let mut writes: Vec<Write> = changes
            .iter()
            .map(|c| {
                let value = match &c.edit {
                    Edit::Put(value) => Some(value.clone()),
                    Edit::Delete => None,
                };
                Write::put_or_delete(c.key.under(&self.prefix), value, c.expect)
            })
            .collect();
        let unchanged = read
            .datacenters
            .iter()
            .map(|d| (Key::Datacenters, d))
            .chain(read.zones.iter().map(|(z, d)| (Key::Zone(z.clone()), d)))
            .filter(|(k, _)| changes.iter().all(|c| &c.key != k));
        for (key, stored) in unchanged {
            writes.push(Write::Check {
                key: key.under(&self.prefix),
                expect: Expect::Revision(stored.mod_revision),
            });
        }
        writes.push(audit.write(&self.prefix));
        self.etcd.commit(&writes).await.map_err(|e| match e {
            EtcdError::Protocol(m) if m.contains("too many operations") || m.contains("too large") => {
                FilesError::TooLarge {
                    writes: writes.len(),
                    reason: m,
                }
            }
            e => self.error(e),
        })
    }

    /// `etcd <endpoints>, prefix <prefix>`, for what is written and said.
    pub fn describe(&self) -> String {
        format!("etcd {}, prefix {}", self.endpoints, self.prefix)
    }
}

// === trees of files ===

/// Where a tree written from the cluster's state came from, and the node's GeoIP database it
/// names (`geoip:` is each node's own setting, not the cluster's).
pub struct TreeOrigin<'a> {
    pub source: &'a str,
    pub revision: i64,
    pub geoip: Option<&'a Path>,
}

/// Lines written above the `datacenters` document in a tree's `meridian.yaml`.
const HEADER_LINES: u32 = 3;

/// Writes `docs` and `overrides` under `dir` (created if absent) as a file-mode tree:
/// `meridian.yaml` (a header, the `datacenters` document, `zones_dir: zones`, and `geoip:`
/// when given), `zones/<zone>.yaml`, `state/overrides.json`. Returns its `meridian.yaml`.
pub fn write_tree(
    dir: &Path,
    docs: &Documents,
    overrides: &Saved,
    origin: &TreeOrigin<'_>,
) -> Result<PathBuf, FilesError> {
    let write_err = |file: &Path| {
        let file = file.to_path_buf();
        move |source| FilesError::Write { file, source }
    };
    let (zones_dir, state_dir) = (dir.join("zones"), dir.join("state"));
    for d in [&zones_dir, &state_dir] {
        std::fs::create_dir_all(d).map_err(write_err(d))?;
    }
    let file = dir.join("meridian.yaml");
    let mut text = format!(
        "# The shared state of a Meridian cluster ({}) at revision {}.\n\
         # Check it with `meridian check --config {f}`; send it back with\n\
         # `meridian cluster push --from {f}`.\n",
        origin.source,
        origin.revision,
        f = file.display()
    )
    .into_bytes();
    debug_assert_eq!(
        text.iter().filter(|b| **b == b'\n').count(),
        HEADER_LINES as usize
    );
    text.extend_from_slice(&docs.datacenters);
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(b"zones_dir: zones\n");
    if let Some(db) = origin.geoip {
        let path = serde_json::to_string(&db.to_string_lossy()).expect("a string serializes");
        text.extend_from_slice(
            format!("# This node's GeoIP database (each node names its own):\ngeoip:\n  database: {path}\n")
                .as_bytes(),
        );
    }
    write_atomic(&file, &text).map_err(write_err(&file))?;
    for (zone, text) in &docs.zones {
        let f = zones_dir.join(format!("{zone}.yaml"));
        write_atomic(&f, text).map_err(write_err(&f))?;
    }
    let f = state_dir.join("overrides.json");
    let json = serde_json::to_vec_pretty(overrides).expect("overrides serialize");
    write_atomic(&f, &json).map_err(write_err(&f))?;
    Ok(file)
}

/// `dir` is absent or an empty directory.
fn check_out_dir(dir: &Path) -> Result<(), FilesError> {
    let refuse = |reason| FilesError::OutNotEmpty {
        dir: dir.to_path_buf(),
        reason,
    };
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse("the directory is not empty")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(refuse("not a directory")),
        Err(source) => Err(FilesError::Read {
            file: dir.to_path_buf(),
            source,
        }),
    }
}

/// A directory of this process's own under the system's temporary directory (mode 0700),
/// removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, FilesError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut attempt = 0;
        loop {
            let dir = base.join(format!("meridian-push-{}-{stamp}-{attempt}", std::process::id()));
            // create, not create_all: never a directory (or link) someone else put there.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Scratch(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
                Err(source) => return Err(FilesError::Write { file: dir, source }),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// === the commands ===

/// What `meridian cluster push` is asked.
pub struct PushRequest<'a> {
    /// The file whose `cluster:` names the cluster.
    pub config: &'a Path,
    /// The file whose checks, data centers and zones are sent.
    pub from: &'a Path,
    pub dry_run: bool,
    /// Who runs the command, for the audit record.
    pub user: &'a str,
}

/// What push did, or would do.
pub struct Pushed {
    /// The revision the cluster's state was read at.
    pub read_at: i64,
    pub outcome: Outcome,
    pub foreign: Vec<ForeignKey>,
}

pub enum Outcome {
    /// The cluster already holds every document as sent.
    Unchanged,
    Written {
        revision: i64,
        changes: Vec<KeyChange>,
    },
    DryRun {
        changes: Vec<KeyChange>,
        details: Details,
    },
}

/// What a dry run says beyond the keys.
pub enum Details {
    /// Data centers, checks, names and records, one change a line.
    Changes(Vec<String>),
    /// The cluster's state does not validate, so only its keys are compared. Each problem
    /// names the key (and the line in its value) at fault.
    CurrentInvalid(Problems),
}

/// Sends the checks, data centers and zones of `req.from` to the cluster `req.config` names.
pub async fn push(req: &PushRequest<'_>) -> Result<Pushed, FilesError> {
    let local = config::load_local(req.from).map_err(FilesError::Invalid)?;
    let docs = Documents::of_local(&local)?;
    let cluster = ClusterFile::read(req.config)?.connect()?;
    let current = cluster.read().await?;
    let changes = plan(&docs, &current);
    let outcome = if changes.is_empty() {
        Outcome::Unchanged
    } else if req.dry_run {
        let details = details(&local, &current, &changes, &cluster.describe())?;
        Outcome::DryRun { changes, details }
    } else {
        let audit = Audit {
            node: cluster.node.clone(),
            by: format!("cluster push ({})", req.user),
            what: None,
        };
        let revision = cluster.commit(&changes, &current, &audit).await?;
        Outcome::Written { revision, changes }
    };
    Ok(Pushed {
        read_at: current.revision,
        outcome,
        foreign: current.foreign,
    })
}

/// Loads the cluster's current state as pull would write it and compares it with `local`, for
/// each key that changes.
fn details(
    local: &Config,
    current: &ClusterState,
    changes: &[KeyChange],
    source: &str,
) -> Result<Details, FilesError> {
    let scratch = Scratch::new()?;
    let geoip = local.geoip.as_ref().map(|g| absolute(&g.path));
    let origin = TreeOrigin {
        source,
        revision: current.revision,
        geoip: geoip.as_deref(),
    };
    let file = write_tree(&scratch.0, &current.documents(), &Saved::default(), &origin)?;
    Ok(match config::load_local(&file) {
        Ok(old) => Details::Changes(changes.iter().flat_map(|c| described(c, &old, local)).collect()),
        Err(problems) => Details::CurrentInvalid(Problems(
            problems
                .0
                .into_iter()
                .map(|p| as_key(p, &scratch.0, current))
                .collect(),
        )),
    })
}

/// A problem in the scratch tree, told as the key and line of the value it is in.
fn as_key(mut p: Problem, tree: &Path, current: &ClusterState) -> Problem {
    let rel = p.file.strip_prefix(tree).unwrap_or(&p.file).to_path_buf();
    let key = match rel.to_str() {
        Some("meridian.yaml") => {
            p.line = p.line.saturating_sub(HEADER_LINES).max(1);
            Key::Datacenters
        }
        Some(z) => match z.strip_prefix("zones/").and_then(|z| z.strip_suffix(".yaml")) {
            Some(zone) => Key::Zone(zone.to_string()),
            None => return p,
        },
        None => return p,
    };
    p.file = PathBuf::from(String::from_utf8_lossy(&key.under(&current.prefix)).into_owned());
    p
}

/// The lines a dry run prints for one key: what changes in what it serves, or that only its
/// text does.
fn described(change: &KeyChange, old: &Config, new: &Config) -> Vec<String> {
    let indent = |lines: Vec<String>| lines.into_iter().map(|l| format!("    {l}"));
    let text_only = format!("{change}: the text changes, not what it serves (comments, formatting or order)");
    match &change.key {
        Key::Datacenters => {
            let lines = diff::datacenters(old, new);
            if lines.is_empty() {
                return vec![text_only];
            }
            std::iter::once(change.to_string()).chain(indent(lines)).collect()
        }
        Key::Zone(name) => match (find_zone(old, name), find_zone(new, name)) {
            (None, Some(z)) => vec![format!("+ zone {name}: {}", diff::zone_summary(z))],
            (Some(_), None) => vec![format!("- zone {name}")],
            (Some(o), Some(n)) => {
                let lines = diff::zone(o, &old.datacenters, n, &new.datacenters);
                if lines.is_empty() {
                    return vec![text_only];
                }
                std::iter::once(format!("~ zone {name}"))
                    .chain(indent(lines))
                    .collect()
            }
            (None, None) => vec![change.to_string()],
        },
        _ => vec![change.to_string()],
    }
}

fn find_zone<'c>(config: &'c Config, key: &str) -> Option<&'c Zone> {
    config.zones.iter().find(|z| zone_key(z).is_ok_and(|k| k == key))
}

impl fmt::Display for Pushed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for k in &self.foreign {
            writeln!(f, "note: left alone: {k}")?;
        }
        match &self.outcome {
            Outcome::Unchanged => writeln!(
                f,
                "the cluster already has this state (revision {}); nothing written",
                self.read_at
            ),
            Outcome::Written { revision, changes } => {
                writeln!(f, "pushed: the cluster is at revision {revision}")?;
                changes.iter().try_for_each(|c| writeln!(f, "  {c}"))
            }
            Outcome::DryRun { changes, details } => {
                writeln!(
                    f,
                    "dry run, nothing written; against revision {}, push would change:",
                    self.read_at
                )?;
                match details {
                    Details::Changes(lines) => lines.iter().try_for_each(|l| writeln!(f, "  {l}")),
                    Details::CurrentInvalid(problems) => {
                        changes.iter().try_for_each(|c| writeln!(f, "  {c}"))?;
                        writeln!(
                            f,
                            "the cluster's current state is invalid, so only its keys are compared:"
                        )?;
                        problems.0.iter().try_for_each(|p| writeln!(f, "  {p}"))
                    }
                }
            }
        }
    }
}

/// What pull wrote.
pub struct Pulled {
    /// The tree's `meridian.yaml`.
    pub file: PathBuf,
    pub revision: i64,
    pub zones: usize,
    pub overrides: usize,
    pub foreign: Vec<ForeignKey>,
}

/// Writes the state of the cluster `config` names as a file-mode tree in `out`, which must
/// be absent or empty.
pub async fn pull(config: &Path, out: &Path) -> Result<Pulled, FilesError> {
    let cluster_file = ClusterFile::read(config)?;
    check_out_dir(out)?;
    let cluster = cluster_file.connect()?;
    let state = cluster.read().await?;
    // Every value read before anything is written: a bad one leaves no half tree.
    let overrides = state.saved_overrides()?;
    let docs = state.documents();
    let origin = TreeOrigin {
        source: &cluster.describe(),
        revision: state.revision,
        geoip: cluster_file.geoip.as_deref(),
    };
    let file = write_tree(out, &docs, &overrides, &origin)?;
    Ok(Pulled {
        file,
        revision: state.revision,
        zones: docs.zones.len(),
        overrides: overrides.len(),
        foreign: state.foreign,
    })
}

impl fmt::Display for Pulled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for k in &self.foreign {
            writeln!(f, "note: not written: {k}")?;
        }
        writeln!(
            f,
            "{}: the cluster at revision {} ({} zones, {} overrides)",
            self.file.display(),
            self.revision,
            self.zones,
            self.overrides
        )
    }
}
