//! Zone files (`zones/*.yaml`): the zone's own keys (`zone`, `ttl`, `soa`, `ns`), `records:`,
//! `import:`ed master files and `gslb:` names, built into a [`Zone`] once the zone as a whole
//! holds together (one SOA, NS at the apex, CNAMEs alone, delegations with glue).

use super::diagnostics::{Diagnostics, Loc, Problem};
use super::gslb::{GslbContext, gslb_name};
use super::raw::{Entries, RawValue, RawZone};
use super::records;
use super::source::{FileDigests, Overlay, parse_yaml};
use super::zonefile::{self, TextError, Word, check_ttl, parse_rdata};
use crate::model::gslb::GslbName;
use crate::model::{Digest, Node, RData, RRset, RType, Soa, Zone, ZoneStamp};
use crate::name::{Name, NameKey};
use serde_saphyr::Spanned;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default zone TTL when a zone file names none.
pub const DEFAULT_ZONE_TTL: u32 = 3600;
/// The SOA serial of a zone whose `soa:` gives none.
pub const DEFAULT_SOA_SERIAL: u32 = 1;

/// Every `*.yaml`/`*.yml` in `dir`, in name order.
pub fn zone_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Zones validated before, by file: those of the snapshot serving. A zone file that reads the
/// same as one of them is not parsed again (see [`Known::unchanged`]).
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// Each zone's origin and stamp, by the file it was read from.
    pub zones: HashMap<PathBuf, (Name, ZoneStamp)>,
    /// Digests of the files read before (a server keeps one for its life): a file that was not
    /// modified is not read again to be hashed.
    pub files: Arc<FileDigests>,
}

impl Known {
    /// The zone of `file`, whose text has the digest `text`, when it reads the same as when it
    /// was validated: the same text, the same imported files, and for a zone with `gslb:`
    /// names the same context. A zone depends on nothing else, so it would validate to the
    /// same zone: it comes out `unchanged` (no nodes: the compiled zone serving is reused).
    fn unchanged(
        &self,
        file: &Path,
        text: &Digest,
        cx: &GslbContext<'_>,
        overlay: &Overlay,
    ) -> Option<(Zone, Loc)> {
        let (origin, stamp) = self.zones.get(file)?;
        let same = stamp.text == *text
            && stamp.context.is_none_or(|c| c == cx.digest)
            && stamp
                .imports
                .iter()
                .all(|(path, d)| self.files.digest(path, overlay) == Some(*d));
        same.then(|| {
            let (line, col) = stamp.zone_at;
            let zone = Zone {
                origin: origin.clone(),
                source: file.to_path_buf(),
                stamp: stamp.clone(),
                nodes: Vec::new(),
                unchanged: true,
            };
            (
                zone,
                Loc {
                    file: file.to_path_buf(),
                    line,
                    col,
                },
            )
        })
    }
}

/// Loads every zone file of `dir` (as `overlay` would leave it); a zone with problems is left
/// out, and its problems go to `d`. A file that reads as one of `known` is not parsed again.
pub(crate) fn zones(
    d: &mut Diagnostics,
    dir: &Path,
    cx: &GslbContext<'_>,
    overlay: &Overlay,
    known: &Known,
) -> Vec<Zone> {
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
            d.say(
                &Loc::start(dir),
                Some("zones_dir"),
                format_args!("cannot read the zones directory: {e}"),
            );
            return Vec::new();
        }
    };
    let mut zones = Vec::new();
    let mut seen: HashMap<NameKey, Loc> = HashMap::new();
    for file in files {
        // A file not modified since it was hashed is not read: its digest is known. (A file
        // no zone was read from, as at start, is read once, below.)
        let digest = || known.files.digest(&file, overlay);
        let loaded = match known.zones.contains_key(&file).then(digest).flatten() {
            Some(text_digest) => known.unchanged(&file, &text_digest, cx, overlay),
            None => None,
        };
        let loaded = match loaded {
            Some(same) => Ok(same),
            None => match known.files.read(&file, overlay) {
                Ok((text, text_digest)) => zone(&file, &text, text_digest, cx, overlay, &known.files),
                Err(p) => Err(vec![p]),
            },
        };
        // Across zones, unchanged or not: one file per zone, the first in name order.
        match loaded {
            Ok((zone, loc)) => {
                if let Some(first) = seen.get(&zone.origin.key()) {
                    d.say(
                        &loc,
                        Some("zone"),
                        format_args!("zone {} is already defined at {}", zone.origin, first.short()),
                    );
                    continue;
                }
                seen.insert(zone.origin.key(), loc);
                zones.push(zone);
            }
            Err(problems) => d.append(problems),
        }
    }
    zones
}

