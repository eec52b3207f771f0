//! RFC 1035 §5 master files, and the record-data text both they and YAML zones use.
//!
//! Supported: `$ORIGIN`, `$TTL`, parentheses spanning lines, comments, quoted strings with
//! escapes, blank owners (the previous owner), `@`, relative names, TTL and class in either
//! order, BIND-style TTL units (`1h30m`). `$INCLUDE` is refused: a zone's files are named in its
//! YAML so that `meridian check` and the admin API see every file involved.

use crate::model::{RData, RType, Soa};
use crate::name::Name;

/// One word of master-file text (a quoted string is one word), with its 1-based position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: Vec<u8>,
    pub quoted: bool,
    pub line: u32,
    pub col: u32,
}

/// A problem at a position inside the text being read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl TextError {
    fn at(word: &Word, message: impl std::fmt::Display) -> Self {
        TextError {
            line: word.line,
            col: word.col,
            message: message.to_string(),
        }
    }
}

/// One logical line (parentheses may spread it over several): its words, and whether it began
/// with white space (the owner is then the previous one).
#[derive(Debug)]
pub struct Line {
    pub words: Vec<Word>,
    pub blank_owner: bool,
    pub line: u32,
    pub col: u32,
}

/// Splits master-file text into logical lines.
pub fn lines(text: &str) -> Result<Vec<Line>, TextError> {
    let bytes = text.as_bytes();
    let (mut line, mut col) = (1u32, 1u32);
    let mut i = 0;
    let mut out = Vec::new();
    let mut current: Option<Line> = None;
    let mut depth = 0u32;
    let mut at_line_start = true;
    let mut paren_open = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                if depth == 0 {
                    if let Some(l) = current.take() {
                        out.push(l);
                    }
                    at_line_start = true;
                }
                i += 1;
                line += 1;
                col = 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                col += 1;
                at_line_start = false;
                continue;
            }
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let logical = current.get_or_insert_with(|| Line {
            words: Vec::new(),
            blank_owner: !at_line_start,
            line,
            col,
        });
        at_line_start = false;
        match b {
            b'(' => {
                if depth == 0 {
                    paren_open = (line, col);
                }
                depth += 1;
                i += 1;
                col += 1;
            }
            b')' => {
                if depth == 0 {
                    return Err(TextError {
                        line,
                        col,
                        message: "`)` without `(`".into(),
                    });
                }
                depth -= 1;
                i += 1;
                col += 1;
            }
            b'"' => {
                let (start_line, start_col) = (line, col);
                let mut tok = Vec::new();
                i += 1;
                col += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(TextError {
                                line: start_line,
                                col: start_col,
                                message: "unterminated quoted string".into(),
                            });
                        }
                        Some(b'"') => {
                            i += 1;
                            col += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let (value, used) = unescape(&bytes[i..]).ok_or(TextError {
                                line,
                                col,
                                message: "bad escape in quoted string".into(),
                            })?;
                            tok.push(value);
                            i += used;
                            col += used as u32;
                        }
                        Some(&c) => {
                            if c == b'\n' {
                                line += 1;
                                col = 0;
                            }
                            tok.push(c);
                            i += 1;
                            col += 1;
                        }
                    }
                }
                logical.words.push(Word {
                    text: tok,
                    quoted: true,
                    line: start_line,
                    col: start_col,
                });
            }
            _ => {
                let start_col = col;
                let mut tok = Vec::new();
                while let Some(&c) = bytes.get(i) {
                    if matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"') {
                        break;
                    }
                    // Keep escapes verbatim: names and character strings read them later.
                    if c == b'\\' && i + 1 < bytes.len() {
                        tok.extend_from_slice(&bytes[i..i + 2]);
                        i += 2;
                        col += 2;
                        continue;
                    }
                    tok.push(c);
                    i += 1;
                    col += 1;
                }
                logical.words.push(Word {
                    text: tok,
                    quoted: false,
                    line,
                    col: start_col,
                });
            }
        }
    }
    if depth > 0 {
        return Err(TextError {
            line: paren_open.0,
            col: paren_open.1,
            message: "`(` never closed".into(),
        });
    }
    if let Some(l) = current.take() {
        out.push(l);
    }
    Ok(out)
}

