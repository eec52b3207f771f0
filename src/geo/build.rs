//! `meridian geoip build`: writes a MaxMind DB (MMDB format 2.0) from CSV rows, so tests and the
//! demo use databases the project builds itself.
//!
//! CSV (RFC 4180, read by the `csv` crate: a quoted field may hold commas and `""` quotes): a
//! header naming the columns, then one network per row. `network` is required;
//! `continent`, `country`, `subdivision` (ISO 3166-2 code without the country, e.g. `CA`),
//! `latitude`, `longitude`, `city`, `asn` (a number, with or without `AS`) and `as_org` are
//! optional. `#` starts a comment line.
//! More specific networks win over the networks they sit in, whatever the row order.

use super::countries;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// Which record layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// GeoIP2/GeoLite2 City layout (`continent.code`, `country.iso_code`, `subdivisions`,
    /// `location`), also used by DB-IP.
    MaxMind,
    /// ip-location-db's flat layout (`country_code`, `latitude`, `longitude`, `city`, `state1`).
    Flat,
}

/// Why a database could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{file}:{line}: {message}")]
    Row {
        file: String,
        line: usize,
        message: String,
    },
    #[error("cannot read {file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("cannot write {file}: {source}")]
    Write { file: String, source: std::io::Error },
}

/// One CSV row, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub network: (IpAddr, u8),
    pub continent: Option<String>,
    pub country: Option<String>,
    pub subdivision: Option<String>,
    pub coords: Option<(f64, f64)>,
    pub city: Option<String>,
    /// The autonomous system number and its organization, written as GeoLite2-ASN writes them
    /// (`autonomous_system_number`, `autonomous_system_organization`) in either layout.
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

/// Reads the CSV at `csv` and writes the database at `out` (atomically: temp file + rename).
/// Returns the number of networks written.
pub fn build_file(csv: &Path, out: &Path, schema: Schema) -> Result<usize, BuildError> {
    let text = std::fs::read_to_string(csv).map_err(|source| BuildError::Read {
        file: csv.display().to_string(),
        source,
    })?;
    let rows = parse_csv(&text, &csv.display().to_string())?;
    let bytes = build(&rows, schema, "Meridian demo");
    let tmp = out.with_extension("mmdb.tmp");
    let write_err = |source| BuildError::Write {
        file: out.display().to_string(),
        source,
    };
    std::fs::write(&tmp, &bytes).map_err(write_err)?;
    std::fs::rename(&tmp, out).map_err(write_err)?;
    Ok(rows.len())
}

/// Parses CSV text (RFC 4180: fields may be quoted, `""` is a quote inside quotes); errors name
/// the file and line.
pub fn parse_csv(text: &str, file: &str) -> Result<Vec<Row>, BuildError> {
    let err = |line: u64, message: String| BuildError::Row {
        file: file.to_string(),
        line: line as usize,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .comment(Some(b'#'))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    // Every record with its line; lines of blanks alone are skipped like empty ones.
    let mut records = reader.records().filter_map(|r| match r {
        Ok(r) if r.iter().all(str::is_empty) => None,
        Ok(r) => Some(Ok((r.position().map_or(0, csv::Position::line), r))),
        Err(e) => {
            let line = e.position().map_or(0, csv::Position::line);
            Some(Err(err(line, e.to_string())))
        }
    });
    let (header_line, header) = records
        .next()
        .transpose()?
        .ok_or_else(|| err(1, "empty file: a header line is required".into()))?;
    let columns: Vec<&str> = header.iter().collect();
    const KNOWN: [&str; 9] = [
        "network",
        "continent",
        "country",
        "subdivision",
        "latitude",
        "longitude",
        "city",
        "asn",
        "as_org",
    ];
    for c in &columns {
        if !KNOWN.contains(c) {
            return Err(err(
                header_line,
                format!("unknown column `{c}` (known: {})", KNOWN.join(", ")),
            ));
        }
    }
    if !columns.contains(&"network") {
        return Err(err(header_line, "the header must name a `network` column".into()));
    }
    let mut rows = Vec::new();
    for record in records {
        let (n, fields) = record?;
        if fields.len() != columns.len() {
            return Err(err(
                n,
                format!("{} fields, the header has {}", fields.len(), columns.len()),
            ));
        }
        let get = |name: &str| {
            columns
                .iter()
                .position(|c| *c == name)
                .and_then(|i| fields.get(i))
                .filter(|v| !v.is_empty())
        };
        let net = get("network").ok_or_else(|| err(n, "network is empty".into()))?;
        let network = super::parse_cidr(net)
            .ok_or_else(|| err(n, format!("`{net}` is not a network (like 192.0.2.0/24)")))?;
        let country = get("country").map(str::to_ascii_uppercase);
        if let Some(c) = &country
            && !countries::is_country(c)
        {
            return Err(err(n, format!("`{c}` is not an ISO 3166-1 country code")));
        }
        let continent = match get("continent").map(str::to_ascii_uppercase) {
            Some(k) if !countries::CONTINENTS.contains(&k.as_str()) => {
                return Err(err(
                    n,
                    format!(
                        "`{k}` is not a continent code ({})",
                        countries::CONTINENTS.join(" ")
                    ),
                ));
            }
            Some(k) => Some(k),
            None => country
                .as_deref()
                .and_then(countries::continent_of)
                .map(String::from),
        };
        let coord = |name: &str, max: f64| -> Result<Option<f64>, BuildError> {
            get(name)
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.abs() <= max)
                        .ok_or_else(|| err(n, format!("{name} `{v}` is not a number within ±{max}")))
                })
                .transpose()
        };
        let coords = match (coord("latitude", 90.0)?, coord("longitude", 180.0)?) {
            (Some(lat), Some(lon)) => Some((lat, lon)),
            (None, None) => None,
            _ => return Err(err(n, "latitude and longitude go together".into())),
        };
        let asn = get("asn")
            .map(|v| {
                let digits = v.strip_prefix("AS").or_else(|| v.strip_prefix("as")).unwrap_or(v);
                digits.parse::<u32>().map_err(|_| {
                    err(
                        n,
                        format!("asn `{v}` is not an AS number (like 64500 or AS64500)"),
                    )
                })
            })
            .transpose()?;
        rows.push(Row {
            network,
            continent,
            country,
            subdivision: get("subdivision").map(str::to_ascii_uppercase),
            coords,
            city: get("city").map(String::from),
            asn,
            as_org: get("as_org").map(String::from),
        });
    }
    Ok(rows)
}

