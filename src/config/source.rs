//! Where configuration text comes from, and the small readers every part of the configuration
//! shares: files read from disk or from an [`Overlay`], YAML parsed with positioned problems,
//! durations, and the names that become labels. Builds on `diagnostics` (and on `raw`'s note of
//! the mapping key being read, for a parse error to name); `settings`,
//! `checks`, `datacenters`, `gslb` and `zones` all build on it.

use super::diagnostics::{Diagnostics, Loc, Problem, nearest};
use crate::lock::LockExt;
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files to read from memory instead of disk: `Some(text)` replaces or adds a file, `None`
/// removes it. Lets an edit be validated as the whole configuration it would produce, before
/// anything is written.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    pub files: HashMap<PathBuf, Option<String>>,
    /// `admin.tls`'s files are not read: an edit of zones or of the cluster's state is not
    /// refused over a certificate being renewed (the admin listener keeps serving its pair and
    /// reads the files itself). `check`, the start and a reload read them.
    pub admin_tls_unread: bool,
}

/// The text of `path`, from `overlay` when it has the file.
pub(crate) fn read_text(path: &Path, overlay: &Overlay) -> Result<String, Problem> {
    if let Some(entry) = overlay.files.get(path) {
        return entry
            .clone()
            .ok_or_else(|| Loc::start(path).problem("file removed"));
    }
    std::fs::read_to_string(path).map_err(|e| Loc::start(path).problem(format!("cannot read file: {e}")))
}

/// Files' digests by identity, kept between loads: a file whose device, inode, size, mtime and
/// ctime are those it had when it was hashed is not read again (a load of 1,000 unchanged zone
/// files then makes 1,000 `stat`s, not 1,000 reads). Like git's index, it trusts an identity only
/// for a file last changed before a margin (`racy`, 2 s by default) ahead of its reading: a second
/// write within the same timestamp tick, of the same size, would leave the identity as it was.
/// Such a file is read and hashed every time until it is old enough. Files given by an overlay
/// are always hashed from the overlay's text.
#[derive(Debug)]
pub struct FileDigests {
    known: std::sync::Mutex<HashMap<PathBuf, (FileId, crate::model::Digest)>>,
    racy: Duration,
    /// Files read to be hashed (for tests).
    reads: std::sync::atomic::AtomicUsize,
}

impl Default for FileDigests {
    fn default() -> Self {
        FileDigests::new(Duration::from_secs(2))
    }
}

use crate::file_id::FileId;

impl FileDigests {
    /// A cache trusting identities of files last changed at least `racy` before they were read.
    pub fn new(racy: Duration) -> FileDigests {
        FileDigests {
            known: Default::default(),
            racy,
            reads: Default::default(),
        }
    }

    /// How many files were read to be hashed so far.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The identity of `path` now (`None` when it cannot be read), and whether it may be kept.
    fn id(&self, path: &Path) -> Option<(FileId, bool)> {
        let id = FileId::of(path)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let changed = id.mtime.0.max(id.ctime.0);
        let settled = now - changed > self.racy.as_secs() as i64 || (self.racy.is_zero() && now >= changed);
        Some((id, settled))
    }

    /// The digest of `path` as `overlay` leaves it, from the cache when the file is as it was
    /// hashed; `None` when it cannot be read.
    pub(crate) fn digest(&self, path: &Path, overlay: &Overlay) -> Option<crate::model::Digest> {
        if let Some(text) = overlay.files.get(path) {
            return text.as_ref().map(|t| digest(t.as_bytes()));
        }
        let id = self.id(path)?;
        if let Some((known, d)) = self.known.locked().get(path)
            && *known == id.0
        {
            return Some(*d);
        }
        read_text(path, overlay)
            .ok()
            .map(|t| self.remember(path, Some(id), &t))
    }

    /// Reads `path` (as `overlay` leaves it): its text and digest, remembered for the next load.
    pub(crate) fn read(
        &self,
        path: &Path,
        overlay: &Overlay,
    ) -> Result<(String, crate::model::Digest), Problem> {
        // The identity before the text: a write in between makes the next identity differ.
        let id = if overlay.files.contains_key(path) {
            None
        } else {
            self.id(path)
        };
        let text = read_text(path, overlay)?;
        let d = self.remember(path, id, &text);
        Ok((text, d))
    }

    fn remember(&self, path: &Path, id: Option<(FileId, bool)>, text: &str) -> crate::model::Digest {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = digest(text.as_bytes());
        let mut known = self.known.locked();
        match id {
            Some((id, true)) => {
                known.insert(path.to_path_buf(), (id, d));
            }
            _ => {
                known.remove(path);
            }
        }
        d
    }
}

