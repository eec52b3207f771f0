//! Checks raw files and builds the model. Pure but for reading the files named by the config.

use super::gslb::{self as gslb_cfg, GslbContext};
use super::raw::{Entries, RawConfig, RawValue, RawZone};
use super::source::{Loc, parse_duration, problem_at};
use super::zonefile::{self, TextError, check_ttl, parse_rdata};
use super::{Config, DnsConfig, LogConfig, LogFormat, Problem, Problems};
use crate::geo::GeoDb;
use crate::model::gslb::GslbName;
use crate::model::{Node, RData, RRset, RType, Soa, Zone};
use crate::name::Name;
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default zone TTL when a zone file names none.
pub const DEFAULT_ZONE_TTL: u32 = 3600;
/// The SOA serial of a zone whose `soa:` gives none.
pub const DEFAULT_SOA_SERIAL: u32 = 1;

fn read_text(path: &Path, overlay: &Overlay) -> Result<String, Problem> {
    if let Some(entry) = overlay.files.get(path) {
        return entry.clone().ok_or_else(|| Problem {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: "file removed".into(),
        });
    }
    std::fs::read_to_string(path).map_err(|e| Problem {
        file: path.to_path_buf(),
        line: 1,
        col: 1,
        message: format!("cannot read file: {e}"),
    })
}

/// The YAML parser's limits for a file of `len` bytes. serde-saphyr's defaults (250,000 nodes,
/// 1,000,000 events, 64 MiB of scalars) suit configuration files but stop a zone at about
/// 50,000 records. Without aliases a document cannot hold more nodes or scalar bytes than it
/// has bytes (nor more than three events per node), so those limits grow with the file and only
/// the file's size bounds them; what makes a small file expand (aliases, anchors, nesting)
/// keeps the parser's defaults.
fn yaml_budget(len: usize) -> serde_saphyr::Budget {
    let mut b = serde_saphyr::Budget::default();
    b.max_nodes = b.max_nodes.max(len);
    b.max_events = b.max_events.max(len.saturating_mul(3));
    b.max_total_scalar_bytes = b.max_total_scalar_bytes.max(len);
    b
}

/// What to do when a YAML file breaches the parser's limits.
const BUDGET_ADVICE: &str = "a limit of the YAML parser against alias expansion (at most \
    50,000 anchors, 50,000 aliases and 10 aliases per anchor past the first 100, nesting 64 \
    deep; the node and text limits grow with the file, see docs/configuration.md, Large \
    zones); write repeated data out instead of aliasing it, or move large record sets to an \
    RFC 1035 master file with `import:`";

/// Parses YAML into `T`, turning a parser error into a positioned problem.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, Problem> {
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(yaml_budget(text.len()));
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line() as u32, l.column() as u32))
            .unwrap_or((1, 1));
        let mut message = e.without_snippet().to_string();
        // The position is given once, in front, like every other problem.
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        let mut message = message.strip_prefix("error: ").unwrap_or(&message).to_string();
        if message.contains("budget breached") {
            message = format!("{message}: {BUDGET_ADVICE}");
        }
        Problem {
            file: file.to_path_buf(),
            line,
            col,
            message,
        }
    })
}

/// This host's name (for `dns.nsid: hostname`).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

// === config ===

/// Listen lists that cannot bind, found without binding (so `check` may run beside a running
/// server): an address listed twice, a wildcard and a specific address of the same family on
/// the same port (the second bind fails), an IPv4-mapped IPv6 address (IPv6 sockets are
/// IPv6-only). Port 0 takes a free port each time, so it never conflicts. Returns, per
/// offending entry, its index and the problem.
pub fn listen_problems(addrs: &[SocketAddr]) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        if let std::net::IpAddr::V6(v6) = a.ip()
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            problems.push((
                i,
                format!(
                    "{a} is an IPv4-mapped address: list it as {}",
                    SocketAddr::from((v4, a.port()))
                ),
            ));
            continue;
        }
        if a.port() == 0 {
            continue;
        }
        let earlier = addrs[..i].iter().find(|b| {
            b.port() == a.port() && b.is_ipv4() == a.is_ipv4() && {
                b.ip() == a.ip() || b.ip().is_unspecified() || a.ip().is_unspecified()
            }
        });
        match earlier {
            Some(b) if b.ip() == a.ip() => problems.push((i, format!("{a} is listed twice"))),
            Some(b) => problems.push((
                i,
                format!(
                    "{a} overlaps {b}: the wildcard address already takes port {} on every address of its \
                     family, so both cannot bind; list either the wildcard or the specific addresses",
                    a.port()
                ),
            )),
            None => {}
        }
    }
    problems
}

