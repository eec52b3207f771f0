//! The admin API's certificate: `admin.tls`'s pair, read again whenever its files change, so a
//! renewed certificate is served without a restart.
//!
//! The files are looked at (two `stat`s) at each new connection, which covers a reload that
//! names other files too. A pair that cannot be served keeps the one in use serving; the
//! failure is logged and sent as an event once per change of the files, not per connection.
//! A failed read is tried again when the files change in any way `stat` shows (a `chown` or
//! `chmod` changes only their ctime, owner or mode), after a configuration reload, and at
//! most once a second whatever the files look like (a change within one ctime tick).

use crate::config::{AdminTls, TlsFilesError};
use crate::events::Events;
use crate::lock::LockExt;
use rustls::ServerConfig;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How soon a read that failed is tried again though the files look unchanged.
const RETRY: Duration = Duration::from_secs(1);

/// The subject of the events about the admin API's certificate.
pub const EVENT_SUBJECT: &str = "admin tls";

/// The pair being served and the state of its files when it was read.
#[derive(Default)]
pub struct Certs {
    /// Taken for two `stat`s, or a read when the files changed; never across an await.
    current: Mutex<Option<Loaded>>,
}

struct Loaded {
    files: AdminTls,
    stamp: Stamp,
    /// Short name of the certificate, for events: a hash of its DER bytes.
    name: String,
    config: Arc<ServerConfig>,
    /// The last read that failed with the files as they are in use now.
    failed: Option<Failed>,
}

/// A read of the files that failed: retried when they change, after a configuration reload,
/// or once [`RETRY`] has passed.
struct Failed {
    stamp: Stamp,
    /// The snapshot generation when it failed: a reload (SIGHUP, `POST /reload`) read the pair
    /// to validate it, so the next connection tries again.
    generation: u64,
    at: Instant,
    /// What was said of it (logged and sent as an event once, not at every retry).
    error: String,
}

/// What tells a file's new content (or its new readability) apart: modification and change
/// times, length, inode (a file replaced by a rename has a new one), mode and owner, of the
/// certificate and of the key. The change time moves on `chmod` and `chown`, which leave the
/// modification time alone: a key written root-only then given to its user is seen.
type Stamp = [Option<FileStamp>; 2];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileStamp {
    modified: SystemTime,
    changed: (i64, i64),
    len: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn stamp(tls: &AdminTls) -> Stamp {
    let of = |p: &std::path::Path| {
        std::fs::metadata(p).ok().and_then(|m| {
            Some(FileStamp {
                modified: m.modified().ok()?,
                changed: (m.ctime(), m.ctime_nsec()),
                len: m.len(),
                ino: m.ino(),
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
            })
        })
    };
    [of(&tls.cert_file), of(&tls.key_file)]
}

impl Certs {
    /// The TLS settings for a new connection: the pair of `tls` as its files are now, or the
    /// one served so far when they cannot be read. `None` when no pair was ever read.
    /// `generation` is the running snapshot's: a new one (a reload) ends the wait of a failed read.
    pub fn config(&self, tls: &AdminTls, generation: u64, events: &Events) -> Option<Arc<ServerConfig>> {
        let now = stamp(tls);
        let mut current = self.current.locked();
        if let Some(l) = current.as_mut()
            && l.files == *tls
        {
            let waiting = l
                .failed
                .as_ref()
                .is_some_and(|f| f.stamp == now && f.generation == generation && f.at.elapsed() < RETRY);
            if waiting || (l.stamp == now && l.failed.is_none()) {
                return Some(l.config.clone());
            }
        }
        let old = current.as_ref().map(|l| l.name.clone());
        match read(tls) {
            Ok((name, config)) => {
                match &old {
                    Some(old) => {
                        tracing::info!(cert = %tls.cert_file.display(), old = %old, new = %name, "admin API certificate reloaded");
                        events.emit(
                            EVENT_SUBJECT,
                            old.as_str(),
                            name.as_str(),
                            "certificate files changed",
                        );
                    }
                    None => {
                        tracing::info!(cert = %tls.cert_file.display(), name = %name, "admin API serving HTTPS")
                    }
                }
                *current = Some(Loaded {
                    files: tls.clone(),
                    stamp: now,
                    name,
                    config: config.clone(),
                    failed: None,
                });
                Some(config)
            }
            Err(e) => {
                let kept = old.as_deref().unwrap_or("none");
                let error = e.to_string();
                let same_files = current.as_ref().is_some_and(|l| l.files == *tls);
                // A retry that fails the same way on the same files was already said.
                let said = same_files
                    && current
                        .as_ref()
                        .and_then(|l| l.failed.as_ref())
                        .is_some_and(|f| f.stamp == now && f.error == error);
                if said {
                    tracing::debug!(error = %e, kept, "admin API certificate still not readable");
                } else {
                    tracing::error!(error = %e, field = e.field(), kept, "admin API certificate not replaced; still serving the previous one");
                    events.emit(EVENT_SUBJECT, kept, kept, format!("not replaced: {e}"));
                }
                let l = current.as_mut()?;
                // Other files (a reload named them) keep being tried at each connection.
                if same_files {
                    l.failed = Some(Failed {
                        stamp: now,
                        generation,
                        at: Instant::now(),
                        error,
                    });
                }
                Some(l.config.clone())
            }
        }
    }
}

/// Reads the pair and builds the server's TLS settings (HTTP/1.1 offered by ALPN).
fn read(tls: &AdminTls) -> Result<(String, Arc<ServerConfig>), TlsFilesError> {
    let pair = tls.read()?;
    let name = pair
        .end_entity_cert()
        .map(|c| format!("certificate {:016x}", crate::rng::hash(&[c.as_ref()])))
        .unwrap_or_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsFilesError::BadKey {
            path: tls.key_file.clone(),
            source,
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(pair)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((name, Arc::new(config)))
}
