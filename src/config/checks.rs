//! `checks:` in `meridian.yaml`: named health checks (tcp, http, https) that endpoints refer to.

use super::diagnostics::{Diagnostics, Loc, did_you_mean};
use super::raw::RawCheck;
use super::source::{positive_duration, safe_name};
use crate::model::gslb::{Check, CheckKind, HttpCheck};
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Validates `checks:`, by name; a check with a problem is kept as `None`, so an endpoint
/// naming it adds no problem of its own to the check's. Files (`ca_file`) are relative to `base`.
pub(crate) fn checks(
    d: &mut Diagnostics,
    base: &Path,
    raw: &[(Spanned<String>, Spanned<RawCheck>)],
) -> HashMap<String, Option<Arc<Check>>> {
    let mut out = HashMap::new();
    for (key, c) in raw {
        let before = d.count();
        let name = key.value.as_str();
        safe_name(d, key, "checks");
        let at = |s: &str| format!("checks.{name}.{s}");
        let c = &c.value;
        let duration = |d: &mut Diagnostics, v, field, default| {
            positive_duration(d, v, &at(field), " (like 500ms, 2s)", default)
        };
        let counted = d.count();
        let interval = duration(d, &c.interval, "interval", Duration::from_secs(1));
        let interval_read = d.count() == counted;
        let timeout = duration(d, &c.timeout, "timeout", Duration::from_millis(500).min(interval));
        // Against an interval that did not read, the timeout is not judged.
        if interval_read
            && timeout > interval
            && let Some(t) = &c.timeout
        {
            d.at(
                t,
                &at("timeout"),
                format_args!("the timeout cannot exceed the interval ({interval:?})"),
            );
        }
        let threshold = |d: &mut Diagnostics, v: &Option<Spanned<u64>>, field| match v {
            None => NonZeroU32::new(2).expect("nonzero"),
            Some(n) => u32::try_from(n.value)
                .ok()
                .and_then(NonZeroU32::new)
                .filter(|n| n.get() <= 100)
                .unwrap_or_else(|| {
                    d.at(n, &at(field), "must be between 1 and 100");
                    NonZeroU32::MIN
                }),
        };
        let rise = threshold(d, &c.rise, "rise");
        let fall = threshold(d, &c.fall, "fall");
        let http = || HttpCheck {
            method: c
                .method
                .as_ref()
                .map_or("GET".into(), |m| m.value.to_ascii_uppercase()),
            path: c.path.as_ref().map_or("/".into(), |p| p.value.clone()),
            host: c.host.as_ref().map(|h| h.value.clone()),
            headers: c
                .headers
                .0
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect(),
            expect_status: c
                .expect_status
                .as_ref()
                .map_or(vec![200], |l| l.value.iter().map(|s| s.value as u16).collect()),
            body_contains: c.body_contains.as_ref().map(|b| b.value.clone()),
            tls_verify: c.tls_verify.as_ref().is_none_or(|t| t.value),
            ca_file: c.ca_file.as_ref().map(|f| base.join(&f.value)),
        };
        let kind = match c.kind.value.as_str() {
            "tcp" => Some(CheckKind::Tcp),
            "http" => Some(CheckKind::Http(http())),
            "https" => Some(CheckKind::Https(http())),
            other => {
                d.at(
                    &c.kind,
                    &at("type"),
                    format_args!(
                        "`{other}` is not a check type (http, https, tcp){}",
                        did_you_mean(other, ["http", "https", "tcp"])
                    ),
                );
                None
            }
        };
        // Of a check whose type is unknown, only what every type shares is judged: the options
        // of one type would otherwise be reported as misplaced, or missing, beside the typo.
        if kind == Some(CheckKind::Tcp) {
            let file = d.file().to_path_buf();
            let http_only = [
                ("method", c.method.as_ref().map(|v| Loc::of(&file, v))),
                ("path", c.path.as_ref().map(|v| Loc::of(&file, v))),
                ("host", c.host.as_ref().map(|v| Loc::of(&file, v))),
                (
                    "expect_status",
                    c.expect_status.as_ref().map(|v| Loc::of(&file, v)),
                ),
                (
                    "body_contains",
                    c.body_contains.as_ref().map(|v| Loc::of(&file, v)),
                ),
            ];
            for (field, loc) in http_only {
                if let Some(loc) = loc {
                    d.at(&loc, &at(field), "applies to http and https checks only");
                }
            }
        }
        if let Some(l) = &c.expect_status {
            for st in l.value.iter().filter(|st| !(100..=599).contains(&st.value)) {
                d.at(
                    st,
                    &at("expect_status"),
                    format_args!("{} is not an HTTP status", st.value),
                );
            }
        }
        if let Some(m) = &c.method
            && !matches!(
                m.value.to_ascii_uppercase().as_str(),
                "GET" | "HEAD" | "POST" | "OPTIONS"
            )
        {
            d.at(
                m,
                &at("method"),
                format_args!("`{}` is not one of GET, HEAD, POST, OPTIONS", m.value),
            );
        }
        if let Some(p) = &c.path
            && !p.value.starts_with('/')
        {
            d.at(p, &at("path"), "a path starts with /");
        }
        if let Some(f) = &c.ca_file
            && !base.join(&f.value).is_file()
        {
            d.at(
                f,
                &at("ca_file"),
                format_args!("no file {}", base.join(&f.value).display()),
            );
        }
        let default_port = match kind {
            Some(CheckKind::Http(_)) => Some(80),
            Some(CheckKind::Https(_)) | None => Some(443),
            Some(CheckKind::Tcp) => None,
        };
        let port = match (&c.port, default_port) {
            (Some(p), _) => u16::try_from(p.value).ok().filter(|p| *p > 0).unwrap_or_else(|| {
                d.at(p, &at("port"), format_args!("{} is not a port", p.value));
                1
            }),
            (None, Some(default)) => default,
            (None, None) => {
                d.at(key, &at("port"), "a tcp check needs a port");
                1
            }
        };
        let sound = d.count() == before;
        out.insert(
            name.to_string(),
            kind.filter(|_| sound).map(|kind| {
                Arc::new(Check {
                    name: name.into(),
                    kind,
                    port,
                    interval,
                    timeout,
                    rise,
                    fall,
                })
            }),
        );
    }
    out
}