/// Files to read from memory instead of disk: `Some(text)` replaces or adds a file, `None`
/// removes it. Lets an edit be validated as the whole configuration it would produce, before
/// anything is written.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    pub files: HashMap<PathBuf, Option<String>>,
}

pub(super) fn load(
    path: &Path,
    previous_geo: Option<&Arc<GeoDb>>,
    overlay: &Overlay,
) -> Result<Config, Problems> {
    let text = read_text(path, overlay).map_err(|p| Problems(vec![p]))?;
    let raw: RawConfig = parse_yaml(path, &text).map_err(|p| Problems(vec![p]))?;
    let mut problems = Vec::new();
    let base = path.parent().unwrap_or(Path::new("."));

    let mut listen = Vec::new();
    for addr in raw.dns.listen.iter().flatten() {
        match addr.value.parse::<SocketAddr>() {
            Ok(a) => listen.push(a),
            Err(_) => problems.push(problem_at(
                path,
                addr,
                format!(
                    "dns.listen: `{}` is not an address:port (like 127.0.0.1:53 or [::1]:53)",
                    addr.value
                ),
            )),
        }
    }
    match &raw.dns.listen {
        None => listen.push(SocketAddr::from(([127, 0, 0, 1], 5353))),
        // Conflicts are looked for once every entry parses (indexes then match).
        Some(entries) if entries.len() == listen.len() => {
            for (i, message) in listen_problems(&listen) {
                problems.push(problem_at(path, &entries[i], format!("dns.listen: {message}")));
            }
        }
        Some(_) => {}
    }
    let cpus = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    let udp_workers = match &raw.dns.udp_workers {
        None => cpus,
        Some(n) => NonZeroUsize::new(n.value as usize)
            .filter(|n| n.get() <= 256)
            .unwrap_or_else(|| {
                problems.push(problem_at(path, n, "dns.udp_workers must be between 1 and 256"));
                cpus
            }),
    };
    let tcp_idle_timeout = match &raw.dns.tcp_idle_timeout {
        None => Duration::from_secs(10),
        Some(t) => parse_duration(&t.value).unwrap_or_else(|m| {
            problems.push(problem_at(path, t, format!("dns.tcp_idle_timeout: {m}")));
            Duration::from_secs(10)
        }),
    };
    let tcp_max_connections = match &raw.dns.tcp_max_connections {
        None => NonZeroUsize::new(1024).expect("nonzero"),
        Some(n) => NonZeroUsize::new(n.value as usize).unwrap_or_else(|| {
            problems.push(problem_at(path, n, "dns.tcp_max_connections must be at least 1"));
            NonZeroUsize::MIN
        }),
    };
    let shutdown_grace = match &raw.dns.shutdown_grace {
        None => Duration::from_secs(5),
        Some(t) => parse_duration(&t.value).unwrap_or_else(|m| {
            problems.push(problem_at(path, t, format!("dns.shutdown_grace: {m}")));
            Duration::from_secs(5)
        }),
    };
    let nsid = match &raw.dns.nsid {
        None => None,
        Some(n) if n.value == "hostname" => Some(hostname()),
        Some(n) if n.value.is_empty() || n.value.len() > 255 => {
            problems.push(problem_at(
                path,
                n,
                "dns.nsid: between 1 and 255 characters, or `hostname`",
            ));
            None
        }
        Some(n) => Some(n.value.clone()),
    };
    let format = match raw.log.format.as_ref().map(|f| (f, f.value.as_str())) {
        None | Some((_, "text")) => LogFormat::Text,
        Some((_, "json")) => LogFormat::Json,
        Some((f, other)) => {
            problems.push(problem_at(
                path,
                f,
                format!("log.format: `{other}` is neither `text` nor `json`"),
            ));
            LogFormat::Text
        }
    };
    let level = raw
        .log
        .level
        .as_ref()
        .map_or_else(|| "info".to_string(), |l| l.value.clone());
    if let Some(l) = &raw.log.level
        && tracing_subscriber::EnvFilter::try_new(&l.value).is_err()
    {
        problems.push(problem_at(
            path,
            l,
            format!(
                "log.level: `{}` is not a level or filter (like info, debug)",
                l.value
            ),
        ));
    }

    let checks = gslb_cfg::checks(path, base, &raw.checks.0, &mut problems);
    let datacenters = gslb_cfg::datacenters(path, &raw.datacenters.0, &checks, &mut problems);
    let health = super::HealthConfig {
        max_concurrent: match &raw.health.max_concurrent {
            None => NonZeroUsize::new(256).expect("nonzero"),
            Some(n) => NonZeroUsize::new(n.value as usize).unwrap_or_else(|| {
                problems.push(problem_at(path, n, "health.max_concurrent must be at least 1"));
                NonZeroUsize::MIN
            }),
        },
        partition_guard: raw.health.partition_guard.as_ref().is_none_or(|g| g.value),
        startup_wait: raw.health.startup_wait.as_ref().and_then(|w| {
            parse_duration(&w.value)
                .map_err(|m| problems.push(problem_at(path, w, format!("health.startup_wait: {m}"))))
                .ok()
        }),
    };
    let geoip = raw.geoip.as_ref().and_then(|g| {
        let file = base.join(&g.database.value);
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
        // The same file, unchanged: keep the database already indexed.
        if let Some(prev) =
            previous_geo.filter(|p| p.path == file && p.modified == modified && modified.is_some())
        {
            return Some(prev.clone());
        }
        GeoDb::open(&file)
            .map(Arc::new)
            .map_err(|e| problems.push(problem_at(path, &g.database, format!("geoip.database: {e}"))))
            .ok()
    });
    let geoip_check_interval = match raw.geoip.as_ref().and_then(|g| g.check_interval.as_ref()) {
        None => Duration::from_secs(5),
        Some(t) => parse_duration(&t.value)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| {
                problems.push(problem_at(
                    path,
                    t,
                    format!("geoip.check_interval: `{}` is not a duration above zero", t.value),
                ));
                Duration::from_secs(5)
            }),
    };
    let cx = GslbContext {
        datacenters: &datacenters,
        has_geoip: raw.geoip.is_some(),
    };

    let state_dir = base.join(raw.state_dir.as_ref().map_or("state", |z| z.value.as_str()));
    let admin = super::AdminConfig {
        listen: match &raw.admin.listen {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 8053))),
            Some(l) if l.value == "off" => None,
            Some(l) => l
                .value
                .parse()
                .map_err(|_| {
                    problems.push(problem_at(
                        path,
                        l,
                        format!("admin.listen: `{}` is not an address:port (or `off`)", l.value),
                    ))
                })
                .ok(),
        },
        tokens: raw
            .admin
            .tokens
            .iter()
            .filter_map(|t| {
                let t_ = &t.value;
                let role = match t_.role.value.as_str() {
                    "read" => super::Role::Read,
                    "admin" => super::Role::Admin,
                    other => {
                        problems.push(problem_at(
                            path,
                            &t_.role,
                            format!("admin.tokens: role `{other}` is neither `read` nor `admin`"),
                        ));
                        return None;
                    }
                };
                let file = base.join(&t_.token_file.value);
                match std::fs::read_to_string(&file) {
                    Ok(secret) if secret.trim().len() >= 16 => Some(super::Token {
                        name: t_.name.value.clone(),
                        role,
                        secret: secret.trim().to_string(),
                    }),
                    Ok(_) => {
                        problems.push(problem_at(
                            path,
                            &t_.token_file,
                            format!("admin.tokens: {} holds fewer than 16 characters", file.display()),
                        ));
                        None
                    }
                    Err(e) => {
                        problems.push(problem_at(
                            path,
                            &t_.token_file,
                            format!("admin.tokens: cannot read {}: {e}", file.display()),
                        ));
                        None
                    }
                }
            })
            .collect(),
        max_connections: match &raw.admin.max_connections {
            None => NonZeroUsize::new(256).expect("nonzero"),
            Some(n) => NonZeroUsize::new(n.value as usize).unwrap_or_else(|| {
                problems.push(problem_at(path, n, "admin.max_connections must be at least 1"));
                NonZeroUsize::MIN
            }),
        },
        header_timeout: admin_timeout(path, "header_timeout", &raw.admin.header_timeout, 10, &mut problems),
        idle_timeout: admin_timeout(path, "idle_timeout", &raw.admin.idle_timeout, 60, &mut problems),
        allowed_hosts: raw
            .admin
            .allowed_hosts
            .iter()
            .filter_map(|h| {
                let name = h.value.trim_end_matches('.').to_ascii_lowercase();
                let bare = name.strip_prefix("*.").unwrap_or(&name);
                let ok = !bare.is_empty()
                    && bare
                        .split('.')
                        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                if !ok {
                    problems.push(problem_at(
                        path,
                        h,
                        format!(
                            "admin.allowed_hosts: `{}` is not a host name (like meridian.internal or *.example.net)",
                            h.value
                        ),
                    ));
                }
                ok.then_some(name)
            })
            .collect(),
    };
    let zones_dir = base.join(raw.zones_dir.as_ref().map_or("zones", |z| z.value.as_str()));
    let zones = load_zones(&zones_dir, &cx, overlay, &mut problems);

    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    Ok(Config {
        path: path.to_path_buf(),
        dns: DnsConfig {
            listen,
            udp_workers,
            tcp_idle_timeout,
            tcp_max_connections,
            shutdown_grace,
            nsid,
        },
        log: LogConfig { format, level },
        zones_dir,
        state_dir,
        admin,
        zones,
        datacenters,
        geoip,
        geoip_check_interval,
        health,
    })
}

