//! `meridian ctl`: the admin API's command-line client. The address comes from `--admin` or
//! the configuration's `admin.listen`, the token from `--token-file` or `MERIDIAN_TOKEN`
//! (never from the command line, where `ps` would show it). Answers are printed for a person
//! (`render`) or, with `--json`, as the API's JSON.
//!
//! `client` is the only file that knows the HTTP library; this one parses arguments into
//! requests and prints what comes back.

pub mod client;
pub mod render;

use client::{Client, Error, Method, Reply, Target, TokenSource};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The environment variable a token may be given in.
pub const TOKEN_ENV: &str = "MERIDIAN_TOKEN";

/// The options every `meridian ctl` command takes.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    export MERIDIAN_TOKEN=$(cat secrets/ops.token)\n  \
    meridian ctl status\n  \
    meridian ctl drain eu-west\n  \
    meridian ctl explain www.gslb.example.com --client 10.20.0.0/16\n  \
    meridian ctl events --follow\n  \
    meridian ctl zone get gslb.example.com > zone.yaml && $EDITOR zone.yaml && \
    meridian ctl zone put gslb.example.com zone.yaml")]
pub struct CtlArgs {
    /// The configuration whose admin.listen names the API's address.
    #[arg(short, long, default_value = "meridian.yaml", global = true)]
    pub config: PathBuf,
    /// The API's address (like https://ns1.example.net:8053, http://127.0.0.1:8053, or
    /// 127.0.0.1:8053 for http://); replaces admin.listen (and admin.tls's https://).
    #[arg(long, value_name = "URL", global = true)]
    pub admin: Option<String>,
    /// A file holding the token (else the MERIDIAN_TOKEN environment variable; a token is never
    /// given on the command line).
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// For https://: trust this CA certificate (PEM) instead of the system's.
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Send the token over plain http:// to an address that is not loopback (it crosses the
    /// network readable by anyone on the path; serve the API with admin.tls instead).
    #[arg(long, global = true)]
    pub insecure_http: bool,
    /// Print the API's JSON as it comes, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(clap::Subcommand)]
pub enum CtlCommand {
    /// The server: version, zones, data centers down, partition guard, overrides, and where
    /// each balanced name sends clients now.
    Status,
    /// For every balanced name and rule: where clients go now, what is passed over and why, and
    /// the A answer (the table `status` ends with).
    Gslb,
    /// Data centers and their endpoints: state, why, override, weight, last check.
    Datacenters {
        /// One data center only (its name, like eu-west).
        dc: Option<String>,
    },
    /// Take a data center (or one endpoint, DC/ADDRESS) out of every answer.
    Drain {
        /// A data center (eu-west) or one of its endpoints (eu-west/198.51.100.10).
        #[arg(value_name = "DC|DC/ADDRESS")]
        target: String,
    },
    /// Give a drained data center (or endpoint) back to its health checks.
    Undrain {
        /// A data center (eu-west) or one of its endpoints (eu-west/198.51.100.10).
        #[arg(value_name = "DC|DC/ADDRESS")]
        target: String,
    },
    /// Force a data center (or endpoint) up or down, or give it back to its checks (auto).
    Override {
        /// A data center (eu-west) or one of its endpoints (eu-west/198.51.100.10).
        #[arg(value_name = "DC|DC/ADDRESS")]
        target: String,
        /// up or down forces it; auto gives it back to its health checks.
        #[arg(value_enum)]
        state: ForcedArg,
    },
    /// Set a data center's weight in every name (N), or go back to the configured ones (auto).
    Weight {
        /// The data center.
        dc: String,
        /// A weight (1 to 1000000) used in every name, or auto for the configured weights.
        #[arg(value_name = "N|auto")]
        weight: String,
    },
    /// The answer a client gets for a name now, and every step of the decision (asked of the
    /// running server, with its health and overrides).
    Explain {
        /// The name asked, like www.gslb.example.com.
        name: String,
        /// The record type.
        #[arg(default_value = "A")]
        qtype: String,
        /// The client: an address, or a subnet as an EDNS Client Subnet would carry it.
        #[arg(long, value_name = "IP[/PREFIX]")]
        client: String,
    },
    /// Recent transitions (health, overrides, reloads, zone edits), oldest first.
    Events {
        /// Keep printing transitions as they happen, until the server stops or Ctrl-C. A
        /// dropped connection is opened again (up to 5 times in a row), from the last event
        /// printed: none is printed twice, and events the server no longer holds are said.
        #[arg(short, long)]
        follow: bool,
    },
    /// Re-read configuration and zones from disk (nothing changes unless all of it is valid).
    Reload,
    /// Read or replace a whole zone.
    Zone {
        #[command(subcommand)]
        command: ZoneCommand,
    },
}

#[derive(clap::Subcommand)]
pub enum ZoneCommand {
    /// Print a zone as YAML, its ETag in a first comment line (`# etag: "…"`), which `zone put`
    /// sends back as If-Match. With --json, the API's JSON with one more top-level key, `etag`,
    /// which `zone put` takes out and sends back the same way.
    Get {
        /// The zone's name, like gslb.example.com.
        zone: String,
    },
    /// Replace a zone with a YAML (or JSON) file, like one `zone get` wrote. The file's ETag
    /// (its `# etag:` line or `etag` key, or --if-match) is sent as If-Match: if the zone
    /// changed since, nothing is written and the command fails. A file without an ETag is
    /// refused unless --force is given: it would overwrite any edit made since it was read.
    Put {
        /// The zone's name, like gslb.example.com.
        zone: String,
        /// The zone as YAML or JSON (the structure of a zone file).
        file: PathBuf,
        /// The ETag to send as If-Match (`*`: the zone must exist), instead of the file's.
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
        /// Write the file even without an ETag, over whatever the zone holds now (a new zone,
        /// or a file written by hand).
        #[arg(long, conflicts_with = "if_match")]
        force: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ForcedArg {
    Up,
    Down,
    Auto,
}

impl ForcedArg {
    fn as_str(self) -> &'static str {
        match self {
            ForcedArg::Up => "up",
            ForcedArg::Down => "down",
            ForcedArg::Auto => "auto",
        }
    }
}

/// Why `meridian ctl` could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Api(#[from] Error),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(String),
}

/// Runs one `meridian ctl` command; failures are printed to stderr, exit code 1.
pub fn run(args: CtlArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meridian ctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian ctl: {e}");
            if let CtlError::Api(Error::Api { problems, .. }) = &e {
                for p in problems {
                    eprintln!("  {p}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

async fn execute(args: CtlArgs) -> Result<(), CtlError> {
    let target = target(args.admin.as_deref(), &args.config)?;
    let token = token(args.token_file.as_deref())?;
    let client = Client::new(target, token, args.ca_file.as_deref(), args.insecure_http)?;
    let json = args.json;
    match args.command {
        CtlCommand::Status => {
            let status = client.get("/api/v1/status").await?;
            if json {
                print_json(&status.body);
            } else {
                let gslb = client.get("/api/v1/gslb").await?;
                print!("{}", render::status(&status.body, &gslb.body));
            }
        }
        CtlCommand::Gslb => {
            let reply = client.get("/api/v1/gslb").await?;
            if json {
                print_json(&reply.body);
            } else {
                print!("{}", render::gslb_table(&reply.body));
            }
        }
        CtlCommand::Datacenters { dc } => {
            let reply = match &dc {
                Some(dc) => {
                    client
                        .get(&format!("/api/v1/datacenters/{}", segment(dc)))
                        .await?
                }
                None => client.get("/api/v1/datacenters").await?,
            };
            if json {
                print_json(&reply.body);
            } else {
                let all = match dc {
                    Some(_) => Value::Array(vec![reply.body]),
                    None => reply.body,
                };
                print!("{}", render::datacenters(&all));
            }
        }
        CtlCommand::Drain { target } => {
            let path = format!("{}/drain", override_path(&target)?);
            changed(json, &client.send(Method::Post, &path, None, None).await?);
        }
        CtlCommand::Undrain { target } => {
            let path = format!("{}/undrain", override_path(&target)?);
            changed(json, &client.send(Method::Post, &path, None, None).await?);
        }
        CtlCommand::Override { target, state } => {
            let path = format!("{}/override", override_path(&target)?);
            let body = json!({ "state": state.as_str() });
            changed(json, &client.send(Method::Put, &path, Some(&body), None).await?);
        }
        CtlCommand::Weight { dc, weight } => {
            let weight: Value = match weight.as_str() {
                "auto" => Value::Null,
                n => n.parse::<u32>().map(Value::from).map_err(|_| {
                    CtlError::Usage(format!("weight `{n}` is neither a whole number nor `auto`"))
                })?,
            };
            let path = format!("/api/v1/datacenters/{}/weight", segment(&dc));
            let body = json!({ "weight": weight });
            let reply = client.send(Method::Put, &path, Some(&body), None).await?;
            if json {
                print_json(&reply.body);
            } else {
                let w = &reply.body["weight"];
                let subject = reply.body["subject"].as_str().unwrap_or(&dc).to_string();
                match w.as_u64() {
                    Some(n) => println!("{subject}: weight {n} in every name"),
                    None => println!("{subject}: configured weights"),
                }
            }
        }
        CtlCommand::Explain {
            name,
            qtype,
            client: who,
        } => {
            let path = format!(
                "/api/v1/explain?name={}&type={}&client={}",
                query_value(&name),
                query_value(&qtype),
                query_value(&who)
            );
            let reply = client.get(&path).await?;
            if json {
                print_json(&reply.body);
            } else {
                print!("{}", render::explain(&reply.body));
            }
        }
        CtlCommand::Events { follow: false } => {
            let reply = client.get("/api/v1/events").await?;
            if json {
                print_json(&reply.body);
            } else {
                print!("{}", render::events(&reply.body));
            }
        }
        CtlCommand::Events { follow: true } => follow_events(&client, json).await?,
        CtlCommand::Reload => {
            let reply = client.send(Method::Post, "/api/v1/reload", None, None).await?;
            if json {
                print_json(&reply.body);
            } else {
                println!(
                    "reloaded: snapshot generation {}",
                    render_value(&reply.body["generation"])
                );
            }
        }
        CtlCommand::Zone {
            command: ZoneCommand::Get { zone },
        } => {
            let reply = client.get(&format!("/api/v1/zones/{}", segment(&zone))).await?;
            if json {
                // The ETag as a key of the document, which `zone put` takes out again.
                let mut doc = reply.body.clone();
                if let (Some(tag), Some(map)) = (&reply.etag, doc.as_object_mut()) {
                    map.insert(ETAG_KEY.to_string(), Value::String(tag.clone()));
                }
                print_json(&doc);
            } else {
                print!("{}", zone_yaml(&reply)?);
            }
        }
        CtlCommand::Zone {
            command:
                ZoneCommand::Put {
                    zone,
                    file,
                    if_match,
                    force,
                },
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CtlError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let mut doc: Value = crate::config::source::parse_yaml(&file, &text)
                .map_err(|p| CtlError::Usage(p.to_string()))?;
            let key = doc
                .as_object_mut()
                .and_then(|m| m.remove(ETAG_KEY))
                .and_then(|v| v.as_str().map(str::to_string));
            let tag = if_match.or_else(|| etag_line(&text)).or(key);
            if tag.is_none() && !force {
                return Err(CtlError::Usage(format!(
                    "{} has no ETag (no `# etag:` line, no `etag` key): it could overwrite edits \
                     made since it was read. Read the zone with `meridian ctl zone get {zone}`, \
                     edit that copy and put it; or give --force to write this file over whatever \
                     the zone holds now",
                    file.display()
                )));
            }
            let path = format!("/api/v1/zones/{}", segment(&zone));
            let reply = client
                .send(Method::Put, &path, Some(&doc), tag.as_deref())
                .await?;
            if json {
                print_json(&reply.body);
            } else {
                let serial = reply.body.get("serial").map(render_value);
                match serial {
                    Some(s) => println!("{zone}: written, SOA serial {s}"),
                    None => println!("{zone}: written"),
                }
                if let Some(tag) = &reply.etag {
                    println!("etag: {tag}");
                }
            }
        }
    }
    Ok(())
}

/// The top-level key of `--json zone get`'s document holding the zone's ETag.
const ETAG_KEY: &str = "etag";

/// `events --follow`: prints each event as it comes; a dropped connection is opened again from
/// the last event printed (`Last-Event-ID`), at most [`RETRIES`] times in a row.
async fn follow_events(client: &Client, json: bool) -> Result<(), CtlError> {
    const RETRIES: u32 = 5;
    let mut last: Option<u64> = None;
    let mut failures = 0;
    loop {
        let printed_before = last;
        let result = client
            .follow("/api/v1/events?follow=1", last, |kind, id, data| {
                let line = match (kind, serde_json::from_str::<Value>(data)) {
                    _ if json => data.to_string(),
                    ("skipped", Ok(v)) => format!(
                        "-- {} events skipped: {}",
                        render_value(&v["skipped"]),
                        render_value(&v["reason"])
                    ),
                    (_, Ok(e)) => render::event(&e),
                    (_, Err(_)) => data.to_string(),
                };
                if id.is_some() {
                    last = id;
                }
                let mut out = std::io::stdout().lock();
                // Flushed per event: a follower is usually piped or watched live.
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            })
            .await;
        match result {
            // The server ended the stream: it is stopping.
            Ok(()) => return Ok(()),
            Err(Error::Lost { .. } | Error::Connect { .. }) if failures < RETRIES => {
                failures = if last != printed_before { 1 } else { failures + 1 };
                let after = last.map_or("the start".to_string(), |n| format!("event {n}"));
                eprintln!(
                    "meridian ctl: the event stream was cut; reconnecting from {after} ({failures} of {RETRIES})"
                );
                tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(failures))).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The API's address: `--admin`, else the configuration's `admin.listen` (a wildcard address
/// is reached on loopback), over `https://` when the configuration has `admin.tls`.
fn target(admin: Option<&str>, config: &Path) -> Result<Target, CtlError> {
    if let Some(url) = admin {
        let base = if url.contains("://") {
            url.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", url.trim_end_matches('/'))
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CtlError::Usage(format!(
                "--admin `{url}`: give http://HOST:PORT or https://HOST:PORT"
            )));
        }
        return Ok(Target {
            base,
            from: "--admin".to_string(),
        });
    }
    let listen = crate::config::load_admin_listen(config).map_err(|problems| {
        CtlError::Config(format!(
            "cannot read admin.listen (give --admin URL to name the API's address):\n{problems}"
        ))
    })?;
    let Some(crate::config::AdminListen { mut addr, tls }) = listen else {
        return Err(CtlError::Config(format!(
            "the admin API is off in {} (admin.listen: off); give --admin URL",
            config.display()
        )));
    };
    if addr.port() == 0 {
        return Err(CtlError::Config(format!(
            "admin.listen in {} has port 0 (the server picks one at start); give --admin with \
             the address it bound (its --ready-file names it)",
            config.display()
        )));
    }
    if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        addr.set_ip(loopback);
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(Target {
        base: format!("{scheme}://{addr}"),
        from: format!("admin.listen in {}", config.display()),
    })
}

/// The token: from `--token-file`, else `MERIDIAN_TOKEN`, else none (reads are open on a
/// server without tokens).
fn token(file: Option<&Path>) -> Result<Option<(String, TokenSource)>, CtlError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CtlError::Usage(format!("--token-file {}: {e}", path.display())))?;
        let t = text.trim();
        if t.is_empty() {
            return Err(CtlError::Usage(format!(
                "--token-file {}: the file is empty",
                path.display()
            )));
        }
        return Ok(Some((t.to_string(), TokenSource::File(path.to_path_buf()))));
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(|t| (t, TokenSource::Env)))
}

/// The API path of a data center (`DC`) or an endpoint (`DC/ADDRESS`).
fn override_path(target: &str) -> Result<String, CtlError> {
    match target.split_once('/') {
        None => Ok(format!("/api/v1/datacenters/{}", segment(target))),
        Some((dc, addr)) if !dc.is_empty() && !addr.is_empty() => {
            Ok(format!("/api/v1/endpoints/{}/{}", segment(dc), segment(addr)))
        }
        _ => Err(CtlError::Usage(format!(
            "`{target}`: give a data center (eu) or an endpoint (eu/192.0.2.1)"
        ))),
    }
}

/// Prints the answer to an override: `subject: old -> new`.
fn changed(json: bool, reply: &Reply) {
    if json {
        print_json(&reply.body);
    } else {
        println!(
            "{}: {} -> {}",
            render_value(&reply.body["subject"]),
            render_value(&reply.body["old"]),
            render_value(&reply.body["new"])
        );
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A zone as YAML, its ETag in the first line as a comment `zone put` reads back.
fn zone_yaml(reply: &Reply) -> Result<String, CtlError> {
    let yaml = serde_saphyr::to_string(&reply.body)
        .map_err(|e| CtlError::Usage(format!("cannot write the zone as YAML: {e}")))?;
    Ok(match &reply.etag {
        Some(tag) => format!("# etag: {tag}\n{yaml}"),
        None => yaml,
    })
}

/// The ETag of a `# etag: "…"` line at the top of a file `zone get` wrote.
fn etag_line(text: &str) -> Option<String> {
    text.lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .find_map(|l| l.trim_start().strip_prefix("#")?.trim().strip_prefix("etag:"))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// A path segment: names, data centers and addresses are plain text, but anything that would
/// change the path's meaning is escaped (the server refuses what is not a name or address).
fn segment(text: &str) -> String {
    escape(text, |b| b.is_ascii_alphanumeric() || b"-._~:*@".contains(&b))
}

/// A query value, escaped.
fn query_value(text: &str) -> String {
    escape(text, |b| b.is_ascii_alphanumeric() || b"-._~:/".contains(&b))
}

fn escape(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_line_is_read_back() {
        assert_eq!(
            etag_line("# etag: \"abc\"\nzone: example.test.\n").as_deref(),
            Some("\"abc\"")
        );
        assert_eq!(etag_line("zone: example.test.\n# etag: \"abc\"\n"), None);
        assert_eq!(etag_line("zone: x\n"), None);
    }

    #[test]
    fn the_address_comes_from_admin_or_admin_listen() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("meridian.yaml");
        let t = |text: &str, admin: Option<&str>| {
            std::fs::write(&cfg, text).unwrap();
            target(admin, &cfg)
                .map(|t| (t.base, t.from))
                .map_err(|e| e.to_string())
        };
        let from = format!("admin.listen in {}", cfg.display());
        assert_eq!(t("{}", None), Ok(("http://127.0.0.1:8053".into(), from.clone())));
        assert_eq!(
            t("admin: { listen: \"0.0.0.0:9000\" }", None),
            Ok(("http://127.0.0.1:9000".into(), from.clone()))
        );
        assert_eq!(
            t("admin: { listen: \"[::]:9000\" }", None),
            Ok(("http://[::1]:9000".into(), from.clone()))
        );
        // admin.tls: https, its files not read (they need not exist for the client).
        assert_eq!(
            t(
                "admin: { listen: \"0.0.0.0:9000\", tls: { cert_file: /no/c.pem, key_file: /no/k.pem } }",
                None
            ),
            Ok(("https://127.0.0.1:9000".into(), from))
        );
        assert!(
            t("admin: { listen: off }", None)
                .unwrap_err()
                .contains("admin.listen: off")
        );
        assert!(
            t("admin: { listen: nowhere }", None)
                .unwrap_err()
                .contains("`nowhere` is not an address:port")
        );
        assert_eq!(
            t("admin: { listen: off }", Some("10.0.0.1:8053/")),
            Ok(("http://10.0.0.1:8053".into(), "--admin".into()))
        );
        assert!(t("{}", Some("ftp://x")).is_err());
    }

    #[test]
    fn targets_are_datacenters_or_endpoints() {
        assert_eq!(override_path("eu").unwrap(), "/api/v1/datacenters/eu");
        assert_eq!(
            override_path("eu/2001:db8::1").unwrap(),
            "/api/v1/endpoints/eu/2001:db8::1"
        );
        assert!(override_path("eu/").is_err());
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(query_value("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(query_value("a&b=c"), "a%26b%3Dc");
    }
}