/// One record before RRsets are formed.
struct Rec {
    owner: Name,
    ttl: Option<u32>,
    rdata: RData,
    loc: Loc,
}

/// Validates one zone file of `text` (whose digest is `text_digest`); returns the zone and
/// where its `zone:` key is.
fn zone(
    file: &Path,
    text: &str,
    text_digest: Digest,
    cx: &GslbContext<'_>,
    overlay: &Overlay,
    files: &FileDigests,
) -> Result<(Zone, Loc), Vec<Problem>> {
    // The `records:` section read apart when it is in the plain form (see `records`): used only
    // when the zone validates; a zone with problems is read again by the YAML parser, whose
    // reading every problem is reported from.
    if let Some(raw) = read_apart(file, text)
        && let Ok(zone) = zone_of(file, raw, text_digest, cx, overlay, files)
    {
        return Ok(zone);
    }
    let raw: RawZone = parse_yaml(file, text).map_err(|p| vec![p])?;
    zone_of(file, raw, text_digest, cx, overlay, files)
}

/// The zone file `text` with its `records:` section read apart from the rest, when it can be.
fn read_apart(file: &Path, text: &str) -> Option<RawZone> {
    let split = records::split(text)?;
    let mut raw: RawZone = parse_yaml(file, &split.rest).ok()?;
    // The placeholder is the one entry, where the section began: the section is the
    // top-level `records:` mapping (and no other key of the file is `records`).
    match raw.records.0.as_slice() {
        [(key, _)]
            if key.value == records::PLACEHOLDER
                && key.referenced.line() == u64::from(split.placeholder_line) => {}
        _ => return None,
    }
    raw.records = split.records;
    Some(raw)
}

