//! A zone file's `records:` section read without the general YAML parser, when it is written in
//! the plain form every generator and most people use: one entry per name at one indentation,
//! each a one-line flow mapping (`www: { A: [192.0.2.1], ttl: 60 }`) or a block mapping of
//! types to a value, a flow list or a block list. The section holds nearly all of a large zone,
//! and reading it here costs a fraction of what the YAML parser's positioned values cost.
//!
//! Anything else, or anything whose meaning could depend on YAML's finer rules (numbers that
//! are not plain decimals, `yes`/`null`-like words, escapes, anchors, tags, comments after a
//! value, tabs, non-ASCII text), makes [`split`] answer `None`, and the file is read by
//! serde-saphyr whole, as before. The rest of the file is always read by serde-saphyr: the
//! section's lines are blanked out of it (so every other position is unchanged) but for one
//! placeholder entry, which proves that the section is the top-level `records:` mapping.
//! `zones` uses what this reads only for a zone that validates without a problem: a zone with
//! problems is read again by serde-saphyr, so every problem is reported from its reading.

use super::raw::{Entries, RawValue};
use serde_saphyr::{Location, Spanned};
use std::collections::HashSet;

/// The `records:` section as [`RawZone`](super::raw::RawZone) holds it.
pub(crate) type Records = Entries<Entries<Spanned<RawValue>>>;

/// The key of the placeholder entry left in the text given to serde-saphyr.
pub(crate) const PLACEHOLDER: &str = "meridian-records-read-apart";

/// The section read apart, and the text of the rest of the file: the section's lines blanked
/// but for the placeholder entry, on line `placeholder_line`.
pub(crate) struct Split {
    pub records: Records,
    pub rest: String,
    pub placeholder_line: u32,
}

/// Reads the `records:` section of a zone file's `text` when it is in the plain form (see the
/// module's comment); `None` when it is not, or when the file has no such section.
pub(crate) fn split(text: &str) -> Option<Split> {
    // Only printable ASCII and line ends: the YAML parser refuses control characters even in
    // comments, which this reader skips without reading.
    if text.bytes().any(|b| !(b' '..=b'~').contains(&b) && b != b'\n') {
        return None;
    }
    // The byte offsets and numbers of every line.
    let mut header = None;
    let mut offset = 0;
    let mut lines: Vec<(u32, usize, &str)> = Vec::new();
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let no = i as u32 + 1;
        if line.starts_with("---") || line.starts_with("...") || line.starts_with('%') {
            return None;
        }
        if line.starts_with("records:") && line["records:".len()..].trim_end_matches(' ').is_empty() {
            if header.is_some() {
                return None;
            }
            header = Some(lines.len());
        }
        lines.push((no, offset, line));
        offset += raw.len();
    }
    let header = header?;
    // The body: the lines after the header up to the next line that starts at column 1.
    let body_start = header + 1;
    let body_end = lines[body_start..]
        .iter()
        .position(|(_, _, l)| l.starts_with(|c: char| c != ' ' && c != '#'))
        .map_or(lines.len(), |p| body_start + p);
    if body_start == body_end {
        return None;
    }
    let records = body(&lines[body_start..body_end])?;
    // The rest: the body's first line is the placeholder, its other lines are blank.
    let (first_no, first_at, _) = lines[body_start];
    let end_at = lines.get(body_end).map_or(text.len(), |(_, at, _)| *at);
    let mut rest = String::with_capacity(text.len() - (end_at - first_at) + 64 + body_end - body_start);
    rest.push_str(&text[..first_at]);
    rest.push_str("  ");
    rest.push_str(PLACEHOLDER);
    rest.push_str(": {}\n");
    for _ in body_start + 1..body_end {
        rest.push('\n');
    }
    rest.push_str(&text[end_at..]);
    Some(Split {
        records,
        rest,
        placeholder_line: first_no,
    })
}