/// Every `*.yaml`/`*.yml` in `dir`, in name order.
pub fn zone_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn load_zones(dir: &Path, cx: &GslbContext<'_>, overlay: &Overlay, problems: &mut Vec<Problem>) -> Vec<Zone> {
    let files = zone_files(dir).map(|mut files| {
        for (p, entry) in &overlay.files {
            let is_zone = p.parent() == Some(dir) && p.extension().is_some_and(|x| x == "yaml" || x == "yml");
            match entry {
                Some(_) if is_zone && !files.contains(p) => files.push(p.clone()),
                None => files.retain(|f| f != p),
                _ => {}
            }
        }
        files.sort();
        files
    });
    let files = match files {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem {
                file: dir.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read the zones directory: {e}"),
            });
            return Vec::new();
        }
    };
    let mut zones = Vec::new();
    let mut seen: HashMap<Box<[u8]>, Loc> = HashMap::new();
    for file in files {
        match load_zone(&file, cx, overlay) {
            Ok((zone, loc)) => {
                if let Some(first) = seen.get(&zone.origin.key()) {
                    problems.push(loc.problem(format!(
                        "zone {} is already defined at {}",
                        zone.origin,
                        first.short()
                    )));
                    continue;
                }
                seen.insert(zone.origin.key(), loc);
                zones.push(zone);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    zones
}

// === zones ===

/// One record before RRsets are formed.
struct Rec {
    owner: Name,
    ttl: Option<u32>,
    rdata: RData,
    loc: Loc,
}

/// Reads and validates one zone file; returns the zone and where its `zone:` key is.
fn load_zone(file: &Path, cx: &GslbContext<'_>, overlay: &Overlay) -> Result<(Zone, Loc), Vec<Problem>> {
    let text = read_text(file, overlay).map_err(|p| vec![p])?;
    let raw: RawZone = parse_yaml(file, &text).map_err(|p| vec![p])?;
    let zone_loc = Loc::of(file, &raw.zone);
    let mut problems = Vec::new();
    let origin = match Name::parse(raw.zone.value.trim_end_matches('.'), Some(&Name::root())) {
        Ok(n) if n.label_count() > 0 => n,
        Ok(_) => {
            return Err(vec![zone_loc.problem("zone: the root zone cannot be served")]);
        }
        Err(e) => return Err(vec![zone_loc.problem(format!("zone: {e}"))]),
    };
    let default_ttl = match &raw.ttl {
        None => DEFAULT_ZONE_TTL,
        Some(t) => check_ttl(t.value).unwrap_or_else(|m| {
            problems.push(problem_at(file, t, format!("ttl: {m}")));
            DEFAULT_ZONE_TTL
        }),
    };
    let mut recs: Vec<Rec> = Vec::new();
    let name_at = |s: &Spanned<String>, problems: &mut Vec<Problem>| -> Option<Name> {
        Name::parse(&s.value, Some(&origin))
            .map_err(|e| problems.push(problem_at(file, s, e.to_string())))
            .ok()
    };

    if let Some(soa) = &raw.soa {
        let s = &soa.value;
        let mname = name_at(&s.mname, &mut problems);
        let rname = name_at(&s.rname, &mut problems);
        if let (Some(mname), Some(rname)) = (mname, rname) {
            let field = |f: &Option<Spanned<u32>>, default: u32| f.as_ref().map_or(default, |v| v.value);
            let soa_rdata = Soa {
                mname,
                rname,
                serial: field(&s.serial, DEFAULT_SOA_SERIAL),
                refresh: field(&s.refresh, 3600),
                retry: field(&s.retry, 600),
                expire: field(&s.expire, 1_209_600),
                minimum: field(&s.minimum, 60),
            };
            recs.push(Rec {
                owner: origin.clone(),
                ttl: None,
                rdata: RData::Soa(Box::new(soa_rdata)),
                loc: Loc::of(file, soa),
            });
        }
    }
    for ns in raw.ns.iter().flat_map(|l| l.value.iter()) {
        if let Some(target) = name_at(ns, &mut problems) {
            recs.push(Rec {
                owner: origin.clone(),
                ttl: None,
                rdata: RData::Ns(target),
                loc: Loc::of(file, ns),
            });
        }
    }
    if let Some(import) = &raw.import {
        let path = file.parent().unwrap_or(Path::new(".")).join(&import.value);
        match read_text(&path, overlay).map_err(|p| p.message) {
            Err(e) => problems.push(problem_at(
                file,
                import,
                format!("import: cannot read {}: {e}", path.display()),
            )),
            Ok(text) => match zonefile::parse_master(&text, &origin) {
                Err(e) => problems.push(Problem {
                    file: path.clone(),
                    line: e.line,
                    col: e.col,
                    message: e.message,
                }),
                Ok(master) => recs.extend(master.into_iter().map(|m| Rec {
                    owner: m.owner,
                    ttl: m.ttl,
                    rdata: m.rdata,
                    loc: Loc {
                        file: path.clone(),
                        line: m.line,
                        col: m.col,
                    },
                })),
            },
        }
    }
    one_entry_per_owner(
        file,
        &origin,
        "records",
        raw.records.0.iter().map(|e| &e.0),
        &mut problems,
    );
    one_entry_per_owner(
        file,
        &origin,
        "gslb",
        raw.gslb.0.iter().map(|e| &e.0),
        &mut problems,
    );
    yaml_records(file, &origin, &raw.records, &mut recs, &mut problems);
    let gslb: Vec<(GslbName, Loc)> = raw
        .gslb
        .0
        .iter()
        .filter_map(|(k, g)| gslb_cfg::gslb_name(file, &origin, k, g, cx, &mut problems))
        .collect();

    let zone = build_zone(origin, default_ttl, recs, gslb, &zone_loc, &mut problems);
    if problems.is_empty() {
        Ok((zone, zone_loc))
    } else {
        Err(problems)
    }
}

/// Two keys of one section that name the same owner (`www`, `WWW`, `www.example.test.`) would be
/// merged by DNS but edited apart by the API: refused.
fn one_entry_per_owner<'a>(
    file: &Path,
    origin: &Name,
    section: &str,
    keys: impl Iterator<Item = &'a Spanned<String>>,
    problems: &mut Vec<Problem>,
) {
    let mut seen: HashMap<Box<[u8]>, &Spanned<String>> = HashMap::new();
    for key in keys {
        let Ok(owner) = Name::parse(&key.value, Some(origin)) else {
            continue; // reported where the entry is read
        };
        match seen.entry(owner.key()) {
            std::collections::hash_map::Entry::Occupied(first) => problems.push(problem_at(
                file,
                key,
                format!(
                    "{section}: `{}` names the same owner as `{}` (line {}): one entry per name",
                    key.value,
                    first.get().value,
                    Loc::of(file, first.get()).line
                ),
            )),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(key);
            }
        }
    }
}

