//! Large YAML zones load: well beyond the YAML parser's default budget (250,000 nodes, about
//! 50,000 records), which is sized for configuration files, not zone data.

mod common;

use common::*;
use std::fmt::Write as _;
use std::process::Command;

/// Beyond the old limit (about 50,500 records), small enough for a debug build.
const RECORDS: usize = 60_000;

fn write_zone(dir: &std::path::Path, records: usize) {
    let mut z = String::with_capacity(records * 32);
    z.push_str("zone: big.test\nsoa: { mname: ns1.big.test., rname: h.big.test., serial: 1 }\n");
    z.push_str("ns: [ns1.big.test.]\nrecords:\n  ns1: { A: [192.0.2.1] }\n");
    for i in 0..records {
        let _ = writeln!(
            z,
            "  h{i}: {{ A: [10.{}.{}.{}] }}",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
    }
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("zones/big.test.yaml"), z).unwrap();
    std::fs::write(
        dir.join("meridian.yaml"),
        "dns:\n  listen: [\"127.0.0.1:0\"]\nzones_dir: zones\n",
    )
    .unwrap();
}

#[test]
fn a_yaml_zone_beyond_the_parser_default_budget_loads_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    write_zone(dir.path(), RECORDS);
    let config = dir.path().join("meridian.yaml");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check failed:\n{stdout}");
    assert!(
        stdout.contains(&format!("{} records", RECORDS + 3)),
        "every record counted:\n{stdout}"
    );
    let server = Server::start(&config);
    let last = RECORDS - 1;
    let m = query(
        server.addr,
        &ask(&format!("h{last}.big.test."), hickory_proto::rr::RecordType::A),
    );
    assert_eq!(
        answer_data(&m),
        [format!("10.{}.{}.{}", last >> 16, (last >> 8) & 255, last & 255)]
    );
}

#[test]
fn a_yaml_alias_bomb_is_still_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    write_zone(dir.path(), 1);
    // One anchor, thousands of aliases to it: how a small file claims a large one's work.
    let aliases = vec!["*a0"; 5000].join(", ");
    let bomb = format!("  b0: {{ TXT: [&a0 v] }}\n  b1: {{ TXT: [{aliases}] }}\n");
    let path = dir.path().join("zones/big.test.yaml");
    let zone = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{zone}{bomb}")).unwrap();
    let start = std::time::Instant::now();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("meridian.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "an alias bomb passed:\n{stdout}");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        stdout.contains("big.test.yaml:") && stdout.contains("budget") && stdout.contains("import:"),
        "says what limit and what to do:\n{stdout}"
    );
}
