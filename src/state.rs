//! The serving snapshot: the validated model compiled into lookup tables, and the one place it
//! is published. Readers `load()` an `Arc<Snapshot>` per query and never see half an update.

use crate::config::{Config, Known};
use crate::geo::GeoDb;
use crate::health::HealthView;
use crate::lock::LockExt;
use crate::metrics::{Metrics, ZoneCounters};
use crate::model::gslb::{Datacenter, GeoMatch, GslbName, Policy};
use crate::model::{Node, RRset, RType, Zone, ZoneStamp};
use crate::name::{Name, NameKey, NameMap, parent_wire};
use crate::select::geo::{Decision, RuleTree};
use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A name in a compiled zone: a node with data, or an empty non-terminal (RFC 4592 §2.2.2).
#[derive(Debug)]
pub struct Entry {
    pub node: Option<Node>,
    /// NS here and not at the apex: a zone cut.
    pub is_cut: bool,
}

/// A zone compiled for lookups, keyed by lowercased wire names. Shared by every snapshot while
/// its file reads the same (its `stamp`): an edit or a reload compiles only the zones it changed.
#[derive(Debug)]
pub struct CompiledZone {
    pub origin: Name,
    /// The file it was read from, and what that file held (`config::Known` is made of these).
    pub source: PathBuf,
    pub stamp: ZoneStamp,
    pub entries: NameMap<Entry>,
    /// The apex SOA RRset, for negative answers.
    pub soa: RRset,
    /// Whether any name below the apex is a delegation: a zone without one (most GSLB zones)
    /// answers without looking for cuts above the name asked.
    pub has_cuts: bool,
    /// Queries answered from this zone.
    pub counters: Arc<ZoneCounters>,
}

impl CompiledZone {
    /// Compiles a validated zone (one read, not `unchanged`). The apex SOA is guaranteed by
    /// validation.
    pub fn compile(zone: Zone) -> CompiledZone {
        assert!(!zone.unchanged, "an unchanged zone has no nodes to compile");
        let apex = zone.origin.key();
        let soa = zone
            .nodes
            .iter()
            .find(|n| n.name.same_as(&zone.origin))
            .and_then(|n| n.get(RType::SOA))
            .cloned()
            .expect("validated zone has an apex SOA");
        // One slot per node; empty non-terminals, rare in most zones, grow it.
        let mut entries: NameMap<Entry> =
            NameMap::with_capacity_and_hasher(zone.nodes.len(), Default::default());
        for node in zone.nodes {
            let key = node.name.key();
            // Every ancestor up to the apex exists, as an empty non-terminal if nothing else.
            let mut up = parent_wire(key.as_bytes());
            while let Some(p) = up.filter(|p| p.len() >= apex.as_bytes().len()) {
                entries.entry(NameKey::of_wire(p)).or_insert(Entry {
                    node: None,
                    is_cut: false,
                });
                up = parent_wire(p);
            }
            let is_cut = key != apex && node.get(RType::NS).is_some();
            entries.insert(
                key,
                Entry {
                    node: Some(node),
                    is_cut,
                },
            );
        }
        let has_cuts = entries.values().any(|e| e.is_cut);
        // Kept as long as the zone serves: no room for more (a table grown by insertions
        // can be up to twice its entries).
        entries.shrink_to_fit();
        CompiledZone {
            origin: zone.origin,
            source: zone.source,
            stamp: zone.stamp,
            entries,
            soa,
            has_cuts,
            counters: Arc::default(),
        }
    }

    /// TTL of negative answers: min(SOA TTL, SOA minimum) (RFC 2308 §5).
    pub fn negative_ttl(&self) -> u32 {
        match self.soa.rdatas.first() {
            Some(crate::model::RData::Soa(s)) => self.soa.ttl.min(s.minimum),
            _ => self.soa.ttl,
        }
    }
}