/// A value in the MMDB data section.
enum Value {
    Map(Vec<(&'static str, Value)>),
    Str(String),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Array(Vec<Value>),
}

fn record(row: &Row, schema: Schema) -> Value {
    let mut m = Vec::new();
    let en = |s: &str| Value::Map(vec![("en", Value::Str(s.to_string()))]);
    match schema {
        Schema::MaxMind => {
            if let Some(k) = &row.continent {
                m.push(("continent", Value::Map(vec![("code", Value::Str(k.clone()))])));
            }
            if let Some(c) = &row.country {
                m.push(("country", Value::Map(vec![("iso_code", Value::Str(c.clone()))])));
            }
            if let Some(s) = &row.subdivision {
                m.push((
                    "subdivisions",
                    Value::Array(vec![Value::Map(vec![("iso_code", Value::Str(s.clone()))])]),
                ));
            }
            if let Some((lat, lon)) = row.coords {
                m.push((
                    "location",
                    Value::Map(vec![
                        ("latitude", Value::Double(lat)),
                        ("longitude", Value::Double(lon)),
                    ]),
                ));
            }
            if let Some(c) = &row.city {
                m.push(("city", Value::Map(vec![("names", en(c))])));
            }
        }
        Schema::Flat => {
            if let Some(c) = &row.country {
                m.push(("country_code", Value::Str(c.clone())));
            }
            if let Some((lat, lon)) = row.coords {
                m.push(("latitude", Value::Double(lat)));
                m.push(("longitude", Value::Double(lon)));
            }
            if let Some(c) = &row.city {
                m.push(("city", Value::Str(c.clone())));
            }
            if let Some(s) = &row.subdivision {
                m.push(("state1", Value::Str(s.clone())));
            }
        }
    }
    if let Some(n) = row.asn {
        m.push(("autonomous_system_number", Value::U32(n)));
    }
    if let Some(o) = &row.as_org {
        m.push(("autonomous_system_organization", Value::Str(o.clone())));
    }
    Value::Map(m)
}

/// A database of `(network, country)` rows in MaxMind's layout, each continent the country's:
/// what tests of geo rules decide over.
#[cfg(test)]
pub fn country_db(rows: &[(&str, &str)]) -> super::GeoDb {
    let rows: Vec<Row> = rows
        .iter()
        .map(|(net, country)| Row {
            network: super::parse_cidr(net).unwrap(),
            country: Some(country.to_string()),
            continent: countries::continent_of(country).map(String::from),
            subdivision: None,
            coords: None,
            city: None,
            asn: None,
            as_org: None,
        })
        .collect();
    super::GeoDb::from_bytes(build(&rows, Schema::MaxMind, "test"), Path::new("t"), None).unwrap()
}

/// Builds a whole IPv6 database (IPv4 networks live at ::/96 and are aliased at ::ffff:0:0/96
/// and 2002::/16).
pub fn build(rows: &[Row], schema: Schema, description: &str) -> Vec<u8> {
    let mut w = Writer::default();
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| bits_of(r.network).1);
    for row in sorted {
        let mut data = Vec::new();
        encode(&record(row, schema), &mut data);
        let offset = w.data_offset(data);
        let (bits, len) = bits_of(row.network);
        w.insert(bits, len, offset);
    }
    w.alias_ipv4_mapped();
    w.finish(schema, description)
}

/// The 128-bit key of a network and its prefix length in the IPv6 tree.
fn bits_of((addr, len): (IpAddr, u8)) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), len + 96),
        IpAddr::V6(a) => (u128::from(a), len),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Child {
    Empty,
    Node(u32),
    Data(u32),
}

