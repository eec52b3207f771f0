//! The cluster cache in `state_dir/cluster/`: what this node has applied, so that it serves
//! the last good state when restarted while etcd is unreachable.
//!
//! ```text
//! state_dir/cluster/
//!   overrides.json        the overrides in force (written by `overrides`)
//!   current -> docs.7     the documents applied, replaced whole by one rename
//!   docs.7/datacenters.yaml
//!   docs.7/zones/<zone>.yaml
//!   docs.7/revisions.json what etcd held when they were applied (`Known`)
//! ```
//!
//! A change of documents is written as a new `docs.<n>` (unchanged files hard-linked, changed
//! ones written and synced, `revisions.json` beside them), then `current` is pointed at it with
//! one rename: a crash leaves the old set or the new one, never a mix. Changes of revisions
//! alone (overrides, refusals) rewrite `revisions.json` in place, atomically.

use crate::cluster::keys::Key;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// What etcd held when this node applied it. Saved as `revisions.json` with the documents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Known {
    /// The etcd revision this node has followed up to: every change under the prefix up to
    /// it has been applied or refused.
    pub(super) revision: i64,
    /// The `mod_revision` of each key applied, by its path under the prefix.
    pub(super) keys: BTreeMap<String, i64>,
    /// Documents etcd holds that this node refused: tried again with every later change (one
    /// may become valid through another, like a zone naming a data center not yet pushed).
    #[serde(default)]
    pub(super) refused: BTreeMap<String, Refused>,
}

/// A document refused: its revision and text (`None`: a refused deletion).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Refused {
    pub(super) mod_revision: i64,
    pub(super) value: Option<String>,
    /// Not text (the value kept is lossy): never tried again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) unreadable: bool,
}

impl Known {
    /// The revision a write of `key` is conditioned on: the one etcd holds as far as this node
    /// knows (a refused document's, so that a write fixing it goes through), or none.
    pub(super) fn revision_of(&self, path: &str) -> Option<i64> {
        match self.refused.get(path) {
            Some(r) if r.value.is_none() => None,
            Some(r) => Some(r.mod_revision),
            None => self.keys.get(path).copied(),
        }
    }

    /// Records `path` as applied at `mod_revision` (`exists`: put, else deleted); a refusal of
    /// it is over.
    pub(super) fn applied(&mut self, path: String, mod_revision: i64, exists: bool) {
        self.refused.remove(&path);
        if exists {
            self.keys.insert(path, mod_revision);
        } else {
            self.keys.remove(&path);
        }
    }

    /// Whether etcd's history differs from the one this node followed: a key of the shared
    /// state last changed at or before the revision this node has followed, but not at the
    /// revision this node saw it change (an etcd restored from an older backup, or a new one
    /// that has been written to since). `keys` are paths and their `mod_revision`s.
    pub(super) fn diverges<'a>(&self, keys: impl IntoIterator<Item = (&'a str, i64)>) -> Option<String> {
        keys.into_iter()
            .filter(|(_, m)| *m <= self.revision)
            .find(|(path, m)| {
                let seen = self
                    .refused
                    .get(*path)
                    .map(|r| r.mod_revision)
                    .or_else(|| self.keys.get(*path).copied());
                seen != Some(*m)
            })
            .map(|(path, m)| format!("{path} changed at revision {m}, which this node never saw"))
    }

    /// Whether a change of `path` at `mod_revision` is news: not older than what was applied
    /// or refused of it.
    pub(super) fn is_news(&self, path: &str, mod_revision: i64) -> bool {
        let seen = self
            .refused
            .get(path)
            .map(|r| r.mod_revision)
            .or_else(|| self.keys.get(path).copied());
        seen.is_none_or(|r| r < mod_revision)
    }
}

/// The cache directory of one node.
#[derive(Clone)]
pub(super) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `state_dir/cluster`.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Where the documents in use keep a shared document (`None` for any other key): the path
/// configuration loading reads (`config::shared_file`, `config::shared_zones_dir`).
pub(super) fn file_in_use(state_dir: &Path, key: &Key) -> Option<PathBuf> {
    Some(
        crate::config::cluster::cache_dir(state_dir)
            .join(CURRENT)
            .join(relative(key)?),
    )
}