/// Reads `\X` or `\DDD` at the start of `bytes`: the octet and how many bytes were used.
fn unescape(bytes: &[u8]) -> Option<(u8, usize)> {
    let next = *bytes.get(1)?;
    if next.is_ascii_digit() {
        let digits = bytes.get(1..4)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = digits.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
        Some((u8::try_from(v).ok()?, 4))
    } else {
        Some((next, 2))
    }
}

/// A TTL that does not read, or is out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    #[error("`{0}` is not a TTL (seconds, or units like 1h30m)")]
    NotATtl(String),
    #[error("TTL {0} out of range (0 to {max}, RFC 2181 §8)", max = MAX_TTL)]
    OutOfRange(u64),
}

/// Reads a TTL: seconds, or BIND units (`1w2d3h4m5s`). Range per RFC 2181 §8.
pub fn parse_ttl(text: &str) -> Result<u32, TtlError> {
    let bad = || TtlError::NotATtl(text.into());
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(u64::from(d)));
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        total = total.saturating_add(num.take().ok_or_else(bad)?.saturating_mul(unit));
    }
    total = total.saturating_add(num.unwrap_or(0));
    check_ttl(total)
}

/// The largest TTL RFC 2181 §8 allows.
pub const MAX_TTL: u64 = 2_147_483_647;

/// Rejects TTLs outside 0..=2^31-1.
pub fn check_ttl(ttl: u64) -> Result<u32, TtlError> {
    if ttl > MAX_TTL {
        return Err(TtlError::OutOfRange(ttl));
    }
    Ok(ttl as u32)
}

fn text_of(word: &Word) -> Result<&str, TextError> {
    std::str::from_utf8(&word.text).map_err(|_| TextError::at(word, "not valid UTF-8"))
}

fn name_of(word: &Word, origin: &Name) -> Result<Name, TextError> {
    Name::parse(text_of(word)?, Some(origin)).map_err(|e| TextError::at(word, e.to_string()))
}

fn number<T: TryFrom<u64>>(word: &Word, what: &str) -> Result<T, TextError> {
    let text = text_of(word)?;
    text.parse::<u64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| TextError::at(word, format!("`{text}` is not a valid {what}")))
}

/// A character string: at most 255 octets; escapes in unquoted text are read here.
fn char_string(word: &Word) -> Result<Vec<u8>, TextError> {
    let bytes = if word.quoted {
        word.text.clone()
    } else {
        let mut out = Vec::with_capacity(word.text.len());
        let mut i = 0;
        while i < word.text.len() {
            if word.text[i] == b'\\' {
                let (v, used) = unescape(&word.text[i..]).ok_or_else(|| TextError::at(word, "bad escape"))?;
                out.push(v);
                i += used;
            } else {
                out.push(word.text[i]);
                i += 1;
            }
        }
        out
    };
    Ok(bytes)
}