/// The position serde-saphyr gives a value: line and column, from 1. (Its `Location` has no
/// public constructor but reads itself from its fields.)
fn loc(line: u32, column: usize) -> Location {
    use serde::Deserialize;
    use serde::de::value::{Error, MapDeserializer};
    let fields = [("line", line), ("column", column as u32)];
    Location::deserialize(MapDeserializer::<_, Error>::new(fields.into_iter()))
        .expect("a location reads from its line and column")
}

fn spanned<T>(value: T, line: u32, column: usize) -> Spanned<T> {
    let at = loc(line, column);
    Spanned::new(value, at, at)
}

/// One line of the body: its number, indentation and the text after it.
struct Sig<'a> {
    no: u32,
    indent: usize,
    text: &'a str,
}

/// The section's entries, or `None` when any line is not in the plain form.
fn body(lines: &[(u32, usize, &str)]) -> Option<Records> {
    let sig: Vec<Sig> = lines
        .iter()
        .filter_map(|(no, _, l)| {
            let text = l.trim_start_matches(' ');
            (!text.is_empty() && !text.starts_with('#')).then(|| Sig {
                no: *no,
                indent: l.len() - text.len(),
                text: text.trim_end_matches(' '),
            })
        })
        .collect();
    let top = sig.first()?.indent;
    if top == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < sig.len() {
        let line = &sig[i];
        if line.indent != top {
            return None;
        }
        let (key, rest, rest_at) = key_value(line.text, line.indent)?;
        let key = text_scalar(key, line.no)?;
        let entries = if rest.is_empty() {
            i += 1;
            block_entries(&sig, &mut i, top)?
        } else if rest.starts_with('{') {
            i += 1;
            flow_map(rest, line.no, rest_at)?
        } else {
            return None;
        };
        out.push((key, entries));
    }
    // A key given twice (compared by value, as the YAML parser does) is refused by the YAML
    // parser: its reading says so.
    let mut seen: HashSet<&str> = HashSet::with_capacity(out.len());
    for (k, _) in &out {
        if !seen.insert(k.value.as_str()) {
            return None;
        }
    }
    Some(Entries(out))
}

/// A block mapping of one name's types, at an indentation deeper than `top`, from line `*i`.
fn block_entries(sig: &[Sig], i: &mut usize, top: usize) -> Option<Entries<Spanned<RawValue>>> {
    let inner = sig.get(*i).map(|l| l.indent).filter(|&n| n > top)?;
    let mut entries: Vec<(Spanned<String>, Spanned<RawValue>)> = Vec::new();
    while let Some(line) = sig.get(*i).filter(|l| l.indent > top) {
        if line.indent != inner {
            return None;
        }
        let (key, rest, rest_at) = key_value(line.text, line.indent)?;
        let key = text_scalar(key, line.no)?;
        *i += 1;
        let value = if rest.is_empty() {
            // A block list: `- value` lines, at the key's indentation (as serde-saphyr writes
            // them) or deeper. The YAML parser places the list at its first `-` when deeper,
            // at its first value when at the key's indentation.
            let dash = sig.get(*i).map(|l| l.indent).filter(|&n| n >= inner)?;
            let first = sig.get(*i)?;
            let first_col = match first.text.strip_prefix("- ") {
                Some(v) if dash == inner => dash + 1 + (first.text.len() - v.trim_start_matches(' ').len()),
                _ => dash + 1,
            };
            let first_no = first.no;
            let mut items = Vec::new();
            while let Some(item) = sig.get(*i).filter(|l| l.indent == dash) {
                let Some(v) = item.text.strip_prefix("- ") else {
                    break;
                };
                let v = v.trim_start_matches(' ');
                let at = item.indent + (item.text.len() - v.len());
                items.push(string_item(v, item.no, at + 1, false)?);
                *i += 1;
            }
            if items.is_empty() {
                return None;
            }
            spanned(RawValue::Many(items), first_no, first_col)
        } else {
            value(rest, line.no, rest_at + 1, false)?
        };
        if entries.iter().any(|(k, _)| k.value == key.value) {
            return None;
        }
        entries.push((key, value));
    }
    Some(Entries(entries))
}

