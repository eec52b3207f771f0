//! docs/architecture.md draws the modules in layers; this test holds the code to the picture:
//! every top-level module of `src/` stands in exactly one layer, every `crate::` import points
//! to a lower layer, and no two files inside one module import each other in a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Layer number by top-level module, from the ```layers block of docs/architecture.md.
fn layers() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md")).unwrap();
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/architecture.md has a ```layers block");
    let mut out = BTreeMap::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let n: usize = words
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("`{line}`: a layer line starts with its number"));
        for m in words {
            assert!(out.insert(m.to_string(), n).is_none(), "{m} stands in two layers");
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` → `a::b`; `src/a/mod.rs` → `a`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its unit tests and comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path written after `prefix` (`crate::` or `super::`), as its `::`-separated words;
/// a group (`crate::a::{b::C, d}`) gives one path per member.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find(prefix).map(|i| i + from) {
        from = i + prefix.len();
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary {
            expand(&code[from..], Vec::new(), &mut out);
        }
    }
    out
}

/// Reads the path at the start of `rest` (after `prefix` words) into `out`, groups expanded.
fn expand(rest: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let mut words = prefix;
    words.extend(
        rest[..end]
            .split("::")
            .filter(|w| !w.is_empty())
            .map(String::from),
    );
    let head = &rest[..end];
    if (head.is_empty() || head.ends_with("::")) && rest[end..].starts_with('{') {
        // The members of the group, split at its top-level commas.
        let group = &rest[end + 1..];
        let (mut depth, mut start) = (0, 0);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(group[start..j].trim_start(), words.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(group[start..j].trim_start(), words.clone(), out);
                    start = j + 1;
                }
                _ => {}
            }
        }
    } else if !words.is_empty() {
        out.push(words);
    }
}

/// One source file: its module path, whether it is a `mod.rs`, and its code.
struct File {
    module: String,
    is_mod_rs: bool,
    code: String,
}

/// What breaks the picture: imports that point up or across layers, and a cycle among the
/// files of one module (the first found).
fn violations(files: &[File], layers: &BTreeMap<String, usize>) -> Vec<String> {
    let modules: BTreeSet<&str> = files.iter().map(|f| f.module.as_str()).collect();
    // The longest known module a path names.
    let resolve = |words: &[String]| -> Option<String> {
        (1..=words.len())
            .rev()
            .map(|n| words[..n].join("::"))
            .find(|m| modules.contains(m.as_str()))
    };
    let mut wrong = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = &file.module;
        if module == "lib" || module == "main" {
            continue;
        }
        let top = module.split("::").next().unwrap();
        let mut targets: Vec<String> = paths_after(&file.code, "crate::")
            .iter()
            .filter_map(|w| resolve(w))
            .collect();
        // `super::x` from `a/b.rs` is `a::x`; from `a/b/mod.rs` (module `a::b`) also `a::x`.
        let mut parent: Vec<String> = module.split("::").map(String::from).collect();
        if !file.is_mod_rs || parent.len() > 1 {
            parent.pop();
        }
        for w in paths_after(&file.code, "super::") {
            let mut full = parent.clone();
            full.extend(w);
            targets.extend(resolve(&full));
        }
        for target in targets {
            let target_top = target.split("::").next().unwrap();
            if target_top != top {
                let (from, to) = (layers.get(top), layers.get(target_top));
                if from.is_none() || to.is_none() || to >= from {
                    wrong.push(format!(
                        "{module} (layer {from:?}) imports {target} (layer {to:?})"
                    ));
                }
            } else if target != *module && !module.starts_with(&format!("{target}::")) {
                // Inside one module: a parent's own items are shared with its children;
                // imports between siblings must not go round in a cycle.
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.push(m);
            return Some(format!("an import cycle: {}", cycle.join(" → ")));
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for next in edges.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            wrong.push(cycle);
            break;
        }
    }
    wrong
}

#[test]
fn imports_point_down_the_layers_and_never_in_a_cycle() {
    let layers = layers();
    let src = Path::new(ROOT).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: Vec<File> = paths
        .iter()
        .map(|p| File {
            module: module_of(&src, p),
            is_mod_rs: p.file_name().is_some_and(|n| n == "mod.rs"),
            code: code(&std::fs::read_to_string(p).unwrap()),
        })
        .collect();
    let tops: BTreeSet<String> = files
        .iter()
        .map(|f| f.module.clone())
        .filter(|m| !m.contains("::") && m != "lib" && m != "main")
        .collect();
    let drawn: BTreeSet<String> = layers.keys().cloned().collect();
    assert_eq!(
        tops, drawn,
        "the layers block names every top-level module, and only those"
    );
    let wrong = violations(&files, &layers);
    assert!(
        wrong.is_empty(),
        "the code leaves the picture:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_upward_imports_and_cycles() {
    // The checker on made-up files: a test that cannot fail is a defect.
    let text = code(
        "use crate::state::Snapshot; // crate::admin\nuse crate::{a::B, c::{d, e::F}};\nfn f() { super::x::y(); }\n#[cfg(test)]\nmod tests { use crate::app; }",
    );
    let w = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        paths_after(&text, "crate::"),
        vec![
            w(&["state", "Snapshot"]),
            w(&["a", "B"]),
            w(&["c", "d"]),
            w(&["c", "e", "F"])
        ]
    );
    assert_eq!(paths_after(&text, "super::"), vec![w(&["x", "y"])]);
    assert!(paths_after("my_crate::a", "crate::").is_empty());

    let file = |module: &str, is_mod_rs: bool, code: &str| File {
        module: module.into(),
        is_mod_rs,
        code: code.into(),
    };
    let layers = BTreeMap::from([("low".to_string(), 0), ("high".to_string(), 1)]);
    let fine = [
        file("low", true, ""),
        file("low::a", false, "use super::b::X;"),
        file("low::b", false, ""),
        file("high", false, "use crate::low::{a, b};"),
    ];
    assert!(
        violations(&fine, &layers).is_empty(),
        "{:?}",
        violations(&fine, &layers)
    );
    let upward = [
        file("low", false, "use crate::{high::Y};"),
        file("high", false, ""),
    ];
    assert_eq!(violations(&upward, &layers).len(), 1, "an import pointing up");
    let cycle = [
        file("low", true, ""),
        file("low::a", false, "use super::b::X;"),
        file("low::b", false, "fn f() { crate::low::a::g(); }"),
    ];
    let found = violations(&cycle, &layers);
    assert!(found.iter().any(|v| v.contains("cycle")), "{found:?}");
}
