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

/// Every path written after `prefix` (`crate::` or `super::`), as its `::`-separated words.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let boundary =
            i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        rest = &rest[i + prefix.len()..];
        if !boundary {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let words: Vec<String> = rest[..end]
            .split("::")
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect();
        out.push(words);
    }
    out
}

#[test]
fn imports_point_down_the_layers_and_never_in_a_cycle() {
    let layers = layers();
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let tops: BTreeSet<String> = modules
        .iter()
        .filter(|m| !m.contains("::") && *m != "lib" && *m != "main")
        .cloned()
        .collect();
    let drawn: BTreeSet<String> = layers.keys().cloned().collect();
    assert_eq!(
        tops, drawn,
        "the layers block names every top-level module, and only those"
    );

    // The longest known module a path names.
    let resolve = |words: &[String]| -> Option<String> {
        (1..=words.len())
            .rev()
            .map(|n| words[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut wrong = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let top = module.split("::").next().unwrap().to_string();
        let text = code(&std::fs::read_to_string(file).unwrap());
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let mut targets: Vec<String> = paths_after(&text, "crate::")
            .iter()
            .filter_map(|w| resolve(w))
            .collect();
        // `super::x` from `a/b.rs` is `a::x`; from `a/b/mod.rs` (module `a::b`) also `a::x`.
        let parent: Vec<String> = {
            let mut p: Vec<String> = module.split("::").map(String::from).collect();
            if !is_mod_rs || p.len() > 1 {
                p.pop();
            }
            p
        };
        for w in paths_after(&text, "super::") {
            let mut full = parent.clone();
            full.extend(w);
            targets.extend(resolve(&full));
        }
        for target in targets {
            let target_top = target.split("::").next().unwrap().to_string();
            if target_top != top {
                if layers[&target_top] >= layers[&top] {
                    wrong.push(format!(
                        "{} (layer {}) imports {target} (layer {})",
                        file.strip_prefix(ROOT).unwrap().display(),
                        layers[&top],
                        layers[&target_top]
                    ));
                }
            } else if target != module && !module.starts_with(&format!("{target}::")) {
                // Inside one module: a parent's own items are shared with its children;
                // imports between siblings must not go round in a cycle.
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up or across:\n{}",
        wrong.join("\n")
    );

    // No cycles among the files of one module (depth-first search).
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            return Some(
                path[i..]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([m.to_string()])
                    .collect(),
            );
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
            panic!("an import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_checker_sees_upward_imports_and_cycles() {
    // The parts the test above relies on, on made-up text: a test that cannot fail is a defect.
    let text = code(
        "use crate::state::Snapshot; // crate::admin\nfn f() { super::x::y(); }\n#[cfg(test)]\nmod tests { use crate::app; }",
    );
    assert_eq!(
        paths_after(&text, "crate::"),
        vec![vec!["state".to_string(), "Snapshot".to_string()]]
    );
    assert_eq!(
        paths_after(&text, "super::"),
        vec![vec!["x".to_string(), "y".to_string()]]
    );
    assert!(paths_after("my_crate::a", "crate::").is_empty());
}
