//! GeoIP: where a client address is. The only module that reads MaxMind DB files.
//!
//! Reads MaxMind GeoIP2/GeoLite2 City and Country, DB-IP lite (same layout), and ip-location-db's
//! flat layout (`country_code`, `latitude`, `longitude`). Every distinct record is decoded once,
//! at load, so a query costs one tree walk and one hash lookup. The same walk builds a
//! [`tree::PrefixTree`] of every network's location, which geo rules compile from.

pub mod build;
pub mod countries;
pub mod tree;

use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where an address is, as far as the database knows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Location {
    /// Two-letter continent code (AF AN AS EU NA OC SA).
    pub continent: Option<Box<str>>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<Box<str>>,
    /// ISO 3166-2 code with its country, like `US-CA`.
    pub subdivision: Option<Box<str>>,
    /// (latitude, longitude) in degrees.
    pub coords: Option<(f64, f64)>,
}

/// A lookup result: the location (if the database has one) and the prefix length of the
/// database network the address fell in (an IPv4 prefix for IPv4 addresses).
#[derive(Clone, Debug, PartialEq)]
pub struct Found<'a> {
    pub location: Option<&'a Location>,
    pub prefix: u8,
}

/// An autonomous system, as a database names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asn {
    pub number: u32,
    pub organization: Option<String>,
}

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot open GeoIP database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("GeoIP database {path} has no country, continent or location data in a layout Meridian reads")]
    Schema { path: PathBuf },
}

/// The value of [`GeoDb::tree`] where the database has no record.
pub const NO_LOCATION: u32 = tree::MAX_VALUE;

/// An opened database.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
    /// Location index (into `locations`) by data-section offset.
    records: HashMap<usize, u32>,
    /// Every distinct record, decoded.
    locations: Vec<Location>,
    /// Every address's location index (or [`NO_LOCATION`]); the IPv4 tree shared by the IPv6
    /// prefixes that alias it.
    tree: tree::PrefixTree,
    pub path: PathBuf,
    /// The file as it was read (device, inode, size, times), to notice a replacement on disk.
    pub identity: Option<crate::file_id::FileId>,
    pub database_type: String,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("database_type", &self.database_type)
            .field("records", &self.records.len())
            .field("tree_nodes", &self.tree.nodes())
            .finish()
    }
}

/// Both layouts in one shape; absent fields are skipped.
#[derive(Deserialize, Default)]
struct RawRecord<'a> {
    #[serde(borrow, default)]
    continent: Option<Coded<'a>>,
    #[serde(borrow, default)]
    country: Option<Coded<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Coded<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<Coded<'a>>>,
    #[serde(default)]
    location: Option<RawLocation>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

#[derive(Deserialize, Default)]
struct Coded<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct RawLocation {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

impl RawRecord<'_> {
    fn location(&self) -> Location {
        let country = self
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or(self.country_code)
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code))
            .map(str::to_ascii_uppercase);
        let continent = self
            .continent
            .as_ref()
            .and_then(|c| c.code)
            .map(str::to_string)
            .or_else(|| {
                country
                    .as_deref()
                    .and_then(countries::continent_of)
                    .map(String::from)
            });
        let subdivision = match (
            &country,
            self.subdivisions
                .as_ref()
                .and_then(|s| s.first())
                .and_then(|s| s.iso_code),
        ) {
            (Some(c), Some(s)) => Some(format!("{c}-{}", s.to_ascii_uppercase()).into()),
            _ => None,
        };
        let coords = match (&self.location, self.latitude, self.longitude) {
            (
                Some(RawLocation {
                    latitude: Some(a),
                    longitude: Some(o),
                }),
                _,
                _,
            ) => Some((*a, *o)),
            (_, Some(a), Some(o)) => Some((a, o)),
            _ => None,
        };
        Location {
            continent: continent.map(Into::into),
            country: country.map(Into::into),
            subdivision,
            coords,
        }
    }
}