/// The SHA-256 of `bytes`: what a zone's stamp records of each file it was read from.
pub(crate) fn digest(bytes: &[u8]) -> crate::model::Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().try_into().expect("a SHA-256 digest is 32 bytes")
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

/// The parser's options for a YAML file of `len` bytes: its limits grow with the file (see
/// [`yaml_budget`]). Every reader of zone files uses them, so a zone that loads can be edited.
pub(crate) fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(yaml_budget(len));
    options
}

/// What to do when a YAML file breaches the parser's limits.
const BUDGET_ADVICE: &str = "a limit of the YAML parser against alias expansion (at most \
    50,000 anchors, 50,000 aliases and 10 aliases per anchor past the first 100, nesting 64 \
    deep; the node and text limits grow with the file, see docs/configuration.md, Large \
    zones); write repeated data out instead of aliasing it, or move large record sets to an \
    RFC 1035 master file with `import:`";

/// Parses YAML into `T`, turning a parser error into a positioned problem that names the field
/// at fault and, for a value of the wrong type, the form expected there (see [`expected_form`]).
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, Problem> {
    let options = || yaml_options(text.len());
    let e = match serde_saphyr::from_str_with_options(text, options()) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    // The path of keys down to the value that failed: serde-saphyr's errors give its position
    // but not which field it is. Found by reading the text again, tracking the path, only when
    // it fails: tracking slows the reading of a large zone (by a fifth to a half, in a debug build).
    let mut path = None;
    super::raw::track_entry_keys();
    let _ = serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        let mut track = serde_path_to_error::Track::new();
        let value = T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
        if value.is_err() {
            path = Some(field_path(&track.path(), super::raw::take_entry_keys()));
        }
        value
    });
    super::raw::take_entry_keys();
    let (line, col) = e
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((1, 1));
    let field = path.filter(|p| !p.is_empty());
    let message = yaml_message(&e, field.as_deref());
    Err(Problem {
        file: file.to_path_buf(),
        line,
        col,
        message,
        field,
    })
}

/// A serde path as the field paths of problems write it: `datacenters.eu.endpoints[0].weight`.
/// The keys serde-saphyr reads a `Spanned` value through (`value`, and its marker) are its own,
/// not the file's (no section of the files has a field named `value`), and are left out; the
/// keys of [`Entries`](super::raw::Entries), which the path cannot see, are `entry_keys`.
fn field_path(path: &serde_path_to_error::Path, entry_keys: Vec<String>) -> String {
    use serde_path_to_error::Segment;
    let mut entry_keys = entry_keys.into_iter();
    let mut out = String::new();
    let push = |out: &mut String, key: &str| {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    };
    for seg in path {
        match seg {
            Segment::Map { key } if key == "value" || key.starts_with("__") => {}
            Segment::Map { key } => push(&mut out, key),
            Segment::Unknown => {
                if let Some(key) = entry_keys.next() {
                    push(&mut out, &key);
                }
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Enum { .. } => {}
        }
    }
    out
}

/// What a parser error says to the reader: the field, and what it takes or what it may be
/// called.
fn yaml_message(e: &serde_saphyr::Error, field: Option<&str>) -> String {
    use serde_saphyr::Error as E;
    let inner = e.without_snippet();
    match (inner, field) {
        (
            E::SerdeUnknownField {
                field: name,
                expected,
                ..
            },
            _,
        ) => {
            let mut message = format!("unknown field `{name}`");
            match nearest(name, expected.iter().copied()) {
                Some(near) => message.push_str(&format!(", did you mean `{near}`?")),
                None if !expected.is_empty() => {
                    message.push_str(&format!(" (expected one of: {})", expected.join(", ")))
                }
                None => {}
            }
            message
        }
        (
            E::InvalidScalar { .. }
            | E::SerdeInvalidType { .. }
            | E::SerdeInvalidValue { .. }
            | E::Unexpected { .. },
            Some(f),
        ) if expected_form(f).is_some() => {
            format!("{f}: {}", expected_form(f).expect("checked"))
        }
        (E::Unexpected { expected, .. }, Some(f)) if shape(expected).is_some() => {
            format!("{f}: {}", shape(expected).expect("checked"))
        }
        _ => {
            let mut message = inner.to_string();
            // The position is given once, in front, like every other problem.
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            let mut message = message.strip_prefix("error: ").unwrap_or(&message).to_string();
            if message.contains("budget breached") {
                message = format!("{message}: {BUDGET_ADVICE}");
            }
            match field {
                Some(f) if !message.contains("budget breached") => format!("{f}: {message}"),
                _ => message,
            }
        }
    }
}

/// A field whose value has the wrong shape (a list where one value goes, say), and which
/// [`expected_form`] does not know: what serde-saphyr expected, in words.
fn shape(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "mapping start" => "a mapping, like { key: value }",
        "sequence start" => "a list, like [a, b]",
        "string scalar" | "scalar" => "a single value, not a list or a mapping",
        _ => return None,
    })
}