/// Everything a query needs, immutable once published.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub zones: Arc<NameMap<Arc<CompiledZone>>>,
    /// The wire lengths of the zones' origins (bit n of the 256: some origin is n bytes long):
    /// `zone_for` hashes only the suffixes of a name that could be one.
    origin_lengths: [u64; 4],
    /// Indexed by `DcId`.
    pub datacenters: Arc<[Datacenter]>,
    pub geo: Option<Arc<GeoDb>>,
    /// The geo rules of every `policy: geo` name, compiled over `geo`.
    pub geo_rules: Arc<GeoRules>,
    /// Endpoint health: probe states read through atomics.
    pub health: Arc<HealthView>,
    pub metrics: Arc<Metrics>,
    /// Queries for no zone of ours, and unparsable ones.
    pub no_zone: Arc<ZoneCounters>,
    /// Load-balanced answers per data center, by `DcId`.
    pub dc_answers: Vec<Counter>,
    /// This server's identifier for NSID (RFC 5001).
    pub nsid: Option<Box<[u8]>>,
    /// Increases with every published snapshot.
    pub generation: u64,
}

impl Snapshot {
    /// Compiles the zones of a validated configuration, counting into metrics of its own (for
    /// one-off answers such as `meridian explain`; the server's store keeps one registry).
    pub fn new(config: Config, health: Arc<HealthView>, generation: u64) -> Snapshot {
        Snapshot::with_metrics(config, health, Arc::default(), generation)
    }

    /// Compiles a configuration, counting into `metrics` (counters outlive reloads).
    pub fn with_metrics(
        config: Config,
        health: Arc<HealthView>,
        metrics: Arc<Metrics>,
        generation: u64,
    ) -> Snapshot {
        Snapshot::reusing(config, health, metrics, generation, &NameMap::default(), None)
    }

    /// Compiles the zones of `config` that were read, and shares those `unchanged` from
    /// `before` (the zones of the snapshot `config` was loaded against: see `config::Known`);
    /// rule trees of `previous` over the same database are reused.
    fn reusing(
        config: Config,
        health: Arc<HealthView>,
        metrics: Arc<Metrics>,
        generation: u64,
        before: &NameMap<Arc<CompiledZone>>,
        previous: Option<&GeoRules>,
    ) -> Snapshot {
        let zones: NameMap<Arc<CompiledZone>> = config
            .zones
            .into_iter()
            .map(|z| {
                let key = z.origin.key();
                let compiled = if z.unchanged {
                    let same = before
                        .get(&key)
                        .filter(|c| c.source == z.source && c.stamp == z.stamp);
                    // `Known` is read from the snapshot serving, and changes are applied one at
                    // a time (`Control::begin_change`): the zone is there.
                    same.expect("an unchanged zone is served by the snapshot it was loaded against")
                        .clone()
                } else {
                    let mut c = CompiledZone::compile(z);
                    c.counters = metrics.zone(&c.origin.to_string());
                    Arc::new(c)
                };
                (key, compiled)
            })
            .collect();
        let nsid = config.dns.nsid.as_ref().map(|n| n.as_bytes().into());
        let dc_answers = config
            .datacenters
            .iter()
            .map(|d| metrics.datacenter(&d.name))
            .collect();
        let geo_rules = GeoRules::compile(&zones, config.geoip.as_ref(), previous);
        let mut origin_lengths = [0u64; 4];
        for key in zones.keys() {
            let n = key.as_bytes().len().min(255);
            origin_lengths[n / 64] |= 1 << (n % 64);
        }
        Snapshot {
            zones: Arc::new(zones),
            origin_lengths,
            datacenters: config.datacenters.into(),
            geo: config.geoip,
            geo_rules: Arc::new(geo_rules),
            health,
            no_zone: metrics.zone(""),
            metrics,
            dc_answers,
            nsid,
            generation,
        }
    }

    /// The most specific zone containing the lowercased wire name `key`.
    pub fn zone_for(&self, key: &[u8]) -> Option<&CompiledZone> {
        let mut cur = Some(key);
        while let Some(k) = cur {
            let n = k.len().min(255);
            if self.origin_lengths[n / 64] & (1 << (n % 64)) != 0
                && let Some(z) = self.zones.get(k)
            {
                return Some(z.as_ref());
            }
            cur = parent_wire(k);
        }
        None
    }
}

/// The single writer of the serving snapshot. Readers never lock; writers (reload, GeoIP
/// refresh) take `write` so that one never undoes the other.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    write: Mutex<()>,
    pub metrics: Arc<Metrics>,
}