impl GeoDb {
    /// Opens and indexes a database file.
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let open_err = |message: String| GeoError::Open {
            path: path.to_path_buf(),
            message,
        };
        let identity = crate::file_id::FileId::of(path);
        let bytes = std::fs::read(path).map_err(|e| open_err(e.to_string()))?;
        Self::from_bytes(bytes, path, identity)
    }

    /// Indexes a database held in memory.
    pub fn from_bytes(
        bytes: Vec<u8>,
        path: &Path,
        identity: Option<crate::file_id::FileId>,
    ) -> Result<GeoDb, GeoError> {
        let open_err = |message: String| GeoError::Open {
            path: path.to_path_buf(),
            message,
        };
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| open_err(e.to_string()))?;
        reader.verify().map_err(|e| open_err(format!("corrupt: {e}")))?;
        let mut records = HashMap::new();
        let mut locations = Vec::new();
        let mut useful = false;
        let mut tree = tree::Builder::new(NO_LOCATION);
        // Networks without data are walked too: together with the networks with data they
        // cover the address space, but for the IPv6 prefixes that alias the IPv4 tree, which
        // the walk skips (so IPv4 networks are walked once); those gaps become aliases.
        let options = maxminddb::WithinOptions::default().include_networks_without_data();
        let networks = reader.networks(options).map_err(|e| open_err(e.to_string()))?;
        let v6 = reader.metadata().ip_version == 6;
        let mut walk = Walk::new();
        for item in networks {
            let item = item.map_err(|e| open_err(format!("corrupt: {e}")))?;
            let net = item.network().map_err(|e| open_err(format!("corrupt: {e}")))?;
            let (addr, len) = (net.ip(), net.prefix());
            if v6 {
                walk.next(addr, len);
            }
            let Some(offset) = item.offset() else { continue };
            let id = match records.get(&offset) {
                Some(&id) => id,
                None => {
                    let raw: RawRecord = item
                        .decode()
                        .map_err(|e| open_err(format!("corrupt: {e}")))?
                        .unwrap_or_default();
                    let loc = raw.location();
                    useful |= loc.country.is_some() || loc.continent.is_some() || loc.coords.is_some();
                    let id = u32::try_from(locations.len())
                        .ok()
                        .filter(|&id| id < NO_LOCATION)
                        .ok_or_else(|| open_err("too many distinct records".into()))?;
                    locations.push(loc);
                    records.insert(offset, id);
                    id
                }
            };
            tree.insert(addr, len, id);
            if let IpAddr::V6(a) = addr
                && len <= 96
                && u128::from(a) == 0
            {
                // An IPv6 database without an IPv4 tree: IPv4 addresses fall in the network
                // that holds ::/96.
                tree.insert(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0, id);
            }
        }
        if v6 {
            walk.finish(&mut tree);
        }
        if !useful {
            return Err(GeoError::Schema {
                path: path.to_path_buf(),
            });
        }
        let database_type = reader.metadata().database_type.clone();
        Ok(GeoDb {
            reader,
            records,
            locations,
            tree: tree.finish(),
            path: path.to_path_buf(),
            identity,
            database_type,
        })
    }

    /// Where `addr` is. Never fails: an address the database does not cover has no location.
    pub fn lookup(&self, addr: IpAddr) -> Found<'_> {
        match self.reader.lookup(addr) {
            Ok(r) => {
                let prefix = r.network().map_or(0, |n| n.prefix());
                Found {
                    location: r
                        .offset()
                        .and_then(|o| self.records.get(&o))
                        .map(|&id| &self.locations[id as usize]),
                    prefix,
                }
            }
            Err(_) => Found {
                location: None,
                prefix: 0,
            },
        }
    }

    /// The autonomous system `addr` is in, when the database carries one (GeoLite2-ASN's fields,
    /// also found in ISP and Enterprise databases). Decoded at each call: for operators' tools,
    /// not the query path, so the index built at load stays as small as it is.
    pub fn asn(&self, addr: IpAddr) -> Option<Asn> {
        #[derive(Deserialize)]
        struct RawAsn {
            #[serde(default)]
            autonomous_system_number: Option<u32>,
            #[serde(default)]
            autonomous_system_organization: Option<String>,
        }
        let raw: RawAsn = self.reader.lookup(addr).ok()?.decode().ok()??;
        Some(Asn {
            number: raw.autonomous_system_number?,
            organization: raw.autonomous_system_organization,
        })
    }

    /// Number of distinct locations indexed.
    pub fn len(&self) -> usize {
        self.locations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }

    /// Every address's location, as an index into [`GeoDb::locations`] (or [`NO_LOCATION`]).
    pub fn tree(&self) -> &tree::PrefixTree {
        &self.tree
    }

    /// The distinct locations, indexed by the values of [`GeoDb::tree`].
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }
}

