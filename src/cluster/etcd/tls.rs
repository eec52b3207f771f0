//! TLS towards `https://` members: the settings read from their files (for tonic's rustls
//! connections), and why a TLS session failed, in words an operator can act on.
//!
//! A failed handshake reaches the caller inside the error chain of tonic's status. A member
//! that refuses this client's certificate (or its lack of one) does not fail the handshake
//! under TLS 1.3: it judges the certificate after the client finished, and its alert is lost
//! under the HTTP/2 connection closing. A connection that closes on an `https://` member is
//! therefore tried once more here, TLS alone, to read that alert.

use super::EtcdError;
use super::options::{Tls, bad_file, read};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A client's TLS settings, its files read and checked, and the members they are for.
pub(super) struct ClientTls {
    /// The `https://` members.
    urls: Vec<String>,
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    timeout: Duration,
}

impl std::fmt::Debug for ClientTls {
    // Never the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("urls", &self.urls)
            .field("ca", &self.ca.is_some())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// The settings for the `https://` members among `urls` (`None` if there are none), from
    /// the files `tls` names; `tls` `None`: the system's roots and no client certificate.
    pub(super) fn read(
        urls: &[String],
        tls: Option<&Tls>,
        timeout: Duration,
    ) -> Result<Option<ClientTls>, EtcdError> {
        let urls: Vec<String> = urls
            .iter()
            .filter(|u| u.starts_with("https://"))
            .cloned()
            .collect();
        if urls.is_empty() {
            return Ok(None);
        }
        let none = Tls {
            ca: None,
            cert: None,
            key: None,
        };
        let tls = tls.unwrap_or(&none);
        let certificates = |path: &Path, what: &str| {
            let pem = read(path, what)?;
            match CertificateDer::pem_slice_iter(&pem).next() {
                Some(Ok(_)) => Ok(pem),
                _ => Err(bad_file(path, format!("the {what} holds no PEM certificate"))),
            }
        };
        let ca = tls
            .ca
            .as_deref()
            .map(|ca| certificates(ca, "CA certificate file"))
            .transpose()?;
        let identity = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                let cert = certificates(cert, "client certificate file")?;
                let key_pem = read(key, "client key file")?;
                if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
                    return Err(bad_file(
                        key,
                        "the client key file holds no PEM private key".into(),
                    ));
                }
                Some((cert, key_pem))
            }
            (None, None) => None,
            (Some(cert), None) => {
                return Err(bad_file(
                    cert,
                    "a client certificate needs its private key: give the key file too".into(),
                ));
            }
            (None, Some(key)) => {
                return Err(bad_file(
                    key,
                    "a private key needs its client certificate: give the certificate file too".into(),
                ));
            }
        };
        Ok(Some(ClientTls {
            urls,
            ca,
            identity,
            timeout,
        }))
    }

    /// Whether the member at `url` is reached over TLS.
    pub(super) fn covers(&self, url: &str) -> bool {
        self.urls.iter().any(|u| u == url)
    }

    /// The settings of tonic's connections.
    pub(super) fn tonic(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().timeout(self.timeout);
        let config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        };
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }

    /// The same settings for rustls alone, for [`ClientTls::diagnose`].
    fn rustls(&self) -> Option<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                roots.add_parsable_certificates(CertificateDer::pem_slice_iter(ca).flatten());
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert).flatten().collect();
                let key = PrivateKeyDer::from_pem_slice(key).ok()?;
                builder.with_client_auth_cert(chain, key).ok()?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Some(Arc::new(config))
    }

    /// Why TLS with the members fails, if it does with one: the first failure found, naming
    /// the member. Every member is tried at once; takes at most the client's timeout.
    pub(super) async fn diagnose(&self) -> Option<String> {
        let config = self.rustls()?;
        let mut tries: tokio::task::JoinSet<Option<String>> = tokio::task::JoinSet::new();
        for url in &self.urls {
            let (config, url, timeout) = (config.clone(), url.clone(), self.timeout);
            tries.spawn(async move {
                let said = tokio::time::timeout(timeout, diagnose(config, &url))
                    .await
                    .ok()??;
                Some(format!("{url}: {said}"))
            });
        }
        while let Some(done) = tries.join_next().await {
            if let Ok(Some(said)) = done {
                return Some(said);
            }
        }
        None
    }
}

