//! What identifies one version of a file without reading it.

use std::path::Path;

/// What identifies one version of a file without reading it: device, inode, size, and the
/// modification and change times (a file replaced by rename, or rewritten, or given back its old
/// mtime by `cp -p`/`rsync -t`, has another).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl FileId {
    /// The identity of `path` now; `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}
