//! The cluster's shared state as the documents etcd keeps, and what a push changes.
//!
//! A configuration turns into documents verbatim: the `checks:` and `datacenters:` blocks of
//! its `meridian.yaml` (comments and layout kept), and each zone file's text under the zone's
//! canonical name. The cluster's keys read back into the same shape ([`ClusterState`]), so
//! [`plan`] compares text with text: what differs is put, a zone no longer there is deleted,
//! each write expecting its key at the revision read.

use super::etcd::{Expect, Listing};
use super::keys::{DcOverride, EndpointOverride, ForeignKey, Key};
use crate::config::Config;
use crate::config::Problem;
use crate::config::raw::{RawConfig, RawShared, RawZone};
use crate::config::source::parse_yaml;
use crate::model::Zone;
use crate::model::gslb::Forced;
use crate::name::canonical_hostname;
use crate::overrides::{Saved, SavedDc};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration or a cluster's key does not make a document. Each names the file or
/// key at fault.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("cannot read {}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    /// A file that validated does not read any more (changed meanwhile).
    #[error("{0}")]
    Parse(Problem),
    #[error(
        "{}: the top level is written in flow style (`{{ ... }}`); push sends the `checks:` and \
         `datacenters:` sections as blocks of lines: write one top-level key per line",
        file.display()
    )]
    FlowStyle { file: PathBuf },
    #[error(
        "{}: the `checks:` and `datacenters:` sections, cut out as blocks of lines, do not read \
         as they do in the file ({reason}): keep each top-level key's value indented below it, \
         with no anchor shared across sections",
        file.display()
    )]
    Blocks { file: PathBuf, reason: String },
    #[error(
        "{}: zone {zone} imports a master file (`import:`); in cluster mode a zone is one \
         self-contained document (an imported master file is a file of one node, which the \
         cluster does not carry): move its records into the zone's `records:` and drop `import:`",
        file.display()
    )]
    Import { file: PathBuf, zone: String },
    #[error("{}: zone {zone} cannot be named by a cluster key: {reason}", file.display())]
    ZoneName {
        file: PathBuf,
        zone: String,
        reason: String,
    },
    #[error("{key} holds {reason}: fix the value or delete the key (etcdctl del {key})")]
    BadValue { key: String, reason: String },
}

fn read_text(file: &Path) -> Result<String, DocumentError> {
    std::fs::read_to_string(file).map_err(|source| DocumentError::Read {
        file: file.to_path_buf(),
        source,
    })
}

/// The shared state as the documents etcd keeps: the `datacenters` document (the `checks:`
/// and `datacenters:` sections) and one document per zone, keyed by the zone's canonical name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Documents {
    pub datacenters: Vec<u8>,
    pub zones: BTreeMap<String, Vec<u8>>,
}

impl Documents {
    /// What push sends for `config` (as `config::load_local` loaded it): the blocks of its file
    /// and the text of each zone file. A zone that imports a master file is refused.
    pub fn of_local(config: &Config) -> Result<Documents, DocumentError> {
        let text = read_text(&config.path)?;
        let datacenters = shared_blocks(&config.path, &text)?.into_bytes();
        let mut zones = BTreeMap::new();
        for zone in &config.zones {
            let (key, text) = zone_document(zone)?;
            zones.insert(key, text.into_bytes());
        }
        Ok(Documents { datacenters, zones })
    }
}

/// A top-level line of a YAML file: one that starts in the first column and is no comment.
enum TopLevel {
    Key(String),
    /// `{` or `[`: the whole document is in flow style.
    Flow,
    /// A document marker or anything else that ends the block before it.
    Other,
}

fn top_level(line: &str) -> Option<TopLevel> {
    let first = line.chars().next()?;
    if first.is_whitespace() || first == '#' {
        return None;
    }
    if line.starts_with("---") || line.starts_with("...") {
        return Some(TopLevel::Other);
    }
    if first == '{' || first == '[' {
        return Some(TopLevel::Flow);
    }
    let key = match first {
        '"' | '\'' => line[1..].split(first).next().unwrap_or(""),
        _ => line.split(':').next().unwrap_or("").trim_end(),
    };
    Some(TopLevel::Key(key.to_string()))
}

