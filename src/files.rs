//! Files an operator's edit touches: written whole or not at all (temp file, fsync, rename,
//! fsync of the directory), and identified by a content tag for optimistic concurrency.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: a reader (or a crash) sees the old file or the new one,
/// never a mix. A file that exists keeps its permissions and (where the process may set it) its
/// owner; a symbolic link is written through: the file it points at is replaced, the link stays.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let target = resolve_link(path)?;
    let dir = parent_of(&target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let existing = std::fs::metadata(&target).ok();
    // A dot-name with a suffix that `zones/*.yaml` never matches, unique per process and call;
    // `remove_leftovers` recognizes it after a crash.
    let tmp = dir.join(format!(
        ".{name}.{}.{}{TMP_SUFFIX}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = (|| {
        // create_new: never write through something already at the temp name (a planted link).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Some(meta) = &existing {
            keep_mode_and_owner(&f, meta)?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

const TMP_SUFFIX: &str = ".tmp";

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The file a write to `path` must replace: `path` itself, or the end of its chain of symbolic
/// links.
fn resolve_link(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "{} is a symbolic link whose target cannot be resolved: {e}",
                    path.display()
                ),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

/// Gives the new file the permissions and owner of the one it replaces. Changing the owner needs
/// privileges: without them a file owned by someone else is refused rather than silently taken
/// over.
fn keep_mode_and_owner(file: &std::fs::File, old: &std::fs::Metadata) -> std::io::Result<()> {
    file.set_permissions(old.permissions())?;
    let new = file.metadata()?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
        std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot keep the file's owner {}:{} ({e}); run Meridian as that user or give it the file",
                    old.uid(),
                    old.gid()
                ),
            )
        })?;
    }
    Ok(())
}

/// Removes the temp files that writes interrupted by a crash left in `dir` (those of processes
/// that no longer run). Returns how many were removed.
pub fn remove_leftovers(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(leftover_pid) else {
            continue;
        };
        if pid != std::process::id() && process_alive(pid) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a temp file left by an interrupted write");
            removed += 1;
        }
    }
    removed
}

/// The writer's pid, when `name` is a temp file of `write_atomic`: `.<file>.<pid>.<nanos>.tmp`.
fn leftover_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(TMP_SUFFIX)?;
    let mut parts = inner.rsplitn(3, '.');
    let nanos = parts.next()?;
    let pid = parts.next()?;
    let file = parts.next()?;
    (!file.is_empty() && nanos.bytes().all(|b| b.is_ascii_digit()) && !nanos.is_empty())
        .then(|| pid.parse().ok())?
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Writes a new file (never one that exists) and syncs it; for a directory being filled that
/// nothing reads yet (the directory itself is synced, then put in place, by the caller).
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes `path` and makes the removal durable.
pub fn remove_durable(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    std::fs::File::open(parent_of(path))?.sync_all()
}

/// The entity tag of some content: a quoted hash, as HTTP writes it.
pub fn etag(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", crate::rng::hash(&[bytes]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z.yaml");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
        assert_ne!(etag(b"one"), etag(b"two"));
        assert_eq!(etag(b"one"), etag(b"one"));
    }

    #[test]
    fn leftovers_are_recognized_by_their_exact_shape() {
        assert_eq!(leftover_pid(".z.yaml.123.456.tmp"), Some(123));
        assert_eq!(leftover_pid(".overrides.json.9.1.tmp"), Some(9));
        for not in [
            ".keep-me",
            "z.yaml.1.2.tmp",
            ".z.yaml.tmp",
            ".z.yaml.x.2.tmp",
            "..1.2.tmp",
            ".z.1..tmp",
        ] {
            assert_eq!(leftover_pid(not), None, "{not}");
        }
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!(".z.yaml.{}.5.tmp", u32::MAX - 1));
        let live = dir.path().join(".z.yaml.1.5.tmp"); // pid 1 always runs
        for f in [&dead, &live] {
            std::fs::write(f, "x").unwrap();
        }
        assert_eq!(remove_leftovers(dir.path()), 1);
        assert!(!dead.exists() && live.exists());
    }
}