#[derive(Default)]
struct Writer {
    nodes: Vec<[Child; 2]>,
    data: Vec<u8>,
    dedup: HashMap<Vec<u8>, u32>,
}

impl Writer {
    fn data_offset(&mut self, bytes: Vec<u8>) -> u32 {
        if let Some(&o) = self.dedup.get(&bytes) {
            return o;
        }
        let o = self.data.len() as u32;
        self.data.extend_from_slice(&bytes);
        self.dedup.insert(bytes, o);
        o
    }

    fn root(&mut self) -> u32 {
        if self.nodes.is_empty() {
            self.nodes.push([Child::Empty; 2]);
        }
        0
    }

    fn bit(key: u128, depth: u8) -> usize {
        ((key >> (127 - depth)) & 1) as usize
    }

    /// Follows (creating as needed) the path of the first `len - 1` bits; returns the node whose
    /// child at bit `len - 1` is the network's own slot.
    fn parent_of(&mut self, key: u128, len: u8) -> u32 {
        let mut node = self.root();
        for depth in 0..len - 1 {
            let b = Self::bit(key, depth);
            node = match self.nodes[node as usize][b] {
                Child::Node(n) => n,
                other => {
                    // An empty slot, or a less specific network being split: both halves
                    // inherit what was there.
                    let inherit = if let Child::Data(_) = other {
                        other
                    } else {
                        Child::Empty
                    };
                    self.nodes.push([inherit; 2]);
                    let n = (self.nodes.len() - 1) as u32;
                    self.nodes[node as usize][b] = Child::Node(n);
                    n
                }
            };
        }
        node
    }

    fn insert(&mut self, key: u128, len: u8, offset: u32) {
        if len == 0 {
            let root = self.root() as usize;
            self.nodes[root] = [Child::Data(offset); 2];
            return;
        }
        let parent = self.parent_of(key, len);
        self.fill(parent, Self::bit(key, len - 1), offset);
    }

    /// Sets a slot to data; a subtree already there (more specific networks inserted earlier
    /// at equal length cannot exist: rows go in prefix order) is replaced.
    fn fill(&mut self, node: u32, b: usize, offset: u32) {
        self.nodes[node as usize][b] = Child::Data(offset);
    }

    /// Makes ::ffff:0:0/96 (IPv4-mapped) and 2002::/16 (6to4: the IPv4 address in bits 16–48)
    /// lead to the same subtree as ::/96, as MaxMind's databases do.
    fn alias_ipv4_mapped(&mut self) {
        if self.nodes.is_empty() {
            return;
        }
        // The IPv4 root: 96 zero bits down from the root.
        let mut node = 0u32;
        for _ in 0..96 {
            match self.nodes[node as usize][0] {
                Child::Node(n) => node = n,
                _ => return, // no IPv4 data
            }
        }
        for (alias, len) in [(0xffff_u128 << 32, 96), (0x2002_u128 << 112, 16)] {
            let parent = self.parent_of(alias, len);
            self.nodes[parent as usize][Self::bit(alias, len - 1)] = Child::Node(node);
        }
    }