/// The form a field takes, for a value of the wrong type there (`ttl: 60s`): every field of
/// the files that is not text, found by its last key (and the key above it where one name
/// means two things). `None` for text fields, whose wrong values each section reports itself.
pub(crate) fn expected_form(field: &str) -> Option<&'static str> {
    let item = field.ends_with(']');
    let mut keys = field.split('.').map(|k| k.split('[').next().unwrap_or(k)).rev();
    let last = keys.next()?;
    let parent = keys.next().unwrap_or("");
    let top = field.split(['.', '[']).next().unwrap_or("");
    Some(match (parent, last, item) {
        (_, "ttl" | "degraded_ttl", false) => "a number of seconds, like 300",
        ("soa", "serial", false) => "a serial number, like 2024010101",
        ("soa", "refresh" | "retry" | "expire" | "minimum", false) => "a number of seconds, like 3600",
        (_, "port", false) => "a port number, like 8080",
        (_, "tls_verify" | "partition_guard" | "sticky" | "udp_reuseport", false) => "true or false",
        (_, "rise" | "fall", false) => "a number of probes between 1 and 100, like 2",
        (_, "expect_status", true) => "an HTTP status, like 200",
        (_, "expect_status", false) => "a list of HTTP statuses, like [200, 204]",
        ("health", "max_concurrent", false) => "a whole number, like 64",
        (_, "max_connections" | "tcp_max_connections", false) => "a whole number, like 1024",
        ("dns", "udp_workers", false) => "a whole number of threads, like 4",
        (_, "min_healthy", false) => "a whole number of endpoints, like 1",
        (_, "weight", false) => "a whole number, like 10",
        ("weights", _, false) => "a whole number, like 3",
        (_, "weights", false) => "a mapping of data center names to weights, like { eu-west: 3 }",
        ("", "soa", false) => "a mapping with mname and rname, like { mname: ns1, rname: hostmaster }",
        ("", "records", false) => "a mapping of names to their records, like { www: { A: [192.0.2.1] } }",
        ("records", _, false) if top == "records" => {
            "a mapping of record types to values, like { A: [192.0.2.1], ttl: 300 }"
        }
        ("geo", _, false) if top == "gslb" => "a list of data center names, like [eu-west, us-east]",
        ("location", "lat" | "lon", false) => "a number of degrees, like 48.85",
        ("answer", "datacenters" | "max_addresses", false) => "a whole number between 1 and 64, like 2",
        ("dns", "listen", false) => "a list of addresses, like [\"127.0.0.1:53\"]",
        ("", "ns", false) => "a list of name server names, like [ns1, ns2]",
        ("etcd", "endpoints", false) => "a list of etcd addresses, like [\"http://127.0.0.1:2379\"]",
        (_, "endpoints", false) if top == "datacenters" => {
            "a list of endpoints, like [{ address: 192.0.2.1 }]"
        }
        (_, "datacenters", false) if top == "gslb" => "a list of data center names, like [eu-west, us-east]",
        ("admin", "allowed_hosts", false) => "a list of host names, like [dns.example.com]",
        ("admin", "tokens", false) => {
            "a list of tokens, like [{ name: ops, role: admin, token_file: ops.token }]"
        }
        (_, "headers", false) => "a mapping of header names to values, like { X-Probe: meridian }",
        (
            "",
            "dns" | "log" | "admin" | "geoip" | "checks" | "health" | "datacenters" | "cluster" | "gslb",
            false,
        ) => "a mapping of keys to values",
        ("datacenters" | "checks" | "gslb", _, false) if field.matches('.').count() == 1 => {
            "a mapping of keys to values"
        }
        _ => return None,
    })
}

/// A duration that does not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration (like 500ms, 10s, 2m)")]
    NotANumber(String),
    #[error("`{0}` has an unknown unit (use ms, s, m or h)")]
    UnknownUnit(String),
}

