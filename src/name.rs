//! Domain names in wire form.
//!
//! A [`Name`] keeps the labels exactly as the operator wrote them (case included), so answers
//! show names the way the zone spells them. Lookups go through [`Name::key`], the lowercased
//! wire form, which is what every table in the snapshot is keyed by.

use std::fmt;

/// Longest name on the wire, terminal zero included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

/// A fully qualified domain name in uncompressed wire form (length-prefixed labels, then 0).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name(Box<[u8]>);

/// A name's lookup key: its wire form with ASCII letters lowercased, so that names that differ
/// only in case find one entry. Tables keyed by it are looked up with a lowercased wire slice
/// (`&[u8]`), which the query path builds without allocating.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(Box<[u8]>);

/// A table keyed by names, for the query path's lookups: hashed with foldhash, a few times
/// cheaper than the standard library's SipHash on names of a few dozen bytes. Its keys are
/// the operator's names, not a client's, so flooding it with colliding keys is not a client's
/// to do; the seed is still random per table.
pub type NameMap<V> = std::collections::HashMap<NameKey, V, foldhash::fast::RandomState>;

impl NameKey {
    /// The key of the name whose wire form is `wire` (any case).
    pub fn of_wire(wire: &[u8]) -> NameKey {
        NameKey(wire.to_ascii_lowercase().into_boxed_slice())
    }

    /// The lowercased wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::borrow::Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// Why text could not be read as a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in `{0}`")]
    EmptyLabel(String),
    #[error("label longer than 63 octets in `{0}`")]
    LabelTooLong(String),
    #[error("name longer than 255 octets: `{0}`")]
    TooLong(String),
    #[error("bad escape in `{0}`")]
    BadEscape(String),
    #[error("relative name `{0}` needs an origin")]
    NoOrigin(String),
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Name(Box::new([0]))
    }

    /// Reads a name in presentation format. A name without a trailing dot is relative to
    /// `origin`; `@` is the origin itself. `\.` and `\DDD` escapes are understood.
    pub fn parse(text: &str, origin: Option<&Name>) -> Result<Name, NameError> {
        let err_text = || text.to_string();
        if text == "@" {
            return origin.cloned().ok_or_else(|| NameError::NoOrigin(err_text()));
        }
        if text == "." {
            return Ok(Name::root());
        }
        if text.is_empty() {
            return Err(NameError::EmptyLabel(err_text()));
        }
        let mut wire = Vec::with_capacity(text.len() + 2);
        let mut label = Vec::with_capacity(MAX_LABEL_LEN);
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut absolute = false;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'.' => {
                    if label.is_empty() {
                        return Err(NameError::EmptyLabel(err_text()));
                    }
                    push_label(&mut wire, &label, text)?;
                    label.clear();
                    if i + 1 == bytes.len() {
                        absolute = true;
                    }
                    i += 1;
                }
                b'\\' => {
                    let next = bytes.get(i + 1).ok_or_else(|| NameError::BadEscape(err_text()))?;
                    if next.is_ascii_digit() {
                        let digits = bytes
                            .get(i + 1..i + 4)
                            .filter(|d| d.iter().all(u8::is_ascii_digit))
                            .ok_or_else(|| NameError::BadEscape(err_text()))?;
                        let value = digits.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
                        let value = u8::try_from(value).map_err(|_| NameError::BadEscape(err_text()))?;
                        label.push(value);
                        i += 4;
                    } else {
                        label.push(*next);
                        i += 2;
                    }
                }
                _ => {
                    label.push(b);
                    i += 1;
                }
            }
        }
        if !label.is_empty() {
            push_label(&mut wire, &label, text)?;
        }
        if !absolute {
            let origin = origin.ok_or_else(|| NameError::NoOrigin(err_text()))?;
            wire.extend_from_slice(&origin.0);
        } else {
            wire.push(0);
        }
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(err_text()));
        }
        Ok(Name(wire.into_boxed_slice()))
    }

    /// The uncompressed wire form, case as written.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// The lowercased wire form: the key of every lookup table.
    pub fn key(&self) -> NameKey {
        NameKey::of_wire(&self.0)
    }

    /// Whether two names are the same name (DNS names compare without ASCII case).
    pub fn same_as(&self, other: &Name) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }

    /// Number of labels, the root not counted.
    pub fn label_count(&self) -> usize {
        labels(&self.0).count()
    }

    /// Whether `self` equals `ancestor` or lies below it (case-insensitive).
    pub fn is_subdomain_of(&self, ancestor: &Name) -> bool {
        let (a, b) = (&self.0, &ancestor.0);
        if b.len() == 1 {
            return true; // everything is below the root
        }
        a.len() >= b.len()
            && a[a.len() - b.len()..].eq_ignore_ascii_case(b)
            && label_starts(a).any(|start| start == a.len() - b.len())
    }

    /// Whether the first label is `*`.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with(&[1, b'*'])
    }

    /// The name relative to `origin` (`@` for the origin itself), for messages and files.
    pub fn relative_to(&self, origin: &Name) -> String {
        if self.0.eq_ignore_ascii_case(&origin.0) {
            return "@".to_string();
        }
        if self.is_subdomain_of(origin) {
            let cut = self.0.len() - origin.0.len();
            let mut head = self.0[..cut].to_vec();
            head.push(0);
            let text = Name(head.into_boxed_slice()).to_string();
            return text.trim_end_matches('.').to_string();
        }
        self.to_string()
    }
}