/// Turns the `records:` mapping into records.
fn yaml_records(
    file: &Path,
    origin: &Name,
    records: &Entries<Entries<Spanned<RawValue>>>,
    out: &mut Vec<Rec>,
    problems: &mut Vec<Problem>,
) {
    for (owner_key, entries) in &records.0 {
        let owner = match Name::parse(&owner_key.value, Some(origin)) {
            Ok(n) => n,
            Err(e) => {
                problems.push(problem_at(file, owner_key, e.to_string()));
                continue;
            }
        };
        let mut ttl = None;
        for (key, value) in &entries.0 {
            if key.value == "ttl" {
                match &value.value {
                    RawValue::Number(n) => match check_ttl(*n) {
                        Ok(t) => ttl = Some(t),
                        Err(m) => problems.push(problem_at(file, value, format!("ttl: {m}"))),
                    },
                    _ => problems.push(problem_at(file, value, "ttl: expected a number of seconds")),
                }
            }
        }
        for (key, value) in &entries.0 {
            if key.value == "ttl" {
                continue;
            }
            let Some(rtype) = RType::from_mnemonic(&key.value).filter(|t| RType::ZONE_TYPES.contains(t))
            else {
                problems.push(problem_at(
                    file,
                    key,
                    format!("`{}` is not a record type Meridian serves (A, AAAA, CNAME, MX, TXT, SRV, CAA, PTR, NS) or `ttl`", key.value),
                ));
                continue;
            };
            if rtype == RType::SOA {
                problems.push(problem_at(file, key, "the SOA is given by the zone's `soa:` key"));
                continue;
            }
            let items: Vec<(String, Loc)> = match &value.value {
                RawValue::Number(n) => vec![(n.to_string(), Loc::of(file, value))],
                RawValue::One(s) => vec![(s.clone(), Loc::of(file, value))],
                RawValue::Many(list) => list.iter().map(|s| (s.value.clone(), Loc::of(file, s))).collect(),
            };
            if rtype == RType::CNAME && items.len() > 1 {
                problems.push(problem_at(file, key, "a name has at most one CNAME"));
                continue;
            }
            for (text, loc) in items {
                match value_rdata(rtype, &text, origin) {
                    Ok(rdata) => out.push(Rec {
                        owner: owner.clone(),
                        ttl,
                        rdata,
                        loc,
                    }),
                    Err(e) => {
                        // Positions inside a one-line value are exact; otherwise the value's own.
                        let col = if e.line == 1 { loc.col + e.col - 1 } else { loc.col };
                        problems.push(Loc { col, ..loc }.problem(format!(
                            "records.{}.{}: {}",
                            owner_key.value, key.value, e.message
                        )));
                    }
                }
            }
        }
    }
}