/// The `checks:` and `datacenters:` blocks of a `meridian.yaml`'s text, verbatim and in file
/// order: a block runs from its key's line to the line before the next top-level key (so a
/// comment just above the next key belongs to the block before it). Every block ends with a
/// line break, so that the document reads back the same from any file it is written into.
pub fn shared_blocks(file: &Path, text: &str) -> Result<String, DocumentError> {
    let mut out = String::new();
    let mut keep = false;
    for line in text.split_inclusive('\n') {
        match top_level(line) {
            None => {}
            Some(TopLevel::Flow) => {
                return Err(DocumentError::FlowStyle {
                    file: file.to_path_buf(),
                });
            }
            Some(TopLevel::Key(k)) => keep = k == "checks" || k == "datacenters",
            Some(TopLevel::Other) => keep = false,
        }
        if keep {
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    same_sections(file, text, &out)?;
    Ok(out)
}

/// The cut-out blocks hold the same checks and data centers as the whole file: a value that
/// does not sit below its key (or an anchor used across sections) would not.
fn same_sections(file: &Path, text: &str, blocks: &str) -> Result<(), DocumentError> {
    let whole: RawConfig = parse_yaml(file, text).map_err(DocumentError::Parse)?;
    let cut: RawShared = if blocks.trim().is_empty() {
        RawShared::default()
    } else {
        parse_yaml(file, blocks).map_err(|p| DocumentError::Blocks {
            file: file.to_path_buf(),
            reason: p.message,
        })?
    };
    let same = names(&whole.checks.0) == names(&cut.checks.0)
        && names(&whole.datacenters.0) == names(&cut.datacenters.0);
    if same {
        Ok(())
    } else {
        Err(DocumentError::Blocks {
            file: file.to_path_buf(),
            reason: "they name other checks or data centers".into(),
        })
    }
}

fn names<T>(entries: &[(serde_saphyr::Spanned<String>, T)]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.value.as_str()).collect()
}

/// A zone's key name: its canonical name (lowercase, A-labels, no final dot).
pub fn zone_key(zone: &Zone) -> Result<String, DocumentError> {
    let text = zone.origin.to_string();
    canonical_hostname(&text, false).map_err(|e| DocumentError::ZoneName {
        file: zone.source.clone(),
        zone: text,
        reason: e.to_string(),
    })
}

/// A zone's key and its file's text; a zone with `import:` is refused.
fn zone_document(zone: &Zone) -> Result<(String, String), DocumentError> {
    let text = read_text(&zone.source)?;
    let raw: RawZone = parse_yaml(&zone.source, &text).map_err(DocumentError::Parse)?;
    if raw.import.is_some() {
        return Err(DocumentError::Import {
            file: zone.source.clone(),
            zone: zone.origin.to_string(),
        });
    }
    Ok((zone_key(zone)?, text))
}

// === the cluster's state ===

/// A value in etcd and the revision it was last changed at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// Everything under the prefix as of one revision, sorted by what it is.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub prefix: String,
    pub revision: i64,
    pub datacenters: Option<Stored>,
    pub zones: BTreeMap<String, Stored>,
    /// Override keys and their values, read only by pull (push never touches them).
    pub overrides: Vec<(Key, Vec<u8>)>,
    /// Keys under the prefix that are none of Meridian's: left alone.
    pub foreign: Vec<ForeignKey>,
}

impl ClusterState {
    pub fn from_listing(prefix: &str, listing: Listing) -> ClusterState {
        let mut state = ClusterState {
            prefix: prefix.to_string(),
            revision: listing.revision,
            ..ClusterState::default()
        };
        for e in listing.entries {
            let stored = Stored {
                value: e.value,
                mod_revision: e.mod_revision,
            };
            match Key::parse(prefix, &e.key) {
                // Each node's own keys: not part of the state operators write.
                None | Some(Ok(Key::Audit | Key::Node(_) | Key::Health { .. })) => {}
                Some(Err(foreign)) => state.foreign.push(foreign),
                Some(Ok(Key::Datacenters)) => state.datacenters = Some(stored),
                Some(Ok(Key::Zone(z))) => {
                    state.zones.insert(z, stored);
                }
                Some(Ok(k @ (Key::DcOverride(_) | Key::EndpointOverride(_)))) => {
                    state.overrides.push((k, stored.value));
                }
            }
        }
        state
    }

    /// The documents as they are in the cluster (an absent `datacenters` is an empty one).
    pub fn documents(&self) -> Documents {
        Documents {
            datacenters: self
                .datacenters
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
            zones: self
                .zones
                .iter()
                .map(|(z, s)| (z.clone(), s.value.clone()))
                .collect(),
        }
    }

    /// The overrides in the shape `state_dir/overrides.json` keeps them.
    pub fn saved_overrides(&self) -> Result<Saved, DocumentError> {
        let mut saved = Saved::default();
        for (key, value) in &self.overrides {
            let bad = |e: serde_json::Error| DocumentError::BadValue {
                key: format!("{}{}", self.prefix, key.path()),
                reason: format!("no override Meridian reads ({e})"),
            };
            match key {
                Key::DcOverride(dc) => {
                    let o: DcOverride = serde_json::from_slice(value).map_err(bad)?;
                    if o.state != Forced::Auto || o.weight.is_some() {
                        let dc_state = SavedDc {
                            state: o.state,
                            weight: o.weight,
                        };
                        saved.datacenters.insert(dc.clone(), dc_state);
                    }
                }
                Key::EndpointOverride(ep) => {
                    let o: EndpointOverride = serde_json::from_slice(value).map_err(bad)?;
                    if o.state != Forced::Auto {
                        saved.endpoints.insert(ep.clone(), o.state);
                    }
                }
                _ => {}
            }
        }
        Ok(saved)
    }
}

// === what push changes ===

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    Put(Vec<u8>),
    Delete,
}

/// One key push writes, and the state it expects the key in: as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChange {
    pub key: Key,
    pub edit: Edit,
    pub expect: Expect,
}