impl Store {
    pub fn new(config: Config, health: Arc<HealthView>, metrics: Arc<Metrics>) -> Store {
        Store {
            current: ArcSwap::from_pointee(Snapshot::with_metrics(config, health, metrics.clone(), 1)),
            write: Mutex::new(()),
            metrics,
        }
    }

    /// The snapshot to answer from; cheap, lock-free.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Builds a snapshot from `config` and swaps it in whole. Returns its generation. The
    /// zones of `config` that are `unchanged` are shared with the snapshot serving, not
    /// compiled again.
    pub fn publish(&self, config: Config, health: Arc<HealthView>) -> u64 {
        let _w = self.write.locked();
        let current = self.current.load_full();
        let generation = current.generation + 1;
        self.current.store(Arc::new(Snapshot::reusing(
            config,
            health,
            self.metrics.clone(),
            generation,
            &current.zones,
            Some(&current.geo_rules),
        )));
        generation
    }

    /// The zones serving, as `config::load_known` takes them: an edit or a reload parses and
    /// compiles only the zone files that read differently.
    pub fn known(&self) -> Known {
        let current = self.current.load();
        Known {
            zones: current
                .zones
                .values()
                .map(|z| (z.source.clone(), (z.origin.clone(), z.stamp.clone())))
                .collect(),
            files: Arc::default(),
        }
    }

    /// Swaps in a new GeoIP database, keeping everything else; the geo rules are compiled
    /// over it before it serves.
    pub fn replace_geo(&self, geo: Arc<GeoDb>) -> u64 {
        self.replace(|cur| Snapshot {
            geo_rules: Arc::new(cur.geo_rules.over(Some(&geo))),
            geo: Some(geo),
            ..cur.share()
        })
    }

    /// Swaps in a new health view (the first with probe results), keeping everything else.
    pub fn replace_health(&self, health: Arc<HealthView>) -> u64 {
        self.replace(|cur| Snapshot {
            health,
            ..cur.share()
        })
    }

    /// Publishes `change` of the current snapshot, under the writer lock.
    fn replace(&self, change: impl FnOnce(&Snapshot) -> Snapshot) -> u64 {
        let _w = self.write.locked();
        let cur = self.current.load_full();
        let generation = cur.generation + 1;
        self.current.store(Arc::new(Snapshot {
            generation,
            ..change(&cur)
        }));
        generation
    }
}

impl Snapshot {
    /// A snapshot sharing this one's tables (cheap: reference counts).
    fn share(&self) -> Snapshot {
        Snapshot {
            zones: self.zones.clone(),
            origin_lengths: self.origin_lengths,
            datacenters: self.datacenters.clone(),
            geo: self.geo.clone(),
            geo_rules: self.geo_rules.clone(),
            health: self.health.clone(),
            metrics: self.metrics.clone(),
            no_zone: self.no_zone.clone(),
            dc_answers: self.dc_answers.clone(),
            nsid: self.nsid.clone(),
            generation: self.generation,
        }
    }
}

/// The geo rules of every `policy: geo` name compiled over the GeoIP database
/// (`select::geo::RuleTree`): one tree per distinct list of conditions, shared by the names
/// that have it. Built with the snapshot, immutable after.
#[derive(Debug, Default)]
pub struct GeoRules {
    /// (address of a name's `GslbName` in the snapshot's zones, index into `trees`), sorted by
    /// address. The snapshot holds the zones, so the addresses stay those names' while it lives.
    names: Vec<(usize, u32)>,
    /// Each distinct list of conditions and its tree.
    trees: Vec<(Vec<GeoMatch>, Arc<RuleTree>)>,
    /// The database the trees were compiled over.
    db: Option<Arc<GeoDb>>,
}