/// Record data from a YAML value. TXT values are literal text, split in 255-octet strings;
/// everything else is read like a master-file line.
fn value_rdata(rtype: RType, text: &str, origin: &Name) -> Result<RData, TextError> {
    if rtype == RType::TXT {
        let chunks = text.as_bytes().chunks(255).map(Into::into).collect::<Vec<_>>();
        return Ok(RData::Txt(if chunks.is_empty() {
            vec![Box::from(&b""[..])]
        } else {
            chunks
        }));
    }
    let entries = zonefile::entries(text)?;
    let anchor = zonefile::Token {
        text: Vec::new(),
        quoted: false,
        line: 1,
        col: 1,
    };
    match entries.as_slice() {
        [] => parse_rdata(rtype, &[], origin, &anchor),
        [one] => parse_rdata(rtype, &one.tokens, origin, &anchor),
        [_, second, ..] => Err(TextError {
            line: second.line,
            col: second.col,
            message: "one record per value".into(),
        }),
    }
}

/// A node under construction: RRsets and where each record came from.
struct NodeBuild {
    name: Name,
    sets: Vec<(RRset, Vec<Loc>)>,
    gslb: Option<(GslbName, Loc)>,
}

fn build_zone(
    origin: Name,
    default_ttl: u32,
    recs: Vec<Rec>,
    gslb: Vec<(GslbName, Loc)>,
    zone_loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Zone {
    let mut index: HashMap<Box<[u8]>, usize> = HashMap::new();
    let mut nodes: Vec<NodeBuild> = Vec::new();
    for rec in recs {
        if !rec.owner.is_subdomain_of(&origin) {
            problems.push(
                rec.loc
                    .problem(format!("{} is outside zone {}", rec.owner, origin)),
            );
            continue;
        }
        if rec.rdata.rtype() == RType::SOA && rec.owner.key() != origin.key() {
            problems.push(
                rec.loc
                    .problem(format!("SOA belongs at the apex {origin}, not at {}", rec.owner)),
            );
            continue;
        }
        let key = rec.owner.key();
        let i = *index.entry(key).or_insert_with(|| {
            nodes.push(NodeBuild {
                name: rec.owner.clone(),
                sets: Vec::new(),
                gslb: None,
            });
            nodes.len() - 1
        });
        let node = &mut nodes[i];
        let rtype = rec.rdata.rtype();
        let ttl = rec.ttl.unwrap_or(default_ttl);
        match node.sets.iter_mut().find(|(s, _)| s.rtype == rtype) {
            Some((set, locs)) => {
                if rtype == RType::SOA || rtype == RType::CNAME {
                    problems.push(rec.loc.problem(format!(
                        "a second {rtype} at {}; the first is at {}",
                        rec.owner,
                        locs[0].short()
                    )));
                } else if set.ttl != ttl {
                    problems.push(rec.loc.problem(format!(
                        "TTL {ttl} differs from {} for the same {rtype} RRset at {} (RFC 2181 §5.2)",
                        set.ttl,
                        locs[0].short()
                    )));
                } else if !set.rdatas.contains(&rec.rdata) {
                    set.rdatas.push(rec.rdata);
                    locs.push(rec.loc);
                }
            }
            None => node.sets.push((
                RRset {
                    rtype,
                    ttl,
                    rdatas: vec![rec.rdata],
                },
                vec![rec.loc],
            )),
        }
    }

    for (g, loc) in gslb {
        if !g.owner.is_subdomain_of(&origin) {
            problems.push(loc.problem(format!("{} is outside zone {}", g.owner, origin)));
            continue;
        }
        let i = *index.entry(g.owner.key()).or_insert_with(|| {
            nodes.push(NodeBuild {
                name: g.owner.clone(),
                sets: Vec::new(),
                gslb: None,
            });
            nodes.len() - 1
        });
        // The name's A and AAAA answers come from the balancer; static ones would contradict it.
        if let Some((set, locs)) = nodes[i]
            .sets
            .iter()
            .find(|(s, _)| matches!(s.rtype, RType::A | RType::AAAA | RType::CNAME))
        {
            problems.push(loc.problem(format!(
                "{} is load-balanced under gslb: and cannot also have a static {} (at {})",
                g.owner,
                set.rtype,
                locs[0].short()
            )));
            continue;
        }
        nodes[i].gslb = Some((g, loc));
    }

    let apex_key = origin.key();
    let apex = index.get(&apex_key).map(|&i| &nodes[i]);
    if !apex.is_some_and(|n| n.sets.iter().any(|(s, _)| s.rtype == RType::SOA)) {
        problems.push(zone_loc.problem(format!(
            "zone {origin} has no SOA: add a `soa:` key (mname, rname)"
        )));
    }
    if !apex.is_some_and(|n| n.sets.iter().any(|(s, _)| s.rtype == RType::NS)) {
        problems.push(zone_loc.problem(format!(
            "zone {origin} has no NS records at its apex: add an `ns:` list"
        )));
    }

    // RFC 2181 §10.1: a CNAME stands alone.
    for node in &nodes {
        if let Some((_, locs)) = node.sets.iter().find(|(s, _)| s.rtype == RType::CNAME)
            && let Some((other, other_locs)) = node.sets.iter().find(|(s, _)| s.rtype != RType::CNAME)
        {
            problems.push(locs[0].problem(format!(
                "CNAME at {} cannot sit beside other data ({} at {})",
                node.name,
                other.rtype,
                other_locs[0].short()
            )));
        }
    }

    // Delegations: what lies at or below a cut must be NS or glue, and in-bailiwick NS targets
    // need glue or the child zone cannot be reached.
    let cuts: Vec<&NodeBuild> = nodes
        .iter()
        .filter(|n| n.name.key() != apex_key && n.sets.iter().any(|(s, _)| s.rtype == RType::NS))
        .collect();
    for node in &nodes {
        let Some(cut) = cuts.iter().find(|c| node.name.is_subdomain_of(&c.name)) else {
            continue;
        };
        let at_cut = node.name.key() == cut.name.key();
        if let Some((_, loc)) = &node.gslb {
            problems.push(loc.problem(format!(
                "{} is hidden by the delegation at {}",
                node.name, cut.name
            )));
        }
        for (set, locs) in &node.sets {
            let allowed = matches!(set.rtype, RType::A | RType::AAAA) || (at_cut && set.rtype == RType::NS);
            if !allowed {
                problems.push(locs[0].problem(format!(
                    "{} at {} is hidden by the delegation at {}; only NS and glue addresses may sit there",
                    set.rtype, node.name, cut.name
                )));
            }
        }
    }
    for cut in &cuts {
        let Some((set, locs)) = cut.sets.iter().find(|(s, _)| s.rtype == RType::NS) else {
            continue;
        };
        for (rdata, loc) in set.rdatas.iter().zip(locs) {
            let RData::Ns(target) = rdata else { continue };
            if !target.is_subdomain_of(&cut.name) {
                continue;
            }
            let has_glue = index.get(&target.key()).is_some_and(|&i| {
                nodes[i]
                    .sets
                    .iter()
                    .any(|(s, _)| matches!(s.rtype, RType::A | RType::AAAA))
            });
            if !has_glue {
                problems.push(loc.problem(format!(
                    "glue missing: NS target {target} lies inside the delegated {} but has no A or AAAA record",
                    cut.name
                )));
            }
        }
    }

    // A wildcard owner may not carry NS (RFC 4592 §4.2) and may not be a CNAME target loop.
    for node in &nodes {
        if node.name.is_wildcard()
            && let Some((_, locs)) = node.sets.iter().find(|(s, _)| s.rtype == RType::NS)
        {
            problems.push(locs[0].problem("NS at a wildcard name is not allowed (RFC 4592 §4.2)"));
        }
    }

    Zone {
        origin,
        source: zone_loc.file.clone(),
        nodes: nodes
            .into_iter()
            .map(|n| Node {
                name: n.name,
                rrsets: n.sets.into_iter().map(|(s, _)| s).collect(),
                gslb: n.gslb.map(|(g, _)| Arc::new(g)),
            })
            .collect(),
    }
}

/// An `admin.*_timeout` duration above zero, `default_secs` when absent.
fn admin_timeout(
    path: &Path,
    field: &str,
    value: &Option<Spanned<String>>,
    default_secs: u64,
    problems: &mut Vec<Problem>,
) -> Duration {
    let Some(v) = value else {
        return Duration::from_secs(default_secs);
    };
    parse_duration(&v.value)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| {
            problems.push(problem_at(
                path,
                v,
                format!(
                    "admin.{field}: `{}` is not a duration above zero (like 10s)",
                    v.value
                ),
            ));
            Duration::from_secs(default_secs)
        })
}