/// The file of a shared document, relative to a `docs.<n>` directory.
pub(super) fn relative(key: &Key) -> Option<PathBuf> {
    match key {
        Key::Datacenters => Some(PathBuf::from("datacenters.yaml")),
        Key::Zone(name) => Some(Path::new("zones").join(format!("{name}.yaml"))),
        _ => None,
    }
}

const CURRENT: &str = "current";
const REVISIONS: &str = "revisions.json";

impl Cache {
    /// Opens (or creates) the cache in `dir` and reads what it says was applied. Directories
    /// of documents a crash left unused are removed.
    pub(super) fn open(dir: &Path) -> io::Result<(Cache, Known)> {
        std::fs::create_dir_all(dir)?;
        let cache = Cache {
            dir: dir.to_path_buf(),
        };
        let current = dir.join(CURRENT);
        // A `current` whose documents are gone (or anything but a link to a directory) is no
        // cache: start afresh, and the node reads the whole state.
        if std::fs::symlink_metadata(&current).is_ok() && !current.is_dir() {
            tracing::warn!(cache = %dir.display(), "the cluster cache's `current` has no documents: starting afresh");
            std::fs::remove_file(&current).or_else(|_| std::fs::remove_dir_all(&current))?;
        }
        if std::fs::symlink_metadata(&current).is_err() {
            let first = dir.join("docs.0");
            let _ = std::fs::remove_dir_all(&first);
            std::fs::create_dir_all(first.join("zones"))?;
            std::os::unix::fs::symlink("docs.0", &current)?;
            crate::files::sync_dir(dir)?;
        }
        let in_use = std::fs::read_link(&current)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let is_docs = name.to_str().is_some_and(|n| n.starts_with("docs."));
            if is_docs && Path::new(&name) != in_use {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        crate::files::remove_leftovers(dir);
        let known = match std::fs::read(current.join(REVISIONS)) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the cluster cache's revisions.json does not read: reading the whole state from etcd");
                Known::default()
            }),
            Err(_) => Known::default(),
        };
        Ok((cache, known))
    }

    /// The zones of the documents in use, by the names their files give.
    pub(super) fn zone_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(CURRENT).join("zones")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".yaml"))
                    .map(str::to_string)
            })
            .collect()
    }

    /// Saves `known` beside the documents in use (no document changes).
    pub(super) fn save_known(&self, known: &Known) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(known).expect("revisions serialize");
        crate::files::write_atomic(&self.dir.join(CURRENT).join(REVISIONS), &text)
    }

    /// Replaces the documents in use with `changes` applied (`None`: removed) and `known`
    /// beside them, all at once. On an error nothing in use has changed.
    pub(super) fn commit(&self, changes: &[(PathBuf, Option<String>)], known: &Known) -> io::Result<()> {
        let old_name = std::fs::read_link(self.dir.join(CURRENT))?;
        let generation = old_name
            .to_str()
            .and_then(|n| n.strip_prefix("docs."))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let new_name = format!("docs.{generation}");
        let (old, new) = (self.dir.join(&old_name), self.dir.join(&new_name));
        let _ = std::fs::remove_dir_all(&new);
        let written = self.fill(&old, &new, changes, known);
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&new);
            return Err(e);
        }
        let link = self.dir.join("current.tmp");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&new_name, &link)?;
        std::fs::rename(&link, self.dir.join(CURRENT))?;
        crate::files::sync_dir(&self.dir)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Writes the new set of documents into `new`: what `changes` does not touch linked from
    /// `old`, the rest written, everything synced.
    fn fill(
        &self,
        old: &Path,
        new: &Path,
        changes: &[(PathBuf, Option<String>)],
        known: &Known,
    ) -> io::Result<()> {
        std::fs::create_dir_all(new.join("zones"))?;
        let touched = |rel: &Path| changes.iter().any(|(p, _)| p == rel);
        let mut unchanged = vec![PathBuf::from("datacenters.yaml")];
        if let Ok(entries) = std::fs::read_dir(old.join("zones")) {
            unchanged.extend(entries.flatten().map(|e| Path::new("zones").join(e.file_name())));
        }
        for rel in unchanged.iter().filter(|r| !touched(r)) {
            match std::fs::hard_link(old.join(rel), new.join(rel)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        for (rel, text) in changes {
            if let Some(text) = text {
                crate::files::write_new(&new.join(rel), text.as_bytes())?;
            }
        }
        let revisions = serde_json::to_vec_pretty(known).expect("revisions serialize");
        crate::files::write_new(&new.join(REVISIONS), &revisions)?;
        crate::files::sync_dir(&new.join("zones"))?;
        crate::files::sync_dir(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, rel: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(CURRENT).join(rel)).ok()
    }

    #[test]
    fn a_commit_replaces_the_documents_whole_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, known) = Cache::open(dir.path()).unwrap();
        assert_eq!(known, Known::default());
        let mut known = Known {
            revision: 5,
            ..Known::default()
        };
        known.keys.insert("zones/a.test".into(), 5);
        let changes = [
            (
                PathBuf::from("datacenters.yaml"),
                Some("datacenters: {}\n".to_string()),
            ),
            (
                PathBuf::from("zones/a.test.yaml"),
                Some("zone: a.test\n".to_string()),
            ),
            (
                PathBuf::from("zones/b.test.yaml"),
                Some("zone: b.test\n".to_string()),
            ),
        ];
        cache.commit(&changes, &known).unwrap();
        let (_, again) = Cache::open(dir.path()).unwrap();
        assert_eq!(again, known);
        known.revision = 6;
        cache
            .commit(&[(PathBuf::from("zones/b.test.yaml"), None)], &known)
            .unwrap();
        assert_eq!(
            read(dir.path(), "zones/a.test.yaml").as_deref(),
            Some("zone: a.test\n")
        );
        assert_eq!(
            read(dir.path(), "datacenters.yaml").as_deref(),
            Some("datacenters: {}\n")
        );
        assert_eq!(read(dir.path(), "zones/b.test.yaml"), None);
        let mut names = cache.zone_names();
        names.sort();
        assert_eq!(names, ["a.test"]);
        // One set of documents in use; the older ones are gone.
        let docs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("docs."))
            .collect();
        assert_eq!(docs.len(), 1);
    }

    /// A crash while a new set is written leaves the old one in use; the half-written set is
    /// removed at the next start.
    #[test]
    fn a_half_written_set_is_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = Cache::open(dir.path()).unwrap();
        let known = Known::default();
        cache
            .commit(
                &[(PathBuf::from("zones/a.test.yaml"), Some("zone: a.test\n".into()))],
                &known,
            )
            .unwrap();
        // What a crash in the middle of the next commit leaves: a new directory, not in use.
        let half = dir.path().join("docs.2/zones");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("b.test.yaml"), "zone: b.te").unwrap();
        let (cache, _) = Cache::open(dir.path()).unwrap();
        assert!(!dir.path().join("docs.2").exists());
        assert_eq!(cache.zone_names(), ["a.test"]);
    }

    #[test]
    fn a_refused_document_is_what_writes_are_conditioned_on() {
        let mut known = Known::default();
        known.keys.insert("zones/a.test".into(), 3);
        assert_eq!(known.revision_of("zones/a.test"), Some(3));
        assert!(known.is_news("zones/a.test", 4) && !known.is_news("zones/a.test", 3));
        known.refused.insert(
            "zones/a.test".into(),
            Refused {
                mod_revision: 7,
                value: Some("bad".into()),
                unreadable: false,
            },
        );
        assert_eq!(known.revision_of("zones/a.test"), Some(7));
        assert!(!known.is_news("zones/a.test", 7) && known.is_news("zones/a.test", 8));
        known.refused.get_mut("zones/a.test").unwrap().value = None;
        assert_eq!(known.revision_of("zones/a.test"), None, "deleted in etcd");
    }
}