/// Reads a duration such as `500ms`, `10s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| DurationError::NotANumber(text.into()))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(DurationError::UnknownUnit(text.into())),
    })
}

/// A duration above zero, for `field`; `default` when absent. `example` completes the
/// problem's "(like …)".
pub(crate) fn positive_duration(
    d: &mut Diagnostics,
    value: &Option<Spanned<String>>,
    field: &str,
    example: &str,
    default: Duration,
) -> Duration {
    let Some(v) = value else { return default };
    parse_duration(&v.value)
        .ok()
        .filter(|t| !t.is_zero())
        .unwrap_or_else(|| {
            d.at(
                v,
                field,
                format_args!("`{}` is not a duration above zero{example}", v.value),
            );
            default
        })
}

/// Data center and check names become Prometheus label values, URL path segments and event
/// subjects: they are kept to `[A-Za-z0-9_.-]`, which none of those needs to escape.
pub(crate) fn safe_name(d: &mut Diagnostics, key: &Spanned<String>, section: &str) {
    let name = key.value.as_str();
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        d.at(
            key,
            &format!("{section}.{name}"),
            format_args!("the name `{name}` may hold only letters, digits, `_`, `.` and `-`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::parse_yaml;
    use crate::config::raw::{RawConfig, RawZone};
    use std::path::Path;

    /// A value of the wrong type names its field and the form it takes; an unknown key names
    /// the key it is nearest to. One problem each, with its place and field path.
    #[test]
    fn type_errors_and_unknown_keys_say_what_is_expected() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            // (file text, position, message, field path)
            (
                "zone: example.test\nttl: 60s\n",
                "2:6",
                "ttl: a number of seconds, like 300",
                Some("ttl"),
            ),
            (
                "zone: example.test\nttl: -1\n",
                "2:6",
                "ttl: a number of seconds, like 300",
                Some("ttl"),
            ),
            (
                "zone: example.test\ngslb:\n  www:\n    ttl: 5m\n    policy: failover\n    datacenters: [eu]\n",
                "4:10",
                "gslb.www.ttl: a number of seconds, like 300",
                Some("gslb.www.ttl"),
            ),
            (
                "zone: example.test\ngslb:\n  www:\n    degraded_ttl: 5m\n",
                "4:19",
                "gslb.www.degraded_ttl: a number of seconds, like 300",
                Some("gslb.www.degraded_ttl"),
            ),
            (
                "zone: example.test\ngslb:\n  www:\n    sticky: maybe\n",
                "4:13",
                "gslb.www.sticky: true or false",
                Some("gslb.www.sticky"),
            ),
            (
                "zone: example.test\ngslb:\n  www:\n    datacenters: eu\n",
                "4:18",
                "gslb.www.datacenters: a list of data center names, like [eu-west, us-east]",
                Some("gslb.www.datacenters"),
            ),
            (
                "zone: example.test\ngslb:\n  www:\n    weights: { eu: heavy }\n",
                "4:20",
                "gslb.www.weights.eu: a whole number, like 3",
                Some("gslb.www.weights.eu"),
            ),
            (
                "zone: example.test\ngslb:\n  www:\n    answer: { max_addresses: all }\n",
                "4:30",
                "gslb.www.answer.max_addresses: a whole number between 1 and 64, like 2",
                Some("gslb.www.answer.max_addresses"),
            ),
            (
                "zone: example.test\nsoa: { mname: ns1, rname: h, refresh: 1h }\n",
                "2:39",
                "soa.refresh: a number of seconds, like 3600",
                Some("soa.refresh"),
            ),
            (
                "zone: example.test\nns: ns1\n",
                "2:5",
                "ns: a list of name server names, like [ns1, ns2]",
                Some("ns"),
            ),
            (
                "zone: example.test\nrecords:\n  www: [192.0.2.1]\n",
                "3:8",
                "records.www: a mapping of record types to values, like { A: [192.0.2.1], ttl: 300 }",
                Some("records.www"),
            ),
            (
                "zone: example.test\ngslb:\n  www: { geo: { default: eu } }\n",
                "3:26",
                "gslb.www.geo.default: a list of data center names, like [eu-west, us-east]",
                Some("gslb.www.geo.default"),
            ),
            (
                "zone: example.test\ngslb:\n  www: { policy: [geo] }\n",
                "3:18",
                "gslb.www.policy: a single value, not a list or a mapping",
                Some("gslb.www.policy"),
            ),
            (
                "zone: example.test\nsoa: ns1\n",
                "2:6",
                "soa: a mapping with mname and rname, like { mname: ns1, rname: hostmaster }",
                Some("soa"),
            ),
            (
                "zone: example.test\ntll: 300\n",
                "2:1",
                "unknown field `tll`, did you mean `ttl`?",
                Some("tll"),
            ),
            (
                "zone: example.test\ngslb:\n  www:\n    polcy: geo\n",
                "4:5",
                "unknown field `polcy`, did you mean `policy`?",
                Some("gslb.www.polcy"),
            ),
            (
                "zone: example.test\nxyzzy: 1\n",
                "2:1",
                "unknown field `xyzzy` (expected one of: zone, ttl, soa, ns, import, records, gslb)",
                Some("xyzzy"),
            ),
        ];
        let mut wrong = Vec::new();
        for (text, at, message, field) in cases {
            let p = parse_yaml::<RawZone>(Path::new("z.yaml"), text)
                .map(|_| ())
                .expect_err(text);
            let got = (
                format!("{}:{}", p.line, p.col),
                p.message.as_str(),
                p.field.as_deref(),
            );
            if got != (at.to_string(), *message, *field) {
                wrong.push(format!("{text}\n  got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The same in `meridian.yaml`: every section's typed fields.
    #[test]
    fn type_errors_in_the_configuration_name_their_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "dns:\n  udp_workers: many\n",
                "2:16",
                "dns.udp_workers: a whole number of threads, like 4",
            ),
            (
                "dns:\n  listen: \"127.0.0.1:53\"\n",
                "2:11",
                "dns.listen: a list of addresses, like [\"127.0.0.1:53\"]",
            ),
            (
                "dns:\n  tcp_max_connections: lots\n",
                "2:24",
                "dns.tcp_max_connections: a whole number, like 1024",
            ),
            (
                "health:\n  partition_guard: yes please\n",
                "2:20",
                "health.partition_guard: true or false",
            ),
            (
                "health:\n  max_concurrent: x\n",
                "2:19",
                "health.max_concurrent: a whole number, like 64",
            ),
            (
                "admin:\n  max_connections: x\n",
                "2:20",
                "admin.max_connections: a whole number, like 1024",
            ),
            (
                "checks:\n  web:\n    type: http\n    port: eighty\n",
                "4:11",
                "checks.web.port: a port number, like 8080",
            ),
            (
                "checks:\n  web:\n    type: http\n    rise: often\n",
                "4:11",
                "checks.web.rise: a number of probes between 1 and 100, like 2",
            ),
            (
                "checks:\n  web:\n    type: http\n    tls_verify: no way\n",
                "4:17",
                "checks.web.tls_verify: true or false",
            ),
            (
                "checks:\n  web:\n    type: http\n    expect_status: 200\n",
                "4:20",
                "checks.web.expect_status: a list of HTTP statuses, like [200, 204]",
            ),
            (
                "checks:\n  web:\n    type: http\n    expect_status: [ok]\n",
                "4:21",
                "checks.web.expect_status[0]: an HTTP status, like 200",
            ),
            (
                "datacenters:\n  eu:\n    endpoints:\n      - address: 192.0.2.1\n        weight: heavy\n",
                "5:17",
                "datacenters.eu.endpoints[0].weight: a whole number, like 10",
            ),
            (
                "datacenters:\n  eu:\n    endpoints: 192.0.2.1\n",
                "3:16",
                "datacenters.eu.endpoints: a list of endpoints, like [{ address: 192.0.2.1 }]",
            ),
            (
                "datacenters:\n  eu:\n    min_healthy: all\n    endpoints: []\n",
                "3:18",
                "datacenters.eu.min_healthy: a whole number of endpoints, like 1",
            ),
            (
                "datacenters:\n  eu:\n    location: { lat: north }\n    endpoints: []\n",
                "3:22",
                "datacenters.eu.location.lat: a number of degrees, like 48.85",
            ),
            (
                "datacenters:\n  eu:\n    endponts: []\n",
                "3:5",
                "unknown field `endponts`, did you mean `endpoints`?",
            ),
        ];
        let mut wrong = Vec::new();
        for (text, at, message) in cases {
            let p = parse_yaml::<RawConfig>(Path::new("m.yaml"), text)
                .map(|_| ())
                .expect_err(text);
            let got = (format!("{}:{}", p.line, p.col), p.message.as_str());
            if got != (at.to_string(), *message) || p.field.is_none() {
                wrong.push(format!("{text}\n  got {got:?} field {:?}", p.field));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