    fn finish(self, schema: Schema, description: &str) -> Vec<u8> {
        let count = self.nodes.len().max(1) as u32;
        let mut out = Vec::with_capacity(self.nodes.len() * 8 + 16 + self.data.len() + 256);
        let value = |c: Child| match c {
            Child::Empty => count,
            Child::Node(n) => n,
            Child::Data(o) => count + 16 + o,
        };
        if self.nodes.is_empty() {
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
        }
        for [l, r] in &self.nodes {
            out.extend_from_slice(&value(*l).to_be_bytes());
            out.extend_from_slice(&value(*r).to_be_bytes());
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let db_type = match schema {
            Schema::MaxMind => "GeoIP2-City",
            Schema::Flat => "ip-location-db-city",
        };
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let meta = Value::Map(vec![
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(epoch)),
            ("database_type", Value::Str(db_type.into())),
            (
                "description",
                Value::Map(vec![("en", Value::Str(description.into()))]),
            ),
            ("ip_version", Value::U16(6)),
            ("languages", Value::Array(vec![Value::Str("en".into())])),
            ("node_count", Value::U32(count)),
            ("record_size", Value::U16(32)),
        ]);
        encode(&meta, &mut out);
        out
    }
}

/// Encodes a value (MMDB spec "Output Data Section").
fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(&Value::Str((*k).to_string()), out);
                encode(v, out);
            }
        }
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Double(d) => {
            control(out, 3, 8);
            out.extend_from_slice(&d.to_be_bytes());
        }
        Value::U16(n) => uint(out, 5, u64::from(*n)),
        Value::U32(n) => uint(out, 6, u64::from(*n)),
        Value::U64(n) => uint(out, 9, *n),
        Value::Array(items) => {
            control(out, 11, items.len());
            for i in items {
                encode(i, out);
            }
        }
    }
}

fn uint(out: &mut Vec<u8>, ty: u8, n: u64) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, ty, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

/// A control byte (type in the top 3 bits, extended types after it) and the size.
fn control(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if ty <= 7 {
        out.push((ty << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(ty - 7);
    }
    out.extend_from_slice(&extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::GeoDb;

    /// RFC 4180 quoting: a field may hold the delimiter and a doubled quote; the columns after
    /// it stay where the header put them.
    #[test]
    fn quoted_fields_keep_their_commas_and_quotes() {
        let text = "# cities\n\
                    network,country,subdivision,city,latitude,longitude\n\
                    198.51.100.0/24,US,DC,\"Washington, D.C.\",38.9,-77.04\n\
                    \n\
                    203.0.113.0/24,US,NY,\"The \"\"Big Apple\"\", NY\",40.71,-74.01\n\
                    192.0.2.0/24,FR,,Paris,48.86,2.35\n";
        let rows = parse_csv(text, "cities.csv").unwrap();
        let cities: Vec<_> = rows.iter().map(|r| r.city.as_deref()).collect();
        assert_eq!(
            cities,
            [
                Some("Washington, D.C."),
                Some("The \"Big Apple\", NY"),
                Some("Paris")
            ]
        );
        assert_eq!(rows[0].coords, Some((38.9, -77.04)));
        assert_eq!(rows[2].subdivision, None);
        let db = GeoDb::from_bytes(build(&rows, Schema::MaxMind, "t"), Path::new("t.mmdb"), None).unwrap();
        let l = db.lookup("203.0.113.9".parse().unwrap()).location.unwrap();
        assert_eq!(
            (l.country.as_deref(), l.subdivision.as_deref(), l.coords),
            (Some("US"), Some("US-NY"), Some((40.71, -74.01)))
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_csv("network,country\n\n10.0.0.0/8,US\n10.1.0.0/16\n", "x.csv").unwrap_err();
        assert_eq!(e.to_string(), "x.csv:4: 1 fields, the header has 2");
        let e = parse_csv("network,town\n", "x.csv").unwrap_err();
        assert!(e.to_string().starts_with("x.csv:1: unknown column `town`"), "{e}");
        let e = parse_csv("# only a comment\n", "x.csv").unwrap_err();
        assert!(e.to_string().contains("a header line is required"), "{e}");
        let e = parse_csv("network\n10.0.0.1/8\n", "x.csv").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.csv:2: `10.0.0.1/8` is not a network"),
            "{e}"
        );
        let e = parse_csv("network,asn\n10.0.0.0/8,ASX\n", "x.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.csv:2: asn `ASX` is not an AS number (like 64500 or AS64500)"
        );
        let rows = parse_csv(
            "network,asn,as_org\n10.0.0.0/8,AS64500,Example\n10.1.0.0/16,64501,\n",
            "x.csv",
        )
        .unwrap();
        assert_eq!(rows[0].asn, Some(64500));
        assert_eq!(rows[0].as_org.as_deref(), Some("Example"));
        assert_eq!((rows[1].asn, rows[1].as_org.as_deref()), (Some(64501), None));
    }
}
