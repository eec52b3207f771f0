//! One probe of one target: the only network I/O of health checking. It reports what happened;
//! it decides nothing.

use crate::lock::LockExt;
use crate::model::gslb::{Check, CheckKind, HttpCheck};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a probe checks: an address and a check. Identical targets share one probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: IpAddr,
    pub check: Arc<Check>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}/ (check {})",
            self.check.kind.as_str(),
            SocketAddr::new(self.addr, self.check.port),
            self.check.name
        )
    }
}

impl Target {
    /// The target's name among the nodes of a cluster: `<check>/<address>` (the key its health
    /// reports are written under, `cluster::keys::Key::Health`).
    pub fn key(&self) -> String {
        format!("{}/{}", self.check.name, self.addr)
    }
}

/// What one probe saw (it decides nothing: the scheduler's rise/fall machine does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub ok: bool,
    pub latency: Duration,
    /// Why it failed.
    pub error: Option<String>,
}

/// Most of a body read for `body_contains`.
const BODY_LIMIT: usize = 64 * 1024;

/// TLS settings shared by every probe: built once, cloned cheaply.
pub struct Tls {
    verify: Result<rustls::ClientConfig, String>,
    no_verify: rustls::ClientConfig,
    by_ca_file: Mutex<HashMap<PathBuf, Result<rustls::ClientConfig, String>>>,
    plain: reqwest::Client,
}

impl Tls {
    /// Loads the system's trust roots (once per process).
    pub fn new() -> Arc<Tls> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots = rustls_native_certs::load_native_certs();
        let mut store = rustls::RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(roots.certs);
        let verify = if added == 0 {
            Err(
                "no trusted CA certificates found on this system (install ca-certificates, or set ca_file)"
                    .to_string(),
            )
        } else {
            Ok(client_config(store))
        };
        let no_verify = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify::new()))
            .with_no_client_auth();
        let plain = base_builder(no_verify.clone())
            .build()
            .expect("a plain HTTP client builds");
        Arc::new(Tls {
            verify,
            no_verify,
            by_ca_file: Mutex::new(HashMap::new()),
            plain,
        })
    }

    fn config_for(&self, http: &HttpCheck) -> Result<rustls::ClientConfig, String> {
        if !http.tls_verify {
            return Ok(self.no_verify.clone());
        }
        let Some(path) = &http.ca_file else {
            return self.verify.clone();
        };
        let mut cache = self.by_ca_file.locked();
        cache
            .entry(path.clone())
            .or_insert_with(|| {
                let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                let mut store = rustls::RootCertStore::empty();
                for cert in rustls_pemfile_certs(&pem) {
                    store
                        .add(cert)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                }
                if store.is_empty() {
                    return Err(format!("ca_file {}: no certificate in it", path.display()));
                }
                Ok(client_config(store))
            })
            .clone()
    }
}

fn client_config(store: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth()
}

/// PEM certificates, without another dependency: base64 between BEGIN/END CERTIFICATE lines.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

fn base_builder(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // Health checks look at the response itself: a redirect is a status like any other,
        // and every probe opens a fresh connection as a client would.
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(concat!("meridian-health/", env!("CARGO_PKG_VERSION")))
}

/// A ready-to-run probe.
pub struct Runner {
    pub target: Target,
    how: How,
}

enum How {
    Tcp(SocketAddr),
    Http {
        client: reqwest::Client,
        url: String,
        http: HttpCheck,
    },
    /// The probe cannot run (bad TLS setup): every result is this failure.
    Broken(String),
}

impl Runner {
    pub fn new(target: Target, tls: &Tls) -> Runner {
        let sock = SocketAddr::new(target.addr, target.check.port);
        let how = match &target.check.kind {
            CheckKind::Tcp => How::Tcp(sock),
            CheckKind::Http(h) => How::Http {
                client: tls.plain.clone(),
                url: format!("http://{sock}{}", h.path),
                http: h.clone(),
            },
            CheckKind::Https(h) => match tls.config_for(h) {
                Err(e) => How::Broken(e),
                Ok(cfg) => {
                    // With a host name, connect to the target address but speak to the name:
                    // Host header and SNI both carry it, as a browser's request would.
                    let mut b = base_builder(cfg);
                    let url = match &h.host {
                        Some(host) => {
                            b = b.resolve(host, sock);
                            format!("https://{host}:{}{}", sock.port(), h.path)
                        }
                        None => format!("https://{sock}{}", h.path),
                    };
                    match b.build() {
                        Ok(client) => How::Http {
                            client,
                            url,
                            http: h.clone(),
                        },
                        Err(e) => How::Broken(format!("https client: {e}")),
                    }
                }
            },
        };
        Runner { target, how }
    }

    /// Runs the probe once, within the check's timeout.
    pub async fn run(&self) -> Report {
        let start = Instant::now();
        let timeout = self.target.check.timeout;
        let result = match tokio::time::timeout(timeout, self.attempt()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        Report {
            ok: result.is_ok(),
            latency: start.elapsed(),
            error: result.err(),
        }
    }

    async fn attempt(&self) -> Result<(), String> {
        match &self.how {
            How::Broken(e) => Err(e.clone()),
            How::Tcp(sock) => tokio::net::TcpStream::connect(sock)
                .await
                .map(drop)
                .map_err(|e| format!("connect: {e}")),
            How::Http { client, url, http } => {
                let method =
                    reqwest::Method::from_bytes(http.method.as_bytes()).unwrap_or(reqwest::Method::GET);
                let mut req = client.request(method, url);
                if let (Some(host), CheckKind::Http(_)) = (&http.host, &self.target.check.kind) {
                    req = req.header(reqwest::header::HOST, host);
                }
                for (k, v) in &http.headers {
                    req = req.header(k, v);
                }
                let mut resp = req.send().await.map_err(|e| chain(&e))?;
                let status = resp.status().as_u16();
                if !http.expect_status.contains(&status) {
                    return Err(format!("status {status}, expected {:?}", http.expect_status));
                }
                if let Some(needle) = &http.body_contains {
                    let mut body = Vec::new();
                    while let Some(chunk) = resp.chunk().await.map_err(|e| chain(&e))? {
                        body.extend_from_slice(&chunk);
                        if body.len() >= BODY_LIMIT {
                            break;
                        }
                    }
                    if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
                        return Err(format!("body does not contain `{needle}`"));
                    }
                }
                Ok(())
            }
        }
    }
}

/// An error and its causes, on one line (the cause is where TLS says what was wrong).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Accepts any certificate: `tls_verify: false`. Signatures are still checked, so the
/// handshake is real; only the chain of trust and the name are not.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl NoVerify {
    fn new() -> Self {
        NoVerify(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
