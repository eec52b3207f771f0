//! The admin API's certificate: `admin.tls`'s pair, read again whenever its files change, so a
//! renewed certificate is served without a restart.
//!
//! The files are looked at (two `stat`s) at each new connection, which covers a reload that
//! names other files too. A pair that cannot be served keeps the one in use serving; the
//! failure is logged and sent as an event once per change of the files, not per connection.

use crate::config::{AdminTls, TlsFilesError};
use crate::events::Events;
use crate::lock::LockExt;
use rustls::ServerConfig;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
    /// The files' state when a read last failed (not retried until they change again).
    failed: Option<Stamp>,
}

/// What tells a file's new content apart: modification time, length and inode (a file
/// replaced by a rename has a new one) of the certificate and of the key.
type Stamp = [Option<(SystemTime, u64, u64)>; 2];

fn stamp(tls: &AdminTls) -> Stamp {
    let of = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino())))
    };
    [of(&tls.cert_file), of(&tls.key_file)]
}

impl Certs {
    /// The TLS settings for a new connection: the pair of `tls` as its files are now, or the
    /// one served so far when they cannot be read. `None` when no pair was ever read.
    pub fn config(&self, tls: &AdminTls, events: &Events) -> Option<Arc<ServerConfig>> {
        let now = stamp(tls);
        let mut current = self.current.locked();
        if let Some(l) = current.as_mut()
            && l.files == *tls
            && (l.stamp == now || l.failed == Some(now))
        {
            return Some(l.config.clone());
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
                tracing::error!(error = %e, field = e.field(), kept, "admin API certificate not replaced; still serving the previous one");
                events.emit(EVENT_SUBJECT, kept, kept, format!("not replaced: {e}"));
                let l = current.as_mut()?;
                // Other files (a reload named them) keep being tried at each connection.
                if l.files == *tls {
                    l.failed = Some(now);
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