/// Where an IPv6 database's walk has got to, to find the prefixes it skipped: the aliases of
/// the IPv4 tree (::ffff:0:0/96 and 2002::/16 in MaxMind's databases). The walk goes in address
/// order and, networks without data included, covers everything but those.
#[derive(Default)]
struct Walk {
    /// The first address not walked yet; `None` once the walk has reached 2^128.
    next: Option<u128>,
    /// Prefixes that lead to the IPv4 tree, made once every network is in.
    aliases: Vec<(u128, u8)>,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            next: Some(0),
            aliases: Vec::new(),
        }
    }

    /// The walk yields `addr/len`; an IPv4 network is one of the IPv6 tree's ::/96 subtree.
    fn next(&mut self, addr: IpAddr, len: u8) {
        let (start, len) = match addr {
            IpAddr::V4(a) => {
                if self.aliases.last() != Some(&(0, 96)) {
                    // The IPv4 tree itself, at ::/96.
                    self.aliases.push((0, 96));
                }
                (u128::from(u32::from(a)), len + 96)
            }
            IpAddr::V6(a) => (u128::from(a), len),
        };
        if let Some(at) = self.next {
            self.skipped(at, Some(start));
        }
        self.next = match len {
            0 => None,
            _ => start.checked_add(1u128 << (128 - u32::from(len))),
        };
    }

    /// `at` up to `end` (`None`: 2^128) was skipped: split into aligned prefixes, each an alias.
    fn skipped(&mut self, mut at: u128, end: Option<u128>) {
        while Some(at) != end {
            // Addresses left; `None` when that is all 2^128 of them.
            let left = match end {
                Some(e) => Some(e - at),
                None => (at != 0).then(|| at.wrapping_neg()),
            };
            let fits = |k: u32| match (k, left) {
                (128, left) => left.is_none(),
                (k, left) => left.is_none_or(|l| 1u128 << k <= l),
            };
            let mut k = at.trailing_zeros(); // 128 when `at` is 0
            while !fits(k) {
                k -= 1;
            }
            let len = (128 - k) as u8;
            // An alias deeper than /96 would leave fewer than 32 bits: no writer makes one.
            if len <= 96 {
                self.aliases.push((at, len));
            }
            if k == 128 {
                return;
            }
            match at.checked_add(1u128 << k) {
                Some(n) => at = n,
                None => return, // reached 2^128
            }
        }
    }

    fn finish(mut self, tree: &mut tree::Builder) {
        if let Some(at) = self.next {
            self.skipped(at, None);
        }
        for (at, len) in self.aliases {
            tree.alias_v4(at.into(), len);
        }
    }
}

/// Reads `addr/len` with no host bits set.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max && mask(addr, len) == addr).then_some((addr, len))
}