/// `+ key` (new), `~ key` (changed), `- key` (deleted).
impl fmt::Display for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match (&self.edit, self.expect) {
            (Edit::Delete, _) => '-',
            (Edit::Put(_), Expect::Absent) => '+',
            (Edit::Put(_), _) => '~',
        };
        write!(f, "{sign} {}", self.key.path())
    }
}

/// The keys whose text differs between `local` and `current`: documents put, zones no longer
/// in `local` deleted. Overrides and foreign keys are not what push sends, so never change.
pub fn plan(local: &Documents, current: &ClusterState) -> Vec<KeyChange> {
    let expect = |s: Option<&Stored>| s.map_or(Expect::Absent, |s| Expect::Revision(s.mod_revision));
    let mut out = Vec::new();
    let dcs = current.datacenters.as_ref();
    if local.datacenters != dcs.map(|s| s.value.as_slice()).unwrap_or_default() {
        out.push(KeyChange {
            key: Key::Datacenters,
            edit: Edit::Put(local.datacenters.clone()),
            expect: expect(dcs),
        });
    }
    for (zone, text) in &local.zones {
        let now = current.zones.get(zone);
        if now.is_none_or(|s| &s.value != text) {
            out.push(KeyChange {
                key: Key::Zone(zone.clone()),
                edit: Edit::Put(text.clone()),
                expect: expect(now),
            });
        }
    }
    for (zone, s) in &current.zones {
        if !local.zones.contains_key(zone) {
            out.push(KeyChange {
                key: Key::Zone(zone.clone()),
                edit: Edit::Delete,
                expect: Expect::Revision(s.mod_revision),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# the server
dns:
  listen: [\"127.0.0.1:5353\"]
checks:
  web: { type: tcp, port: 80 }

# where we run
datacenters:
  eu:
    endpoints:
      - { address: 192.0.2.1, check: web }   # first
zones_dir: zones
log: { level: info }";

    #[test]
    fn blocks_run_from_their_key_to_the_next_key() {
        let blocks = shared_blocks(Path::new("m.yaml"), FILE).unwrap();
        assert_eq!(
            blocks,
            "checks:\n  web: { type: tcp, port: 80 }\n\n# where we run\n\
             datacenters:\n  eu:\n    endpoints:\n      - { address: 192.0.2.1, check: web }   # first\n"
        );
        // Read back out of a file they were written into, they are the same bytes.
        let tree = format!("# header\n{blocks}zones_dir: zones\n");
        assert_eq!(shared_blocks(Path::new("m.yaml"), &tree).unwrap(), blocks);
    }

    #[test]
    fn the_last_block_ends_with_a_line_break() {
        let text = "datacenters:\n  eu:\n    endpoints: [{ address: 192.0.2.1 }]";
        assert!(
            shared_blocks(Path::new("m.yaml"), text)
                .unwrap()
                .ends_with("}]\n")
        );
        assert_eq!(shared_blocks(Path::new("m.yaml"), "log: {}\n").unwrap(), "");
    }

    #[test]
    fn flow_style_and_shared_anchors_are_refused() {
        let flow = "{datacenters: {eu: {endpoints: [{address: 192.0.2.1}]}}}\n";
        assert!(matches!(
            shared_blocks(Path::new("m.yaml"), flow),
            Err(DocumentError::FlowStyle { .. })
        ));
        let anchored = "log: &l {}\n\"datacenters\":\n  eu:\n    endpoints: [{ address: 192.0.2.1 }]\n    location: *l\n";
        let e = shared_blocks(Path::new("m.yaml"), anchored).unwrap_err();
        assert!(matches!(e, DocumentError::Blocks { .. }), "{e}");
    }

    fn stored(value: &str, rev: i64) -> Stored {
        Stored {
            value: value.into(),
            mod_revision: rev,
        }
    }

    #[test]
    fn plans_put_what_differs_and_delete_what_is_gone() {
        let local = Documents {
            datacenters: b"datacenters: {}\n".to_vec(),
            zones: BTreeMap::from([
                ("a.test".to_string(), b"same".to_vec()),
                ("b.test".to_string(), b"new text".to_vec()),
                ("c.test".to_string(), b"new zone".to_vec()),
            ]),
        };
        let current = ClusterState {
            prefix: "/m/".into(),
            revision: 9,
            datacenters: Some(stored("datacenters: {}\n", 2)),
            zones: BTreeMap::from([
                ("a.test".to_string(), stored("same", 3)),
                ("b.test".to_string(), stored("old text", 4)),
                ("d.test".to_string(), stored("gone", 5)),
            ]),
            ..ClusterState::default()
        };
        let shown: Vec<(String, Expect)> = plan(&local, &current)
            .iter()
            .map(|c| (c.to_string(), c.expect))
            .collect();
        assert_eq!(
            shown,
            [
                ("~ zones/b.test".to_string(), Expect::Revision(4)),
                ("+ zones/c.test".to_string(), Expect::Absent),
                ("- zones/d.test".to_string(), Expect::Revision(5)),
            ]
        );
        // An empty document and an absent key are the same state.
        let empty = ClusterState::default();
        assert!(plan(&Documents::default(), &empty).is_empty());
    }
}
