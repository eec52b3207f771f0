//! Where configuration text comes from, and the small readers every part of the configuration
//! shares: files read from disk or from an [`Overlay`], YAML parsed with positioned problems,
//! durations, and the names that become labels. Builds only on `diagnostics`; `settings`,
//! `checks`, `datacenters`, `gslb` and `zones` all build on it.

use super::diagnostics::{Diagnostics, Loc, Problem};
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
        Loc {
            file: file.to_path_buf(),
            line,
            col,
        }
        .problem(message)
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