/// `addr` with every bit past `len` cleared.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    // The leading `len` of `width` bits, as the top bits of a u128.
    let keep = |width: u32| match u32::from(len).min(width) {
        0 => 0,
        n => u128::MAX << (128 - n),
    };
    match addr {
        IpAddr::V4(a) => {
            let bits = (u128::from(u32::from(a)) << 96) & keep(32);
            IpAddr::V4(std::net::Ipv4Addr::from((bits >> 96) as u32))
        }
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & keep(128)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::build::{Row, Schema, build};
    use super::*;

    #[test]
    fn mask_keeps_the_prefix() {
        let m = |a: &str, l| mask(a.parse().unwrap(), l).to_string();
        assert_eq!(m("192.0.2.255", 24), "192.0.2.0");
        assert_eq!(m("192.0.2.255", 0), "0.0.0.0");
        assert_eq!(m("192.0.2.255", 32), "192.0.2.255");
        assert_eq!(m("192.0.2.255", 40), "192.0.2.255");
        assert_eq!(m("255.255.255.255", 1), "128.0.0.0");
        assert_eq!(m("2001:db8:ffff::1", 40), "2001:db8:ff00::");
        assert_eq!(m("2001:db8::1", 128), "2001:db8::1");
        assert_eq!(m("2001:db8::1", 0), "::");
    }

    fn row(net: &str, country: &str, coords: Option<(f64, f64)>) -> Row {
        Row {
            network: parse_cidr(net).unwrap(),
            country: Some(country.into()),
            continent: countries::continent_of(country).map(String::from),
            coords,
            subdivision: if country == "US" { Some("CA".into()) } else { None },
            city: None,
            asn: None,
            as_org: None,
        }
    }

    #[test]
    fn an_asn_reads_back_when_there_is_one() {
        let mut with = row("192.0.2.0/24", "DE", None);
        with.asn = Some(64500);
        with.as_org = Some("Example Net".into());
        for schema in [Schema::MaxMind, Schema::Flat] {
            let db = GeoDb::from_bytes(
                build(&[with.clone(), row("10.0.0.0/8", "US", None)], schema, "test"),
                Path::new("t.mmdb"),
                None,
            )
            .unwrap();
            assert_eq!(
                db.asn("192.0.2.7".parse().unwrap()),
                Some(Asn {
                    number: 64500,
                    organization: Some("Example Net".into())
                })
            );
            assert_eq!(db.asn("10.1.1.1".parse().unwrap()), None);
            assert_eq!(db.asn("203.0.113.1".parse().unwrap()), None);
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            row("10.0.0.0/8", "US", Some((37.7, -122.4))),
            row("10.20.0.0/16", "DE", Some((50.1, 8.7))),
            row("2001:db8:1000::/36", "JP", Some((35.7, 139.7))),
            row("0.0.0.0/0", "BR", None),
        ]
    }

    #[test]
    fn both_schemas_read_back() {
        for schema in [Schema::MaxMind, Schema::Flat] {
            let db = GeoDb::from_bytes(build(&rows(), schema, "test"), Path::new("t.mmdb"), None).unwrap();
            let f = db.lookup("10.1.2.3".parse().unwrap());
            let l = f.location.unwrap();
            assert_eq!(
                (l.country.as_deref(), l.continent.as_deref(), f.prefix),
                (Some("US"), Some("NA"), 12),
                "{schema:?}: 10/8 split around 10.20/16 leaves 10.0/12"
            );
            assert_eq!(l.coords, Some((37.7, -122.4)));
            if schema == Schema::MaxMind {
                assert_eq!(l.subdivision.as_deref(), Some("US-CA"));
            }
            let f = db.lookup("10.20.9.9".parse().unwrap());
            assert_eq!(
                (f.location.unwrap().country.as_deref(), f.prefix),
                (Some("DE"), 16)
            );
            let f = db.lookup("10.21.0.1".parse().unwrap());
            assert_eq!(
                (f.location.unwrap().country.as_deref(), f.prefix),
                (Some("US"), 16),
                "split sibling"
            );
            let f = db.lookup("2001:db8:1234::1".parse().unwrap());
            assert_eq!(
                (f.location.unwrap().country.as_deref(), f.prefix),
                (Some("JP"), 36)
            );
            let f = db.lookup("2001:db9::1".parse().unwrap());
            assert!(f.location.is_none());
            let f = db.lookup("192.0.2.1".parse().unwrap());
            assert_eq!(f.location.unwrap().country.as_deref(), Some("BR"));
            let f = db.lookup("::ffff:10.20.1.1".parse().unwrap());
            assert_eq!(
                f.location.unwrap().country.as_deref(),
                Some("DE"),
                "IPv4-mapped alias"
            );
        }
    }

    /// The location tree built at load against the database's own lookups: the same record
    /// for every address, and the same record throughout the leaf's prefix.
    fn tree_agrees_with_lookup(db: &GeoDb, addrs: impl Iterator<Item = IpAddr>) -> usize {
        let record = |a: IpAddr| db.lookup(a).location.map(std::ptr::from_ref);
        let mut seen = 0;
        for (i, a) in addrs.enumerate() {
            let (id, depth) = db.tree().lookup(a);
            let from_tree = db.locations().get(id as usize).map(std::ptr::from_ref);
            assert_eq!(from_tree, record(a), "{a}");
            for n in 0..3u64 {
                let noise = u128::from(crate::rng::mix(i as u64 * 3 + n)) << 64
                    | u128::from(crate::rng::mix(!(i as u64 * 3 + n)));
                let other = match a {
                    IpAddr::V4(v) => {
                        let keep = (u32::MAX).checked_shl(32 - u32::from(depth)).unwrap_or(0);
                        IpAddr::from(((u32::from(v) & keep) | (noise as u32 & !keep)).to_be_bytes())
                    }
                    IpAddr::V6(v) => {
                        let keep = (u128::MAX).checked_shl(128 - u32::from(depth)).unwrap_or(0);
                        IpAddr::from(((u128::from(v) & keep) | (noise & !keep)).to_be_bytes())
                    }
                };
                assert_eq!(record(other), record(a), "{other} is in {a}/{depth}");
            }
            seen += usize::from(from_tree.is_some());
        }
        seen
    }

    /// Random clients, a third of them in the IPv6 prefixes that alias the IPv4 tree.
    fn clients(n: u64) -> impl Iterator<Item = IpAddr> {
        (0..n).map(|i| {
            let r = crate::rng::mix(i);
            let v4 = [10, (r >> 8) as u8 % 64, (r >> 16) as u8, (r >> 24) as u8];
            match i % 6 {
                0 => IpAddr::from(v4),
                1 => IpAddr::from((r as u32).to_be_bytes()),
                2 => IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped()),
                3 => {
                    let six =
                        (0x2002u128 << 112) | (u128::from(u32::from_be_bytes(v4)) << 80) | u128::from(r);
                    IpAddr::from(six.to_be_bytes())
                }
                4 => IpAddr::from(((0x2001_0db8u128 << 96) | (u128::from(r) << 40)).to_be_bytes()),
                _ => IpAddr::from((u128::from(r) << 64 | u128::from(crate::rng::mix(!i))).to_be_bytes()),
            }
        })
    }

    #[test]
    fn the_location_tree_agrees_with_lookups_aliases_included() {
        for schema in [Schema::MaxMind, Schema::Flat] {
            let db = GeoDb::from_bytes(build(&rows(), schema, "test"), Path::new("t.mmdb"), None).unwrap();
            assert!(tree_agrees_with_lookup(&db, clients(20_000)) > 10_000);
            let (id, depth) = db.tree().lookup("2002:a14:101::1".parse().unwrap());
            assert_eq!(
                (db.locations()[id as usize].country.as_deref(), depth),
                (Some("DE"), 32),
                "6to4: 10.20.1.1, in 10.20/16, 16 bits down"
            );
        }
    }

    /// An IPv6 database whose ::/64 holds a record, so it has no IPv4 tree: every IPv4
    /// address falls in that record, as the database's own lookups say.
    #[test]
    fn without_an_ipv4_tree_ipv4_addresses_take_the_record_holding_it() {
        let rows = vec![row("::/64", "DE", None), row("2001:db8::/32", "FR", None)];
        let db = GeoDb::from_bytes(build(&rows, Schema::MaxMind, "test"), Path::new("t.mmdb"), None).unwrap();
        let (id, depth) = db.tree().lookup("10.1.2.3".parse().unwrap());
        assert_eq!(
            (db.locations()[id as usize].country.as_deref(), depth),
            (Some("DE"), 0)
        );
        assert!(tree_agrees_with_lookup(&db, clients(6_000)) > 2_000);
    }

    /// MaxMind's test databases (their alias layout, record sizes and schemas), when
    /// `MERIDIAN_MMDB_TESTDATA` names the directory holding them.
    #[test]
    #[ignore = "needs MaxMind's test databases: MERIDIAN_MMDB_TESTDATA=dir"]
    fn the_location_tree_agrees_with_maxminds_test_databases() {
        let dir = std::path::PathBuf::from(std::env::var("MERIDIAN_MMDB_TESTDATA").unwrap());
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let Ok(db) = GeoDb::open(&path) else { continue };
            // Their networks sit all over the space: ask near each of them.
            let mut near: Vec<IpAddr> = Vec::new();
            for item in db.reader.networks(Default::default()).unwrap() {
                let net = item.unwrap().network().unwrap();
                near.push(net.ip());
                if let IpAddr::V4(a) = net.ip() {
                    near.push(IpAddr::V6(a.to_ipv6_mapped()));
                    let six = (0x2002u128 << 112) | (u128::from(u32::from(a)) << 80);
                    near.push(IpAddr::from(six.to_be_bytes()));
                }
            }
            let found = tree_agrees_with_lookup(&db, near.into_iter().chain(clients(20_000)));
            eprintln!("{}: {found} addresses with a record agree", path.display());
            checked += 1;
        }
        assert!(checked > 0);
    }

    #[test]
    fn corrupt_and_useless_databases_are_refused() {
        assert!(GeoDb::from_bytes(b"not a database".to_vec(), Path::new("x"), None).is_err());
        let empty = build(&[], Schema::MaxMind, "empty");
        assert!(matches!(
            GeoDb::from_bytes(empty, Path::new("x"), None),
            Err(GeoError::Schema { .. }) | Err(GeoError::Open { .. })
        ));
    }

    #[test]
    fn mask_clears_host_bits() {
        assert_eq!(
            mask("10.1.2.3".parse().unwrap(), 16),
            "10.1.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask("2001:db8::1".parse().unwrap(), 32),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask("10.1.2.3".parse().unwrap(), 0),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
    }
}