/// Reads the record data of `rtype` from its words. `anchor` positions errors when the data
/// is missing altogether.
pub fn parse_rdata(rtype: RType, words: &[Word], origin: &Name, anchor: &Word) -> Result<RData, TextError> {
    let want = |n: usize, form: &str| -> Result<(), TextError> {
        if words.len() == n {
            return Ok(());
        }
        let at = words.get(n).unwrap_or(words.last().unwrap_or(anchor));
        Err(TextError::at(at, format!("{rtype} takes {form}")))
    };
    Ok(match rtype {
        RType::A => {
            want(1, "one IPv4 address")?;
            let t = text_of(&words[0])?;
            RData::A(
                t.parse()
                    .map_err(|_| TextError::at(&words[0], format!("`{t}` is not an IPv4 address")))?,
            )
        }
        RType::AAAA => {
            want(1, "one IPv6 address")?;
            let t = text_of(&words[0])?;
            RData::Aaaa(
                t.parse()
                    .map_err(|_| TextError::at(&words[0], format!("`{t}` is not an IPv6 address")))?,
            )
        }
        RType::NS | RType::CNAME | RType::PTR => {
            want(1, "one domain name")?;
            let n = name_of(&words[0], origin)?;
            match rtype {
                RType::NS => RData::Ns(n),
                RType::CNAME => RData::Cname(n),
                _ => RData::Ptr(n),
            }
        }
        RType::MX => {
            want(2, "a preference and an exchange name (`10 mail.example.com.`)")?;
            RData::Mx {
                preference: number(&words[0], "MX preference")?,
                exchange: name_of(&words[1], origin)?,
            }
        }
        RType::SRV => {
            want(
                4,
                "priority, weight, port and target (`10 5 443 host.example.com.`)",
            )?;
            RData::Srv {
                priority: number(&words[0], "SRV priority")?,
                weight: number(&words[1], "SRV weight")?,
                port: number(&words[2], "SRV port")?,
                target: name_of(&words[3], origin)?,
            }
        }
        RType::TXT => {
            if words.is_empty() {
                return Err(TextError::at(anchor, "TXT takes at least one character string"));
            }
            let mut strings = Vec::with_capacity(words.len());
            for t in words {
                let s = char_string(t)?;
                if s.len() > 255 {
                    return Err(TextError::at(
                        t,
                        "character string longer than 255 octets; split it in several",
                    ));
                }
                strings.push(s.into_boxed_slice());
            }
            RData::Txt(strings)
        }
        RType::CAA => {
            want(3, "flags, tag and value (`0 issue \"ca.example.net\"`)")?;
            let tag = text_of(&words[1])?;
            if tag.is_empty() || tag.len() > 255 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(TextError::at(
                    &words[1],
                    format!("`{tag}` is not a CAA tag (letters and digits)"),
                ));
            }
            RData::Caa {
                flags: number(&words[0], "CAA flags value")?,
                tag: tag.to_ascii_lowercase().into(),
                value: char_string(&words[2])?.into_boxed_slice(),
            }
        }
        RType::SOA => {
            want(7, "mname rname serial refresh retry expire minimum")?;
            let ttl_field = |t: &Word| parse_ttl(text_of(t)?).map_err(|m| TextError::at(t, m));
            RData::Soa(Box::new(Soa {
                mname: name_of(&words[0], origin)?,
                rname: name_of(&words[1], origin)?,
                serial: number(&words[2], "serial")?,
                refresh: ttl_field(&words[3])?,
                retry: ttl_field(&words[4])?,
                expire: ttl_field(&words[5])?,
                minimum: ttl_field(&words[6])?,
            }))
        }
        other => {
            return Err(TextError::at(
                anchor,
                format!("record type {other} is not supported"),
            ));
        }
    })
}

/// A record read from a master file.
#[derive(Debug)]
pub struct MasterRecord {
    pub owner: Name,
    /// `None` when neither the line nor `$TTL` gave one: the zone default applies.
    pub ttl: Option<u32>,
    pub rdata: RData,
    pub line: u32,
    pub col: u32,
}