/// Validates one zone file read into `raw`.
fn zone_of(
    file: &Path,
    raw: RawZone,
    text_digest: Digest,
    cx: &GslbContext<'_>,
    overlay: &Overlay,
    files: &FileDigests,
) -> Result<(Zone, Loc), Vec<Problem>> {
    let mut stamp = ZoneStamp {
        text: text_digest,
        imports: Vec::new(),
        context: (!raw.gslb.0.is_empty()).then_some(cx.digest),
        zone_at: (0, 0),
    };
    let mut d = Diagnostics::new(file);
    let origin = match Name::parse(raw.zone.value.trim_end_matches('.'), Some(&Name::root())) {
        Ok(n) if n.label_count() > 0 => n,
        Ok(_) => {
            d.at(&raw.zone, "zone", "the root zone cannot be served");
            return Err(d.into_problems());
        }
        Err(e) => {
            d.at(&raw.zone, "zone", e);
            return Err(d.into_problems());
        }
    };
    let default_ttl = match &raw.ttl {
        None => DEFAULT_ZONE_TTL,
        Some(t) => check_ttl(t.value).unwrap_or_else(|e| {
            d.at(t, "ttl", e);
            DEFAULT_ZONE_TTL
        }),
    };
    let mut recs: Vec<Rec> = Vec::new();
    let name_at = |d: &mut Diagnostics, s: &Spanned<String>, field: &str| -> Option<Name> {
        Name::parse(&s.value, Some(&origin))
            .map_err(|e| d.at(s, field, e))
            .ok()
    };
    // What was refused, so that what it leaves missing is not reported again.
    let mut refused = Refused::default();

    if let Some(soa) = &raw.soa {
        refused.soa = true;
        let s = &soa.value;
        let mname = name_at(&mut d, &s.mname, "soa.mname");
        let rname = name_at(&mut d, &s.rname, "soa.rname");
        if let (Some(mname), Some(rname)) = (mname, rname) {
            let or = |f: &Option<Spanned<u32>>, default: u32| f.as_ref().map_or(default, |v| v.value);
            let soa_rdata = Soa {
                mname,
                rname,
                serial: or(&s.serial, DEFAULT_SOA_SERIAL),
                refresh: or(&s.refresh, 3600),
                retry: or(&s.retry, 600),
                expire: or(&s.expire, 1_209_600),
                minimum: or(&s.minimum, 60),
            };
            recs.push(Rec {
                owner: origin.clone(),
                ttl: None,
                rdata: RData::Soa(Box::new(soa_rdata)),
                loc: Loc::of(file, soa),
            });
            refused.soa = false;
        }
    }
    refused.ns = raw.ns.as_ref().is_some_and(|l| !l.value.is_empty());
    for ns in raw.ns.iter().flat_map(|l| l.value.iter()) {
        if let Some(target) = name_at(&mut d, ns, "ns") {
            refused.ns = false;
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
        // Either way the file's records are missing: the SOA, NS or glue it may have held.
        refused.import = true;
        match files.read(&path, overlay) {
            Err(p) => d.at(
                import,
                "import",
                format_args!("cannot read {}: {}", path.display(), p.message),
            ),
            Ok((text, text_digest)) => match zonefile::parse_master(&text, &origin) {
                // A problem inside the imported file, at its place there.
                Err(e) => d.say(&text_loc(&path, &e), None, e.message),
                Ok(master) => {
                    refused.import = false;
                    stamp.imports.push((path.clone(), text_digest));
                    recs.extend(master.into_iter().map(|m| Rec {
                        owner: m.owner,
                        ttl: m.ttl,
                        rdata: m.rdata,
                        loc: Loc {
                            file: path.clone(),
                            line: m.line,
                            col: m.col,
                        },
                    }));
                }
            },
        }
    }
    let repeated_records =
        one_entry_per_owner(&mut d, &origin, "records", raw.records.0.iter().map(|e| &e.0));
    let repeated_gslb = one_entry_per_owner(&mut d, &origin, "gslb", raw.gslb.0.iter().map(|e| &e.0));
    yaml_records(
        &mut d,
        &origin,
        &raw.records,
        &repeated_records,
        &mut recs,
        &mut refused,
    );
    let gslb: Vec<(GslbName, Loc)> = raw
        .gslb
        .0
        .iter()
        .enumerate()
        .filter(|(i, _)| !repeated_gslb.contains(i))
        .filter_map(|(_, (k, g))| gslb_name(&mut d, &origin, k, g, cx))
        .collect();

    let zone_loc = Loc::of(file, &raw.zone);
    stamp.zone_at = (zone_loc.line, zone_loc.col);
    let mut zone = build(&mut d, origin, default_ttl, recs, gslb, &zone_loc, &refused);
    zone.stamp = stamp;
    d.finish((zone, zone_loc))
}

fn text_loc(file: &Path, e: &TextError) -> Loc {
    Loc {
        file: file.to_path_buf(),
        line: e.line,
        col: e.col,
    }
}

/// Two keys of one section that name the same owner (`www`, `WWW`, `www.example.test.`) would be
/// merged by DNS but edited apart by the API: refused.
/// Returns the positions of the entries refused, which are read no further (their records would
/// only clash with the first entry's again).
fn one_entry_per_owner<'a>(
    d: &mut Diagnostics,
    origin: &Name,
    section: &str,
    keys: impl Iterator<Item = &'a Spanned<String>>,
) -> HashSet<usize> {
    let mut seen: HashMap<NameKey, &Spanned<String>> = HashMap::with_capacity(keys.size_hint().0);
    let mut repeated = HashSet::new();
    for (i, key) in keys.enumerate() {
        let Ok(owner) = Name::parse(&key.value, Some(origin)) else {
            continue; // reported where the entry is read
        };
        match seen.entry(owner.key()) {
            Entry::Occupied(first) => {
                repeated.insert(i);
                let first = first.get();
                let line = Loc::of(d.file(), first).line;
                d.at(
                    key,
                    section,
                    format_args!(
                        "`{}` names the same owner as `{}` (line {line}): one entry per name",
                        key.value, first.value
                    ),
                );
            }
            Entry::Vacant(v) => {
                v.insert(key);
            }
        }
    }
    repeated
}

/// What a zone file gave that was refused (and reported): the zone-wide checks do not report
/// again what its absence causes (no SOA after a bad `soa:`, missing glue after a bad address).
#[derive(Default)]
struct Refused {
    /// `soa:` was given but refused.
    soa: bool,
    /// `ns:` was given and every entry refused.
    ns: bool,
    /// `import:` was given but its file could not be read.
    import: bool,
    /// Owners some of whose records were refused.
    owners: HashSet<NameKey>,
}

