//! The admin API over HTTP: the only code of `ctl` that knows reqwest's types. Requests go to
//! one base address with the token as `Authorization: Bearer`; answers come back as JSON
//! values, and every failure as an [`Error`] an operator can act on.

use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the admin API is, and where that address came from (said when it cannot be reached).
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://HOST:PORT` or `https://HOST:PORT`, without a trailing slash.
    pub base: String,
    /// Like `--admin` or `admin.listen in meridian.yaml`.
    pub from: String,
}

/// Where the token came from, for the advice given when it is refused.
#[derive(Clone, Debug)]
pub enum TokenSource {
    File(PathBuf),
    Env,
}

/// A request method of the API.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    Get,
    Post,
    Put,
}

/// An answer of the API: its ETag (zone reads and edits) and its JSON body.
#[derive(Debug)]
pub struct Reply {
    pub etag: Option<String>,
    pub body: Value,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the admin API at {} ({}): {reason}", target.base, target.from)]
    Connect { target: Target, reason: String },
    #[error("{}", auth_advice(*status, message, token))]
    Auth {
        status: u16,
        message: String,
        token: Option<TokenSource>,
    },
    #[error(
        "412: {message}\nnothing was written: someone changed the zone since it was read; get it \
         again, make your change in that copy, and put it"
    )]
    Stale { message: String },
    #[error("{}", api_error(*status, message, field.as_deref()))]
    Api {
        status: u16,
        message: String,
        field: Option<String>,
        /// The problems of a refused edit, one `file:line:col: message` a line.
        problems: Vec<String>,
    },
    #[error("the connection to the admin API at {} was lost: {reason}", target.base)]
    Lost { target: Target, reason: String },
    #[error("{}: {reason}", target.base)]
    Protocol { target: Target, reason: String },
    #[error("{0}")]
    Tls(String),
    #[error(
        "TLS with the admin API at {} ({}) failed: {cause}\n{advice}",
        target.base, target.from
    )]
    Certificate {
        target: Target,
        cause: String,
        advice: String,
    },
    #[error(
        "not sending the token in cleartext to {} ({}): plain http:// to an address that is not \
         loopback can be read on the way. Serve the API over HTTPS (admin.tls) and give \
         https://, or give --insecure-http to send it anyway over a network you trust",
        target.base, target.from
    )]
    Cleartext { target: Target },
}

fn auth_advice(status: u16, message: &str, token: &Option<TokenSource>) -> String {
    let advice = match (status, token) {
        (403, None) => {
            "give an admin token with --token-file FILE or the MERIDIAN_TOKEN environment variable".to_string()
        }
        (403, Some(_)) => "the token given is read-only: this needs one of role admin (admin.tokens in the \
                           server's configuration)"
            .to_string(),
        (_, None) => "give a token with --token-file FILE or the MERIDIAN_TOKEN environment variable".to_string(),
        (_, Some(TokenSource::File(p))) => format!(
            "the token in {} was refused: check it is one of admin.tokens (a token added to the \
             configuration applies at the server's next reload)",
            p.display()
        ),
        (_, Some(TokenSource::Env)) => "the token in MERIDIAN_TOKEN was refused: check it is one of admin.tokens \
                                        (a token added to the configuration applies at the server's next reload)"
            .to_string(),
    };
    format!("{status}: {message}\n{advice}")
}

fn api_error(status: u16, message: &str, field: Option<&str>) -> String {
    match field {
        Some(f) => format!("{status}: {message} (field: {f})"),
        None => format!("{status}: {message}"),
    }
}

/// A client of one server's admin API.
pub struct Client {
    http: reqwest::Client,
    target: Target,
    token: Option<(String, TokenSource)>,
    /// For the advice given when a certificate is refused.
    ca_file: Option<PathBuf>,
}