impl GeoRules {
    /// Compiles the geo names of `zones` over `db`, reusing `previous`'s trees when they were
    /// compiled over the same database.
    fn compile(
        zones: &NameMap<Arc<CompiledZone>>,
        db: Option<&Arc<GeoDb>>,
        previous: Option<&GeoRules>,
    ) -> GeoRules {
        let reusable = previous.filter(|p| match (&p.db, db) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        });
        let mut rules = GeoRules {
            db: db.cloned(),
            ..GeoRules::default()
        };
        let names = zones
            .values()
            .flat_map(|z| z.entries.values())
            .filter_map(|e| e.node.as_ref()?.gslb.as_deref())
            .filter(|g| g.policy == Policy::Geo);
        for g in names {
            let conditions: Vec<GeoMatch> = g.geo.iter().map(|r| r.matches.clone()).collect();
            let index = match rules.trees.iter().position(|(c, _)| *c == conditions) {
                Some(i) => i,
                None => {
                    let tree = reusable
                        .and_then(|p| p.trees.iter().find(|(c, _)| *c == conditions))
                        .map(|(_, t)| t.clone())
                        .unwrap_or_else(|| Arc::new(compiled(&g.geo, db)));
                    rules.trees.push((conditions, tree));
                    rules.trees.len() - 1
                }
            };
            rules.names.push((address(g), index as u32));
        }
        rules.names.sort_unstable();
        rules
    }

    /// The same names' rules compiled over another database.
    fn over(&self, db: Option<&Arc<GeoDb>>) -> GeoRules {
        let trees = self
            .trees
            .iter()
            .map(|(conditions, _)| {
                let rules: Vec<crate::model::gslb::GeoRule> = conditions
                    .iter()
                    .map(|m| crate::model::gslb::GeoRule {
                        matches: m.clone(),
                        ranks: Vec::new(),
                    })
                    .collect();
                (conditions.clone(), Arc::new(compiled(&rules, db)))
            })
            .collect();
        GeoRules {
            names: self.names.clone(),
            trees,
            db: db.cloned(),
        }
    }

    /// What `g`'s rules decide for `addr`. No allocation, no lock: a binary search and a walk
    /// down the tree.
    pub fn decide(&self, g: &GslbName, addr: IpAddr) -> Decision {
        match self.names.binary_search_by_key(&address(g), |&(a, _)| a) {
            Ok(i) => self.trees[self.names[i].1 as usize].1.decide(addr),
            // Only names of this snapshot's zones come here, and all were compiled; a name from
            // elsewhere still gets its own rules' answer, for exactly its address (no lookup
            // of a wider scope without a tree).
            Err(_) => {
                let location = self.db.as_ref().and_then(|db| db.lookup(addr).location);
                Decision::exact(&g.geo, addr, location)
            }
        }
    }

    /// Distinct rule trees and the bytes their nodes hold.
    pub fn size(&self) -> (usize, usize) {
        let bytes = self.trees.iter().map(|(_, t)| t.tree().heap_bytes()).sum();
        (self.trees.len(), bytes)
    }
}