/// Turns the `records:` mapping into records; the entries at `repeated` are left out.
fn yaml_records(
    d: &mut Diagnostics,
    origin: &Name,
    records: &Entries<Entries<Spanned<RawValue>>>,
    repeated: &HashSet<usize>,
    out: &mut Vec<Rec>,
    refused: &mut Refused,
) {
    for (i, (owner_key, entries)) in records.0.iter().enumerate() {
        if repeated.contains(&i) {
            continue;
        }
        // Field paths are written only for a problem (a large zone has 100,000 entries).
        let entry_field = || format!("records.{}", owner_key.value);
        let owner = match Name::parse(&owner_key.value, Some(origin)) {
            Ok(n) => n,
            Err(e) => {
                d.say(owner_key, Some(&entry_field()), e);
                continue;
            }
        };
        let before = d.count();
        let mut ttl = None;
        let ttl_field = || format!("{}.ttl", entry_field());
        for (key, value) in &entries.0 {
            if key.value == "ttl" {
                match &value.value {
                    RawValue::Number(n) => match check_ttl(*n) {
                        Ok(t) => ttl = Some(t),
                        Err(e) => d.at(value, &ttl_field(), e),
                    },
                    _ => d.at(value, &ttl_field(), "a number of seconds, like 300"),
                }
            }
        }
        for (key, value) in &entries.0 {
            if key.value == "ttl" {
                continue;
            }
            let field = || format!("{}.{}", entry_field(), key.value);
            let Some(rtype) = RType::from_mnemonic(&key.value).filter(|t| RType::ZONE_TYPES.contains(t))
            else {
                d.say(
                    key,
                    Some(&field()),
                    format_args!("`{}` is not a record type Meridian serves (A, AAAA, CNAME, MX, TXT, SRV, CAA, PTR, NS) or `ttl`", key.value),
                );
                continue;
            };
            if rtype == RType::SOA {
                d.say(key, Some(&field()), "the SOA is given by the zone's `soa:` key");
                continue;
            }
            let items: Vec<(String, Loc)> = match &value.value {
                RawValue::Number(n) => vec![(n.to_string(), Loc::of(d.file(), value))],
                RawValue::One(s) => vec![(s.clone(), Loc::of(d.file(), value))],
                RawValue::Many(list) => list
                    .iter()
                    .map(|s| (s.value.clone(), Loc::of(d.file(), s)))
                    .collect(),
            };
            if rtype == RType::CNAME && items.len() > 1 {
                d.say(key, Some(&field()), "a name has at most one CNAME");
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
                        d.at(&Loc { col, ..loc }, &field(), e.message);
                    }
                }
            }
        }
        if d.count() > before {
            refused.owners.insert(owner.key());
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
    let lines = zonefile::lines(text)?;
    let anchor = Word {
        text: Vec::new(),
        quoted: false,
        line: 1,
        col: 1,
    };
    match lines.as_slice() {
        [] => parse_rdata(rtype, &[], origin, &anchor),
        [one] => parse_rdata(rtype, &one.words, origin, &anchor),
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

/// Forms RRsets and nodes, and checks the zone as a whole. These problems concern records
/// wherever they were written (YAML or an imported file), so they name no field.
fn build(
    d: &mut Diagnostics,
    origin: Name,
    default_ttl: u32,
    recs: Vec<Rec>,
    gslb: Vec<(GslbName, Loc)>,
    zone_loc: &Loc,
    refused: &Refused,
) -> Zone {
    let mut index: HashMap<NameKey, usize> = HashMap::with_capacity(recs.len());
    let mut nodes: Vec<NodeBuild> = Vec::with_capacity(recs.len());
    for rec in recs {
        if !rec.owner.is_subdomain_of(&origin) {
            d.say(
                &rec.loc,
                None,
                format_args!("{} is outside zone {}", rec.owner, origin),
            );
            continue;
        }
        if rec.rdata.rtype() == RType::SOA && !rec.owner.same_as(&origin) {
            d.say(
                &rec.loc,
                None,
                format_args!("SOA belongs at the apex {origin}, not at {}", rec.owner),
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
                    d.say(
                        &rec.loc,
                        None,
                        format_args!(
                            "a second {rtype} at {}; the first is at {}",
                            rec.owner,
                            locs[0].short()
                        ),
                    );
                } else if set.ttl != ttl {
                    d.say(
                        &rec.loc,
                        None,
                        format_args!(
                            "TTL {ttl} differs from {} for the same {rtype} RRset at {} (RFC 2181 §5.2)",
                            set.ttl,
                            locs[0].short()
                        ),
                    );
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
            d.say(&loc, None, format_args!("{} is outside zone {}", g.owner, origin));
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
            d.say(
                &loc,
                None,
                format_args!(
                    "{} is load-balanced under gslb: and cannot also have a static {} (at {})",
                    g.owner,
                    set.rtype,
                    locs[0].short()
                ),
            );
            continue;
        }
        nodes[i].gslb = Some((g, loc));
    }

    let apex_key = origin.key();
    let apex = index.get(&apex_key).map(|&i| &nodes[i]);
    if !refused.soa
        && !refused.import
        && !apex.is_some_and(|n| n.sets.iter().any(|(s, _)| s.rtype == RType::SOA))
    {
        d.say(
            zone_loc,
            Some("soa"),
            format_args!("zone {origin} has no SOA: add a `soa:` key (mname, rname)"),
        );
    }
    if !refused.ns
        && !refused.import
        && !apex.is_some_and(|n| n.sets.iter().any(|(s, _)| s.rtype == RType::NS))
    {
        d.say(
            zone_loc,
            Some("ns"),
            format_args!("zone {origin} has no NS records at its apex: add an `ns:` list"),
        );
    }

    // RFC 2181 §10.1: a CNAME stands alone.
    for node in &nodes {
        if let Some((_, locs)) = node.sets.iter().find(|(s, _)| s.rtype == RType::CNAME)
            && let Some((other, other_locs)) = node.sets.iter().find(|(s, _)| s.rtype != RType::CNAME)
        {
            d.say(
                &locs[0],
                None,
                format_args!(
                    "CNAME at {} cannot sit beside other data ({} at {})",
                    node.name,
                    other.rtype,
                    other_locs[0].short()
                ),
            );
        }
    }

    // Delegations: what lies at or below a cut must be NS or glue, and in-bailiwick NS targets
    // need glue or the child zone cannot be reached.
    let cuts: Vec<&NodeBuild> = nodes
        .iter()
        .filter(|n| !n.name.same_as(&origin) && n.sets.iter().any(|(s, _)| s.rtype == RType::NS))
        .collect();
    for node in &nodes {
        let Some(cut) = cuts.iter().find(|c| node.name.is_subdomain_of(&c.name)) else {
            continue;
        };
        let at_cut = node.name.same_as(&cut.name);
        if let Some((_, loc)) = &node.gslb {
            d.say(
                loc,
                None,
                format_args!("{} is hidden by the delegation at {}", node.name, cut.name),
            );
        }
        for (set, locs) in &node.sets {
            let allowed = matches!(set.rtype, RType::A | RType::AAAA) || (at_cut && set.rtype == RType::NS);
            if !allowed {
                d.say(
                    &locs[0],
                    None,
                    format_args!(
                        "{} at {} is hidden by the delegation at {}; only NS and glue addresses may sit there",
                        set.rtype, node.name, cut.name
                    ),
                );
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
            if !has_glue && !refused.owners.contains(&target.key()) && !refused.import {
                d.say(
                    loc,
                    None,
                    format_args!(
                        "glue missing: NS target {target} lies inside the delegated {} but has no A or AAAA record",
                        cut.name
                    ),
                );
            }
        }
    }

    // A wildcard owner may not carry NS (RFC 4592 §4.2).
    for node in &nodes {
        if node.name.is_wildcard()
            && let Some((_, locs)) = node.sets.iter().find(|(s, _)| s.rtype == RType::NS)
        {
            d.say(
                &locs[0],
                None,
                "NS at a wildcard name is not allowed (RFC 4592 §4.2)",
            );
        }
    }

    Zone {
        origin,
        source: zone_loc.file.clone(),
        stamp: ZoneStamp::default(),
        unchanged: false,
        nodes: nodes
            .into_iter()
            .map(|n| Node {
                name: n.name,
                rrsets: exact(n.sets.into_iter().map(|(s, _)| s)),
                gslb: n.gslb.map(|(g, _)| Arc::new(g)),
            })
            .collect(),
    }
}

/// The RRsets of a node in a vector of their number (the snapshot keeps them as long as the
/// zone serves): neither the spare room of a vector grown by pushes nor the allocation of the
/// load-time pairs, which `collect` would reuse in place (seven RRsets' room for one).
fn exact(sets: impl ExactSizeIterator<Item = RRset>) -> Vec<RRset> {
    let mut v = Vec::with_capacity(sets.len());
    v.extend(sets.map(|mut s| {
        s.rdatas.shrink_to_fit();
        s
    }));
    v
}