/// Why a name given by an API client was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("`{0}` has an empty label")]
    EmptyLabel(String),
    #[error("`{0}` has a label longer than 63 octets")]
    LabelTooLong(String),
    #[error("`{0}` is longer than 253 characters")]
    TooLong(String),
    #[error(
        "`{text}` has {what}: a name here is letters, digits, `-` and `_` in dot-separated labels \
         (U-labels are converted to their xn-- form)"
    )]
    BadCharacter { text: String, what: String },
    #[error("`{0}` is not a valid internationalized name")]
    Idna(String),
}

/// The canonical text of a name given by an API client (a URL segment, a JSON field): labels of
/// ASCII letters, digits, `-` and `_`, lowercased; U-labels converted to A-labels (IDNA); one
/// trailing dot ignored; `*` allowed as a whole first label when `wildcard`. Whatever comes out is
/// safe to use as a file name stem: no `/`, no NUL, no empty label, never `.` or `..`.
pub fn canonical_hostname(text: &str, wildcard: bool) -> Result<String, HostnameError> {
    let bare = text.strip_suffix('.').unwrap_or(text);
    if bare.is_empty() {
        return Err(HostnameError::EmptyLabel(text.to_string()));
    }
    let mut out = String::with_capacity(bare.len());
    for (i, label) in bare.split('.').enumerate() {
        if label.is_empty() {
            return Err(HostnameError::EmptyLabel(text.to_string()));
        }
        let ascii = if label.is_ascii() {
            label.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii(label).map_err(|_| HostnameError::Idna(text.to_string()))?
        };
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if let Some(bad) = ascii.chars().find(|&c| !ok(c))
            && !(wildcard && i == 0 && ascii == "*")
        {
            let what = match bad {
                '\0' => "a NUL byte".to_string(),
                c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
                c => format!("the character `{c}`"),
            };
            return Err(HostnameError::BadCharacter {
                text: text.to_string(),
                what,
            });
        }
        if ascii.is_empty() {
            return Err(HostnameError::EmptyLabel(text.to_string()));
        }
        if ascii.len() > MAX_LABEL_LEN {
            return Err(HostnameError::LabelTooLong(text.to_string()));
        }
        if i > 0 {
            out.push('.');
        }
        out.push_str(&ascii);
    }
    if out.len() > MAX_NAME_LEN - 2 {
        return Err(HostnameError::TooLong(text.to_string()));
    }
    Ok(out)
}

fn push_label(wire: &mut Vec<u8>, label: &[u8], text: &str) -> Result<(), NameError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong(text.to_string()));
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    Ok(())
}

/// Offsets at which each label of a wire name starts (the terminal zero excluded).
pub fn label_starts(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = *wire.get(pos)? as usize;
        if len == 0 {
            return None;
        }
        let start = pos;
        pos += 1 + len;
        Some(start)
    })
}

fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    label_starts(wire).map(move |s| &wire[s + 1..s + 1 + wire[s] as usize])
}

/// The wire name one label up, borrowed; `None` for the root.
pub fn parent_wire(wire: &[u8]) -> Option<&[u8]> {
    match wire.first() {
        Some(&len) if len > 0 => wire.get(1 + len as usize..),
        _ => None,
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() == 1 {
            return f.write_str(".");
        }
        for label in labels(&self.0) {
            for &b in label {
                match b {
                    b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_hostnames_are_safe_file_stems() {
        use super::{HostnameError, canonical_hostname as c};
        assert_eq!(c("Example.TEST.", false).unwrap(), "example.test");
        assert_eq!(c("_sip._tcp.x", false).unwrap(), "_sip._tcp.x");
        assert_eq!(c("bücher.example", false).unwrap(), "xn--bcher-kva.example");
        assert_eq!(c("BÜCHER.example", false).unwrap(), "xn--bcher-kva.example");
        assert_eq!(c("*.cdn", true).unwrap(), "*.cdn");
        for bad in [
            "../meridian",
            "/tmp/x",
            "a/b",
            "a\0b",
            "a..b",
            ".",
            "..",
            "",
            ".a",
            "a\\b",
            "*.cdn",
            "a.*",
            "a b",
        ] {
            assert!(c(bad, false).is_err(), "{bad:?}");
        }
        assert!(c("a.*", true).is_err());
        assert!(matches!(
            c("a\0b", false),
            Err(HostnameError::BadCharacter { .. })
        ));
        assert!(c(&"a".repeat(64), false).is_err());
        assert!(c(&["a"; 130].join("."), false).is_err());
    }

    use super::*;

    #[test]
    fn keys_and_sameness_ignore_case_only() {
        let a = Name::parse("WWW.Example.TEST.", None).unwrap();
        let b = Name::parse("www.example.test.", None).unwrap();
        let c = Name::parse("www2.example.test.", None).unwrap();
        assert!(a.same_as(&b) && !a.same_as(&c));
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key().as_bytes(), b.wire());
        let table = std::collections::HashMap::from([(a.key(), 1)]);
        assert_eq!(
            table.get(b.wire()),
            Some(&1),
            "looked up by a lowercased wire slice"
        );
    }

    fn n(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn parses_absolute_relative_and_escapes() {
        let origin = n("Example.COM.");
        assert_eq!(n("www.example.com.").wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(
            Name::parse("www", Some(&origin)).unwrap().to_string(),
            "www.Example.COM."
        );
        assert_eq!(Name::parse("@", Some(&origin)).unwrap(), origin);
        assert_eq!(n("a\\.b.c.").label_count(), 2);
        assert_eq!(n("a\\046b.c.").to_string(), "a\\.b.c.");
        assert_eq!(n(".").label_count(), 0);
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(
            Name::parse("a..b.", None),
            Err(NameError::EmptyLabel(_))
        ));
        assert!(matches!(
            Name::parse(&"x".repeat(64), Some(&Name::root())),
            Err(NameError::LabelTooLong(_))
        ));
        let long = format!("{}.", ["abcdefghi"; 26].join("."));
        assert!(matches!(Name::parse(&long, None), Err(NameError::TooLong(_))));
        assert!(matches!(Name::parse("www", None), Err(NameError::NoOrigin(_))));
        assert!(matches!(
            Name::parse("a\\999.", None),
            Err(NameError::BadEscape(_))
        ));
    }

    #[test]
    fn subdomain_is_label_aligned_and_case_blind() {
        assert!(n("WWW.example.com.").is_subdomain_of(&n("example.COM.")));
        assert!(n("example.com.").is_subdomain_of(&n("example.com.")));
        assert!(!n("badexample.com.").is_subdomain_of(&n("example.com.")));
        assert!(n("x.").is_subdomain_of(&Name::root()));
        assert_eq!(n("a.b.example.com.").relative_to(&n("example.com.")), "a.b");
    }
}