/// `RuleTree::compile`, logged with its size and time (a database of millions of networks
/// takes a noticeable part of a second).
fn compiled(rules: &[crate::model::gslb::GeoRule], db: Option<&Arc<GeoDb>>) -> RuleTree {
    let started = std::time::Instant::now();
    let tree = RuleTree::compile(rules, db.map(|d| &**d));
    tracing::info!(
        rules = rules.len(),
        nodes = tree.tree().nodes(),
        bytes = tree.tree().heap_bytes(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "geo rules compiled"
    );
    tree
}

fn address(g: &GslbName) -> usize {
    std::ptr::from_ref(g) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Overlay};
    use crate::geo::build::{Row, Schema, build};

    fn zone(name: &str, www: &str) -> String {
        format!(
            "zone: {name}\nsoa: {{ mname: ns1, rname: hostmaster }}\nns: [ns1]\n\
             records:\n  ns1: {{ A: [192.0.2.1] }}\n  www: {{ A: [{www}] }}\n"
        )
    }

    /// A snapshot published after an edit shares every zone the edit left as it was (the same
    /// allocation, not a copy), and compiles the one it changed.
    #[test]
    fn zones_not_changed_are_shared_by_the_next_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meridian.yaml");
        std::fs::write(&path, "zones_dir: zones\n").unwrap();
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        std::fs::write(zones.join("a.test.yaml"), zone("a.test", "192.0.2.80")).unwrap();
        std::fs::write(zones.join("b.test.yaml"), zone("b.test", "192.0.2.81")).unwrap();
        let store = Store::new(config::load(&path).unwrap(), Arc::default(), Arc::default());
        let before = arc_swap::Guard::into_inner(store.load());
        let key = |name: &str| Name::parse(name, None).unwrap().key();

        std::fs::write(zones.join("b.test.yaml"), zone("b.test", "192.0.2.91")).unwrap();
        let edited = config::load_known(&path, None, &Overlay::default(), &store.known()).unwrap();
        store.publish(edited, Arc::default());
        let after = arc_swap::Guard::into_inner(store.load());
        assert!(Arc::ptr_eq(
            &before.zones[&key("a.test.")],
            &after.zones[&key("a.test.")]
        ));
        assert!(!Arc::ptr_eq(
            &before.zones[&key("b.test.")],
            &after.zones[&key("b.test.")]
        ));
        let www = |snap: &Snapshot, name: &str| {
            let entry = &snap.zones[&key(name)].entries[&key(&format!("www.{name}"))];
            let set = entry.node.as_ref().unwrap().get(RType::A).unwrap();
            format!("{:?}", set.rdatas)
        };
        assert_eq!(www(&after, "a.test."), www(&before, "a.test."));
        assert!(
            www(&after, "b.test.").contains("192.0.2.91"),
            "{}",
            www(&after, "b.test.")
        );

        // A reload of files that read the same compiles nothing.
        let same = config::load_known(&path, None, &Overlay::default(), &store.known()).unwrap();
        store.publish(same, Arc::default());
        let again = arc_swap::Guard::into_inner(store.load());
        for name in ["a.test.", "b.test."] {
            assert!(
                Arc::ptr_eq(&after.zones[&key(name)], &again.zones[&key(name)]),
                "{name}"
            );
        }
        assert_eq!(again.generation, after.generation + 1);
    }

    fn write_db(path: &std::path::Path, net: &str, continent: &str, country: &str) {
        let row = Row {
            network: crate::geo::parse_cidr(net).unwrap(),
            continent: Some(continent.into()),
            country: Some(country.into()),
            subdivision: None,
            coords: None,
            city: None,
            asn: None,
            as_org: None,
        };
        std::fs::write(path, build(&[row], Schema::MaxMind, "test")).unwrap();
    }

    /// `meridian.yaml` in `dir`: a zones directory, the GeoIP database `geo.mmdb`, and two data
    /// centers (us in North America, eu in Europe).
    fn write_geo_config(dir: &std::path::Path) {
        std::fs::write(
            dir.join("meridian.yaml"),
            "zones_dir: zones\ngeoip: { database: geo.mmdb }\ndatacenters:\n  \
             us: { location: { continent: NA }, endpoints: [{ address: 192.0.2.10 }] }\n  \
             eu: { location: { continent: EU }, endpoints: [{ address: 198.51.100.10 }] }\n",
        )
        .unwrap();
    }

    /// Two names with the same rules share one tree; a reload over the same database reuses it;
    /// a new database is compiled before it serves.
    #[test]
    fn geo_rules_follow_the_database_and_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        write_db(&dir.path().join("geo.mmdb"), "10.20.0.0/16", "EU", "GB");
        write_geo_config(dir.path());
        let rules = "policy: geo, datacenters: [us, eu], geo: { \"continent:EU\": [eu], default: [us] }";
        std::fs::write(
            dir.path().join("zones/example.test.yaml"),
            format!(
                "zone: example.test\nsoa: {{ mname: ns1.example.test., rname: h.example.test. }}\n\
                 ns: [ns1.example.test.]\nrecords: {{ ns1: {{ A: [192.0.2.1] }} }}\n\
                 gslb:\n  www: {{ {rules} }}\n  api: {{ {rules} }}\n"
            ),
        )
        .unwrap();
        let load = || crate::config::load(&dir.path().join("meridian.yaml")).unwrap();
        let store = Store::new(load(), Arc::default(), Arc::default());
        let snap = store.load().clone();
        assert_eq!(
            snap.geo_rules.size().0,
            1,
            "one tree for two names with the same rules"
        );
        let name = |snap: &Snapshot, n: &str| {
            let zone = snap.zones.values().next().unwrap();
            let key = Name::parse(&format!("{n}.example.test."), None).unwrap().key();
            zone.entries[&key].node.as_ref().unwrap().gslb.clone().unwrap()
        };
        let decide = |snap: &Snapshot, n: &str, a: &str| {
            let g = name(snap, n);
            let d = snap.geo_rules.decide(&g, a.parse().unwrap());
            (d.rule(&g.geo).map(|r| r.matches.to_string()), d.scope)
        };
        let eu = (Some("continent:EU".to_string()), 16);
        assert_eq!(decide(&snap, "www", "10.20.1.1"), eu);
        assert_eq!(decide(&snap, "api", "10.20.1.1"), eu);
        // A name that is not the snapshot's (a copy: another address) has no tree: its rules
        // still decide, for the client's address alone.
        let copy = (*name(&snap, "www")).clone();
        let d = snap.geo_rules.decide(&copy, "10.20.1.1".parse().unwrap());
        assert_eq!(
            (d.rule(&copy.geo).map(|r| r.matches.to_string()), d.scope),
            (Some("continent:EU".to_string()), 32)
        );
        let d = snap.geo_rules.decide(&copy, "192.0.2.1".parse().unwrap());
        assert_eq!(
            (d.rule(&copy.geo).map(|r| r.matches.to_string()), d.scope),
            (Some("default".to_string()), 32)
        );

        // A reload, same database (kept by the reload, as the file is unchanged): the tree is
        // reused.
        let reloaded = crate::config::load_overlay(
            &dir.path().join("meridian.yaml"),
            snap.geo.as_ref(),
            &Default::default(),
        )
        .unwrap();
        store.publish(reloaded, Arc::default());
        let again = store.load().clone();
        assert!(Arc::ptr_eq(
            &again.geo_rules.trees[0].1,
            &snap.geo_rules.trees[0].1
        ));
        assert_eq!(decide(&again, "www", "10.20.1.1"), eu);

        // A new database: compiled over it.
        let path = dir.path().join("geo2.mmdb");
        write_db(&path, "10.0.0.0/8", "EU", "FR");
        store.replace_geo(Arc::new(GeoDb::open(&path).unwrap()));
        let swapped = store.load().clone();
        assert_eq!(
            decide(&swapped, "www", "10.20.1.1"),
            (Some("continent:EU".to_string()), 8)
        );
        assert_eq!(
            decide(&swapped, "api", "10.99.1.1"),
            (Some("continent:EU".to_string()), 8)
        );
    }

    /// A database replaced by one that keeps the old modification time (`cp -p`, `rsync -t`,
    /// an unpacked archive) is still a new file: a reload opens it and compiles over it.
    #[test]
    fn a_geoip_database_replaced_with_the_same_mtime_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        let db = dir.path().join("geo.mmdb");
        write_db(&db, "10.20.0.0/16", "EU", "GB");
        write_geo_config(dir.path());
        std::fs::write(
            dir.path().join("zones/example.test.yaml"),
            "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\n\
             ns: [ns1.example.test.]\nrecords: { ns1: { A: [192.0.2.1] } }\n\
             gslb:\n  www: { policy: geo, datacenters: [us, eu], geo: { \"continent:EU\": [eu], default: [us] } }\n",
        )
        .unwrap();
        let path = dir.path().join("meridian.yaml");
        let store = Store::new(
            crate::config::load(&path).unwrap(),
            Arc::default(),
            Arc::default(),
        );
        let before = store.load().clone();
        let mtime = std::fs::metadata(&db).unwrap().modified().unwrap();
        let aside = dir.path().join("geo.mmdb.new");
        write_db(&aside, "10.30.0.0/16", "EU", "FR");
        std::fs::File::options()
            .write(true)
            .open(&aside)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&aside, &db).unwrap();
        let reloaded = crate::config::load_overlay(&path, before.geo.as_ref(), &Default::default()).unwrap();
        store.publish(reloaded, Arc::default());
        let after = store.load().clone();
        assert!(!Arc::ptr_eq(
            before.geo.as_ref().unwrap(),
            after.geo.as_ref().unwrap()
        ));
        let zone = after.zones.values().next().unwrap();
        let key = Name::parse("www.example.test.", None).unwrap().key();
        let g = zone.entries[&key].node.as_ref().unwrap().gslb.clone().unwrap();
        let d = after.geo_rules.decide(&g, "10.30.1.1".parse().unwrap());
        assert_eq!(
            d.rule(&g.geo).map(|r| r.matches.to_string()),
            Some("continent:EU".to_string())
        );
    }
}