/// Reads a whole master file whose origin is `origin`.
pub fn parse_master(text: &str, origin: &Name) -> Result<Vec<MasterRecord>, TextError> {
    let mut origin = origin.clone();
    let mut default_ttl: Option<u32> = None;
    let mut last_owner: Option<Name> = None;
    let mut out = Vec::new();
    for line in lines(text)? {
        let words = &line.words;
        // A line of nothing but parentheses holds no record.
        let Some(first) = words.first() else { continue };
        if !first.quoted && first.text.starts_with(b"$") {
            let directive = text_of(first)?.to_ascii_uppercase();
            match directive.as_str() {
                "$ORIGIN" if words.len() == 2 => origin = name_of(&words[1], &origin)?,
                "$TTL" if words.len() == 2 => {
                    default_ttl =
                        Some(parse_ttl(text_of(&words[1])?).map_err(|m| TextError::at(&words[1], m))?)
                }
                "$ORIGIN" | "$TTL" => {
                    return Err(TextError::at(first, format!("{directive} takes one argument")));
                }
                "$INCLUDE" => {
                    return Err(TextError::at(
                        first,
                        "$INCLUDE is not supported: name each file with `import:` in the zone's YAML",
                    ));
                }
                _ => {
                    return Err(TextError::at(first, format!("unknown directive {directive}")));
                }
            }
            continue;
        }
        let mut i = 0;
        let owner = if line.blank_owner {
            last_owner
                .clone()
                .ok_or_else(|| TextError::at(first, "the first record needs an owner name"))?
        } else {
            i = 1;
            name_of(first, &origin)?
        };
        let mut ttl = None;
        let mut rtype = None;
        while i < words.len() {
            let t = &words[i];
            let word = text_of(t)?;
            if ttl.is_none() && word.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(parse_ttl(word).map_err(|m| TextError::at(t, m))?);
            } else if word.eq_ignore_ascii_case("IN") {
            } else if ["CH", "CS", "HS"].iter().any(|c| word.eq_ignore_ascii_case(c)) {
                return Err(TextError::at(t, format!("class {word} is not served; only IN")));
            } else {
                let ty = RType::from_mnemonic(word)
                    .ok_or_else(|| TextError::at(t, format!("unknown record type `{word}`")))?;
                rtype = Some((ty, i));
                break;
            }
            i += 1;
        }
        let (rtype, at) =
            rtype.ok_or_else(|| TextError::at(words.last().unwrap_or(first), "record type missing"))?;
        let rdata = parse_rdata(rtype, &words[at + 1..], &origin, &words[at])?;
        last_owner = Some(owner.clone());
        out.push(MasterRecord {
            owner,
            ttl: ttl.or(default_ttl),
            rdata,
            line: line.line,
            col: line.col,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::parse("example.com.", None).unwrap()
    }

    #[test]
    fn reads_a_typical_zone() {
        let text = "$TTL 1h\n@ IN SOA ns1 hostmaster (\n  1 7200 1800 ; refresh retry\n  2w 900 )\n\
                    @ NS ns1\nns1 300 IN A 192.0.2.1\n    AAAA 2001:db8::1\n\
                    txt TXT \"hello world\" two\nmx MX 10 mail.other.net.\n";
        let recs = parse_master(text, &origin()).unwrap();
        assert_eq!(recs.len(), 6);
        assert_eq!(recs[0].ttl, Some(3600));
        let RData::Soa(soa) = &recs[0].rdata else {
            panic!("not SOA")
        };
        assert_eq!((soa.serial, soa.expire, soa.minimum), (1, 1_209_600, 900));
        assert_eq!(recs[3].owner.to_string(), "ns1.example.com.");
        assert_eq!(recs[3].rdata.rtype(), RType::AAAA);
        assert_eq!(
            recs[4].rdata,
            RData::Txt(vec![b"hello world"[..].into(), b"two"[..].into()])
        );
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse_master("@ SOA a b 1 2 3 4 5\nwww A 300.1.1.1\n", &origin()).unwrap_err();
        assert_eq!((e.line, e.col), (2, 7));
        assert!(e.message.contains("IPv4"), "{}", e.message);
        let e = parse_master("a A (1.2.3.4\n", &origin()).unwrap_err();
        assert_eq!((e.line, e.col), (1, 5));
        let e = parse_master("$INCLUDE other\n", &origin()).unwrap_err();
        assert!(e.message.contains("import"));
        let e = parse_master("a 9999999999 A 1.2.3.4\n", &origin()).unwrap_err();
        assert!(e.message.contains("out of range"), "{}", e.message);
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("1h30m"), Ok(5400));
        assert_eq!(parse_ttl("45"), Ok(45));
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("1x").is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;

    /// Deterministic pseudo-random bytes.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn no_input_panics_the_master_file_reader() {
        let origin = Name::parse("example.com.", None).unwrap();
        let seeds = [
            "$TTL 1h\n@ SOA ns1 h ( 1 2 3 4 5 )\n@ NS ns1\nns1 A 192.0.2.1\n  AAAA ::1\n",
            "a TXT \"x\\\"y\" z\nb MX 10 a\nc SRV 1 2 3 d\ne CAA 0 issue \"x\"\n$ORIGIN sub\nf CNAME g\n",
            "( )\n\"\"\n;c\n\\\n$TTL\n$ORIGIN\n@ 1d IN TYPE1 1.2.3.4\n",
        ];
        let alphabet: &[u8] = b" \t\n();\"\\$@.0123456789abcdefINASOXTCMRV:";
        let mut rng = Lcg(42);
        for seed in seeds {
            let _ = parse_master(seed, &origin);
            for _ in 0..3000 {
                let mut s: Vec<u8> = seed.as_bytes().to_vec();
                for _ in 0..1 + rng.next() % 6 {
                    let at = (rng.next() as usize) % (s.len() + 1);
                    match rng.next() % 3 {
                        0 if at < s.len() => {
                            s.remove(at);
                        }
                        1 if at < s.len() => s[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                        _ => s.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
                    }
                }
                let text = String::from_utf8_lossy(&s);
                let _ = parse_master(&text, &origin);
            }
        }
    }
}