/// `key: rest` at `indent`: the key's text and column (from 0), and what follows `: ` with its
/// column (from 0); `rest` is empty for `key:` alone.
fn key_value(text: &str, indent: usize) -> Option<((&str, usize), &str, usize)> {
    let (key, after) = if text.starts_with(['"', '\'']) {
        let close = text[1..].find(text.as_bytes()[0] as char)? + 1;
        (&text[..=close], &text[close + 1..])
    } else {
        let colon = text.find(':')?;
        (text[..colon].trim_end_matches(' '), &text[colon..])
    };
    let after = after.strip_prefix(':')?;
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let rest = after.trim_start_matches(' ');
    let rest_at = indent + (text.len() - rest.len());
    Some(((key, indent), rest, rest_at))
}

/// A key (a text scalar) at column `at` (from 0) of line `no`.
fn text_scalar((text, at): (&str, usize), no: u32) -> Option<Spanned<String>> {
    Some(spanned(scalar_text(text, false)?, no, at + 1))
}

/// A list item, which must be text (`Spanned<String>`), at column `col` (from 1).
fn string_item(text: &str, no: u32, col: usize, in_flow: bool) -> Option<Spanned<String>> {
    Some(spanned(scalar_text(text, in_flow)?, no, col))
}

/// A value: a flow list, or one scalar (a plain decimal number or text), at column `col`.
fn value(text: &str, no: u32, col: usize, in_flow: bool) -> Option<Spanned<RawValue>> {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        let mut items = Vec::new();
        if !inner.trim_matches(' ').is_empty() {
            for (part, at) in split_commas(inner)? {
                let item = part.trim_start_matches(' ');
                let item_col = col + 1 + at + (part.len() - item.len());
                items.push(string_item(item.trim_end_matches(' '), no, item_col, true)?);
            }
        }
        return Some(spanned(RawValue::Many(items), no, col));
    }
    if let Some(n) = decimal(text) {
        return Some(spanned(RawValue::Number(n), no, col));
    }
    Some(spanned(RawValue::One(scalar_text(text, in_flow)?), no, col))
}

/// `{ type: value, … }` on one line, whose `{` is at column `at` (from 0).
fn flow_map(text: &str, no: u32, at: usize) -> Option<Entries<Spanned<RawValue>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut entries: Vec<(Spanned<String>, Spanned<RawValue>)> = Vec::new();
    if inner.trim_matches(' ').is_empty() {
        return Some(Entries(entries));
    }
    for (part, off) in split_commas(inner)? {
        let item = part.trim_matches(' ');
        let item_at = at + 1 + off + (part.len() - part.trim_start_matches(' ').len());
        let ((key, _), rest, rest_at) = key_value(item, item_at)?;
        if rest.is_empty() {
            return None;
        }
        let key = text_scalar((key, item_at), no)?;
        if entries.iter().any(|(k, _)| k.value == key.value) {
            return None;
        }
        let value = value(rest, no, rest_at + 1, true)?;
        entries.push((key, value));
    }
    Some(Entries(entries))
}

/// The parts of a flow collection's inside between commas outside quotes and lists, with each
/// part's offset; `None` for an empty part (`[a, , b]`, a trailing comma) or a nested mapping.
fn split_commas(inner: &str) -> Option<Vec<(&str, usize)>> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, None, 0);
    for (i, c) in inner.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.checked_sub(1)?,
            (None, '{' | '}') => return None,
            (None, ',') if depth == 0 => {
                parts.push((&inner[start..i], start));
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() || depth != 0 {
        return None;
    }
    parts.push((&inner[start..], start));
    parts
        .iter()
        .all(|(p, _)| !p.trim_matches(' ').is_empty())
        .then_some(parts)
}