impl Client {
    /// A client of `target`. For `https://`, the server's certificate is checked against the
    /// system's trust roots, or against `ca_file` alone when given. A token is sent over plain
    /// `http://` only to a loopback address, or when `insecure_http`. No proxy is ever used
    /// (`http_proxy` and the like are ignored): the token goes to the API's address only.
    pub fn new(
        target: Target,
        token: Option<(String, TokenSource)>,
        ca_file: Option<&std::path::Path>,
        insecure_http: bool,
    ) -> Result<Client, Error> {
        if token.is_some() && !insecure_http && !safe_for_token(&target.base) {
            return Err(Error::Cleartext { target });
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let pem = std::fs::read(path)
                    .map_err(|e| Error::Tls(format!("--ca-file {}: {e}", path.display())))?;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
                    roots
                        .add(cert)
                        .map_err(|e| Error::Tls(format!("--ca-file {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(Error::Tls(format!(
                        "--ca-file {}: no certificate in it",
                        path.display()
                    )));
                }
            }
            None if target.base.starts_with("https:") => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
            // Plain HTTP: no roots are needed.
            None => {}
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            // The token goes to the API's address, never to a proxy an environment names.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("meridian-ctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Tls(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            target,
            token,
            ca_file: ca_file.map(std::path::Path::to_path_buf),
        })
    }

    /// `GET path` (like `/api/v1/status`).
    pub async fn get(&self, path: &str) -> Result<Reply, Error> {
        self.send(Method::Get, path, None, None).await
    }

    /// A request with an optional JSON body and `If-Match`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, Error> {
        let mut req = self.request(method, path).timeout(Duration::from_secs(60));
        if let Some(b) = body {
            // Serialized here: reqwest's `json` is a feature this build leaves out.
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        } else if !matches!(method, Method::Get) {
            req = req.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        if let Some(tag) = if_match {
            req = req.header(reqwest::header::IF_MATCH, tag);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let resp = self.check(resp).await?;
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        let body = serde_json::from_str(&text).map_err(|e| Error::Protocol {
            target: self.target.clone(),
            reason: format!("the answer is not JSON ({e}): {}", clip(&text)),
        })?;
        Ok(Reply { etag, body })
    }

    /// `GET path` as a stream of server-sent events, resumed after the event numbered
    /// `last_id` when given (`Last-Event-ID`): `each` is called with the type (`event:`), the
    /// number (`id:`) and the data of every event as it arrives, until the server ends the
    /// stream.
    pub async fn follow(
        &self,
        path: &str,
        last_id: Option<u64>,
        mut each: impl FnMut(&str, Option<u64>, &str),
    ) -> Result<(), Error> {
        let mut req = self
            .request(Method::Get, path)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let mut resp = self.check(resp).await?;
        let mut pending = Vec::new();
        let lost = |e: reqwest::Error| match self.transport(e) {
            Error::Connect { target, reason } => Error::Lost { target, reason },
            other => other,
        };
        while let Some(chunk) = resp.chunk().await.map_err(lost)? {
            pending.extend_from_slice(&chunk);
            // An event ends with an empty line; its `data:` lines hold the JSON.
            while let Some(end) = find(&pending, b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                let field = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.strip_prefix(' ').unwrap_or(v))
                };
                let id = field("id:").and_then(|v| v.trim().parse().ok());
                if !data.is_empty() {
                    each(field("event:").unwrap_or("message"), id, &data.join("\n"));
                }
            }
        }
        Ok(())
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.target.base);
        let mut req = match method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
            Method::Put => self.http.put(url),
        };
        if let Some((token, _)) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// A failure before any answer: a refused or timed-out connection says which address was
    /// tried and where it came from; a certificate refused says why and what to do.
    fn transport(&self, e: reqwest::Error) -> Error {
        if let Some(tls) = rustls_error(&e) {
            let (cause, advice) = certificate_advice(tls, self.ca_file.as_deref());
            return Error::Certificate {
                target: self.target.clone(),
                cause,
                advice,
            };
        }
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        if e.is_timeout() {
            reason = format!("timed out ({reason})");
        }
        Error::Connect {
            target: self.target.clone(),
            reason,
        }
    }

    /// A 2xx passes; any other status becomes the error its JSON body names.
    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, Error> {
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let body: Option<Value> = serde_json::from_str(&text).ok();
        let message = body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| clip(&text));
        let field = body
            .as_ref()
            .and_then(|b| b.get("field"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Err(match status {
            401 | 403 => Error::Auth {
                status,
                message,
                token: self.token.as_ref().map(|(_, s)| s.clone()),
            },
            412 => Error::Stale { message },
            _ => Error::Api {
                status,
                message,
                field,
                problems: body
                    .as_ref()
                    .and_then(|b| b.get("problems"))
                    .and_then(Value::as_array)
                    .map(|ps| ps.iter().map(problem_line).collect())
                    .unwrap_or_default(),
            },
        })
    }
}

/// Whether a token may go to `base` as it is: over `https://`, or to a loopback address
/// (`localhost` included), where it does not cross a network.
fn safe_for_token(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    if url.scheme() == "https" {
        return true;
    }
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The rustls error behind a failed request, if TLS is what failed (it travels inside
/// `std::io::Error`s, whose `source` skips it).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = rustls_error(inner)
        {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// What went wrong with TLS, and what to do about it.
fn certificate_advice(e: &rustls::Error, ca_file: Option<&std::path::Path>) -> (String, String) {
    use rustls::CertificateError as C;
    const GUIDE: &str = "docs/api.md, \"Over TLS\", has the openssl commands for a small CA and a server certificate signed by it";
    let trusted = match ca_file {
        Some(p) => format!("the CA in --ca-file {}", p.display()),
        None => "the system's trusted CAs (give --ca-file FILE to trust your own CA)".to_string(),
    };
    let advice = match e {
        rustls::Error::InvalidCertificate(C::Other(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            format!(
                "the server's certificate is itself a CA certificate (basicConstraints CA:TRUE, what \
             `openssl req -x509` makes by default), which is not accepted as a server's: sign the \
             server's certificate with a small CA and give that CA to --ca-file ({GUIDE})"
            )
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "the server's certificate is not signed by {trusted}; a self-signed server \
             certificate is not accepted ({GUIDE})"
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the server's certificate does not name the host in the address: its subjectAltName must \
             hold the name or IP address given (--admin, or admin.listen's address)"
                .to_string()
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the server's certificate is outside its validity dates: renew it (or check this \
             machine's clock)"
            .to_string(),
        rustls::Error::InvalidCertificate(_) => format!("the server's certificate was refused ({GUIDE})"),
        _ => "check that the address serves HTTPS (admin.tls) and that the server logs no TLS error"
            .to_string(),
    };
    (format!("{e}"), advice)
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.base, self.from)
    }
}

/// `file:line:col: message` of one problem of a refused edit.
fn problem_line(p: &Value) -> String {
    let s = |k: &str| p.get(k).map(|v| v.as_str().map_or(v.to_string(), str::to_string));
    format!(
        "{}:{}:{}: {}",
        s("file").unwrap_or_default(),
        s("line").unwrap_or_default(),
        s("col").unwrap_or_default(),
        s("message").unwrap_or_default()
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// At most 300 characters of a body that is not the API's JSON.
fn clip(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}