#[cfg(test)]
mod listen_tests {
    use super::listen_problems;
    use std::net::SocketAddr;

    fn problems(list: &[&str]) -> Vec<(usize, String)> {
        let addrs: Vec<SocketAddr> = list.iter().map(|a| a.parse().unwrap()).collect();
        listen_problems(&addrs)
    }

    #[test]
    fn listen_lists_that_cannot_bind() {
        // (list, index of the offending entry, words of the problem)
        let bad: &[(&[&str], usize, &str)] = &[
            (&["127.0.0.1:53", "127.0.0.1:53"], 1, "listed twice"),
            (&["0.0.0.0:53", "127.0.0.1:53"], 1, "overlaps 0.0.0.0:53"),
            (&["127.0.0.1:53", "0.0.0.0:53"], 1, "overlaps 127.0.0.1:53"),
            (&["[::]:53", "[::1]:53"], 1, "overlaps [::]:53"),
            (&["[::ffff:192.0.2.1]:53"], 0, "list it as 192.0.2.1:53"),
        ];
        for (list, index, words) in bad {
            let p = problems(list);
            assert_eq!(p.len(), 1, "{list:?}: {p:?}");
            assert_eq!(p[0].0, *index, "{list:?}");
            assert!(p[0].1.contains(words), "{list:?}: {}", p[0].1);
        }
        let good: &[&[&str]] = &[
            &["0.0.0.0:53", "[::]:53"],
            &["0.0.0.0:53", "[::1]:53"],
            &["127.0.0.1:53", "127.0.0.2:53", "[::1]:53"],
            &["127.0.0.1:0", "127.0.0.1:0", "0.0.0.0:0"],
            &["0.0.0.0:53", "127.0.0.1:5353"],
        ];
        for list in good {
            assert_eq!(problems(list), [], "{list:?}");
        }
    }
}