/// A plain decimal number without a leading zero, as the YAML parser reads it into a `u64`.
fn decimal(text: &str) -> Option<u64> {
    let plain = !text.is_empty()
        && text.len() <= 19
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

/// A scalar that is text whatever YAML's rules: quoted without escapes, or plain, starting
/// with a letter, a digit or `_`, of letters, digits and `._-/:=+` and inner spaces, and not
/// readable as a number, a boolean or null. `None` for anything else (the YAML parser reads
/// the file). A `:` is followed by neither a space nor the end, in a flow collection or not
/// (`in_flow`: where `,[]{}` would end it, which the characters allowed exclude anyway).
fn scalar_text(text: &str, _in_flow: bool) -> Option<String> {
    let bytes = text.as_bytes();
    match bytes.first()? {
        q @ (b'"' | b'\'') => {
            let inner = text.strip_prefix(*q as char)?.strip_suffix(*q as char)?;
            let ok = inner
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != *q && b != b'\\' && b != b'$');
            return ok.then(|| inner.to_string());
        }
        b if b.is_ascii_alphanumeric() || *b == b'_' => {}
        _ => return None,
    }
    let chars_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"._-/:=+ ".contains(b));
    if !chars_ok || text.ends_with([' ', ':']) || text.contains(": ") {
        return None;
    }
    // Numbers in any form YAML knows (bases, underscores, floats, sexagesimal, dates).
    // (Digits and dots alone with two dots or more, an IPv4 address, is no number.)
    let digits_like = bytes.iter().all(|b| b.is_ascii_digit() || b"_:.-+".contains(b))
        && !(bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.') && text.matches('.').count() >= 2);
    let lower = text.to_ascii_lowercase();
    let word = matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null" | "nan" | "inf" | "infinity"
    );
    let number = digits_like
        || text.parse::<f64>().is_ok()
        || lower.starts_with("0x")
        || lower.starts_with("0o")
        || lower.starts_with("0b");
    (!word && !number).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawZone;

    /// What serde-saphyr reads of the records (positions included), as text to compare.
    fn shown(records: &Records) -> Vec<String> {
        let at = |l: &Location| format!("{}:{}", l.line(), l.column());
        let mut out = Vec::new();
        for (k, entries) in &records.0 {
            out.push(format!("{} @{}", k.value, at(&k.referenced)));
            for (t, v) in &entries.0 {
                let value = match &v.value {
                    RawValue::Number(n) => format!("#{n}"),
                    RawValue::One(s) => format!("'{s}'"),
                    RawValue::Many(items) => items
                        .iter()
                        .map(|s| format!("'{}'@{}", s.value, at(&s.referenced)))
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                out.push(format!(
                    "  {} @{} = {value} @{}",
                    t.value,
                    at(&t.referenced),
                    at(&v.referenced)
                ));
            }
        }
        out
    }

    fn by_parser(text: &str) -> Option<Vec<String>> {
        let raw: RawZone = crate::config::source::parse_yaml(std::path::Path::new("z.yaml"), text).ok()?;
        Some(shown(&raw.records))
    }

    /// What the API writes (serde-saphyr's own output) is read apart.
    #[test]
    fn what_the_api_writes_is_read_apart() {
        let doc = serde_json::json!({"zone": "a.test", "soa": {"mname": "ns1", "rname": "h", "serial": 3},
            "ns": ["ns1"], "records": {"ns1": {"A": ["192.0.2.1"]}, "h1": {"A": ["10.0.0.1", "10.0.0.2"], "ttl": 60}},
            "gslb": {"www": {"policy": "failover", "datacenters": ["eu", "us"]}}});
        let text = serde_saphyr::to_string(&doc).unwrap();
        let split = split(&text).unwrap_or_else(|| panic!("not read apart:\n{text}"));
        assert_eq!(Some(shown(&split.records)), by_parser(&text), "{text}");
    }

    /// Every form read apart gives what the YAML parser gives, positions included, and the
    /// rest of the file reads as it did, with the placeholder where the section began.
    #[test]
    fn the_plain_form_reads_as_the_yaml_parser_reads_it() {
        let cases = [
            "zone: a.test\nrecords:\n  www: { A: [192.0.2.1, 192.0.2.2], ttl: 60 }\n  mail: {MX: [10 mx.a.test.]}\n",
            "zone: a.test\nrecords:\n  www:\n    A: [192.0.2.1]\n    ttl: 300\n  x:\n    CNAME: www\n",
            "zone: a.test\nrecords:\n    www:\n        A:\n          - 192.0.2.1\n          -   192.0.2.2\n        AAAA:\n          - 2001:db8::1\n",
            "zone: a.test\n# lead\nrecords:\n\n  # a comment\n  \"@\": { NS: [ns1, ns2] }\n  '*.w': { TXT: \"v=spf1 -all\" }\n  t:   {  TXT:  ['a b', \"c,d\"] }  \ngslb:\n  www: { policy: failover, datacenters: [eu] }\n",
            "records:\n  a: { A: [] }\n  b: {}\n  c: { AAAA: [2001:db8::1], CNAME: x.y. }\nzone: a.test\n",
            "zone: a.test\nrecords:\n  w:\n    A:\n    -   192.0.2.1\n    - 192.0.2.2\n    ttl: 5\n  v:\n    TXT:\n    - a\n",
            "zone: a.test\nrecords:\n  h1: { A: 10.0.0.1 }\n  h2: { TXT: hello world, ttl: 0 }\n",
        ];
        for text in cases {
            let split = split(text).unwrap_or_else(|| panic!("not read apart:\n{text}"));
            assert_eq!(Some(shown(&split.records)), by_parser(text), "{text}");
            let rest: RawZone =
                crate::config::source::parse_yaml(std::path::Path::new("z.yaml"), &split.rest).expect("rest");
            assert_eq!(rest.records.0.len(), 1);
            assert_eq!(rest.records.0[0].0.value, PLACEHOLDER);
            assert_eq!(
                rest.records.0[0].0.referenced.line() as u32,
                split.placeholder_line
            );
            assert_eq!(split.rest.lines().count(), text.lines().count(), "{text}");
        }
    }

    /// What YAML reads otherwise than as plain text or a decimal, and what the plain form does
    /// not cover, is left to the YAML parser.
    #[test]
    fn anything_else_is_left_to_the_yaml_parser() {
        let cases = [
            "records:\n  a: { A: [1.5] }\n",
            "records:\n  a: { A: [yes] }\n",
            "records:\n  a: { A: [null] }\n",
            "records:\n  a: { ttl: 0x10 }\n",
            "records:\n  a: { ttl: 010 }\n",
            "records:\n  a: { ttl: 1_000 }\n",
            "records:\n  1: { PTR: [x.] }\n",
            "records:\n  a: { A: [\"a\\tb\"] }\n",
            "records:\n  a: &x { A: [b] }\n",
            "records:\n  a: *x\n",
            "records:\n  a: { A: [b] } # note\n",
            "records:\n  a: { A: [b] }\n  a: { A: [c] }\n",
            "records:\n  a: { A: [b], A: [c] }\n",
            "records:\n  a: { A: [b] }\n   b: { A: [c] }\n",
            "records:\n  a:\n    A: [b]\n   B: [c]\n",
            "records:\n  a:\n",
            "records: {}\n",
            "records:\n- a\n",
            "records:\n  a: { A: [b, ] }\n",
            "records:\n  a: { A: [b] }\nrecords:\n  c: { A: [d] }\n",
            "records:\n  a: { A: { b: c } }\n",
            "records:\n  a: { A: [b\n  c] }\n",
            "records:\n  a: { A: [é] }\n",
            "records:\n\ta: { A: [b] }\n",
            "---\nrecords:\n  a: { A: [b] }\n",
            "records:\n  a: [b]\n",
            "records:\n  a: { A: ${X} }\n",
            // The YAML parser refuses control characters, in a comment too.
            "records:\n  a: { A: [b] }\n  # note \u{0} here\n  c: { A: [d] }\n",
            "records:\n  a: { A: [b] }\n  # note \u{7f}\n",
        ];
        for text in cases {
            assert!(split(text).is_none(), "read apart:\n{text}");
        }
    }
}