/// Why TLS with the member at `url` fails, if it does: a handshake, then the start of HTTP/2
/// and one read, on a connection of its own. `None` when TLS holds (or the member cannot be
/// reached at all).
async fn diagnose(config: Arc<ClientConfig>, url: &str) -> Option<String> {
    {
        let uri: tonic::codegen::http::Uri = url.parse().ok()?;
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.to_string()).ok()?;
        {
            let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
            let mut tls = match tokio_rustls::TlsConnector::from(config).connect(name, tcp).await {
                Ok(tls) => tls,
                Err(e) => return Some(failure_in(&e).unwrap_or_else(|| e.to_string())),
            };
            // The client's preface and an empty SETTINGS frame: a member that took the
            // certificate answers with its SETTINGS, one that did not with an alert.
            let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            if let Err(e) = tls.write_all(&hello).await {
                return failure_in(&e);
            }
            let mut byte = [0u8; 1];
            tls.read(&mut byte).await.err().and_then(|e| failure_in(&e))
        }
    }
}

/// The TLS failure somewhere in the causes of `error`, in words, if there is one.
pub(super) fn failure_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(tls) = inner {
            return Some(describe(tls));
        }
        cause = e.source();
    }
    None
}

/// What rustls said, and what to do about it.
fn describe(e: &rustls::Error) -> String {
    use rustls::Error as E;
    let advice = match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the member's certificate is not signed by a CA this client trusts: give the \
                 CA file of the CA that signed it"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the member's certificate is not for the address in the endpoint URL: use the \
                 name or address its certificate names"
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                "the member's certificate is outside its validity period"
            }
            _ => "the member's certificate is not acceptable",
        },
        E::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => {
            "the member refused this client's certificate, or wants one: give a client \
             certificate and key signed by the CA the member trusts (its --trusted-ca-file)"
        }
        _ => "the member and this client could not agree on a TLS session",
    };
    format!("{e}: {advice}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn files_that_do_not_hold_what_they_should_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = tmp(&dir, "not-pem", b"hello");
        let only = |ca, cert, key| Tls { ca, cert, key };
        let second = Duration::from_secs(1);
        let urls = ["https://127.0.0.1:2379".to_string()];
        let e = ClientTls::read(&urls, Some(&only(Some(not_pem.clone()), None, None)), second)
            .err()
            .unwrap();
        assert!(
            matches!(&e, EtcdError::File { path, .. } if *path == not_pem),
            "{e}"
        );
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = ClientTls::read(&urls, Some(&only(Some(missing.clone()), None, None)), second)
            .err()
            .unwrap();
        assert!(
            matches!(&e, EtcdError::File { path, .. } if *path == missing),
            "{e}"
        );
        let e = ClientTls::read(&urls, Some(&only(None, Some(not_pem.clone()), None)), second)
            .err()
            .unwrap();
        assert!(e.to_string().contains("private key"), "{e}");
        // Plain members need no TLS file.
        let plain = ["http://127.0.0.1:2379".to_string()];
        let tls = only(Some(missing), None, None);
        assert!(ClientTls::read(&plain, Some(&tls), second).unwrap().is_none());
    }

    #[test]
    fn tls_failures_say_what_to_do() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let said = failure_in(&io).unwrap();
        assert!(
            said.contains("UnknownIssuer") && said.contains("CA file"),
            "{said}"
        );
        let e = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let said = failure_in(&e).unwrap();
        assert!(said.contains("client certificate"), "{said}");
        assert!(failure_in(&std::io::Error::other("refused")).is_none());
    }
}
