//! The direction of dependencies between ferry's modules, read from `use crate::` and
//! `crate::…` paths in the source (tests aside). docs/ARCHITECTURE.md draws it:
//!
//! `cli` → `command` → `run` → {`scan`, `package`, `import`, `staging`, `crypto`,
//! `report`, `state`} → {`plan`, `failure`, `exit`, `shown`, `clock`, `log`}
//!
//! A module may use any module in a lower layer; modules of one layer may use each other
//! as long as no two use each other, directly or around a loop. Inside a module, its
//! files (siblings) form no loop either.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module's layer: higher uses lower.
const LAYERS: &[(&str, u32)] = &[
    ("cli", 4),
    ("fuzzing", 4),
    ("command", 3),
    ("run", 2),
    ("scan", 1),
    ("package", 1),
    ("import", 1),
    ("staging", 1),
    ("crypto", 1),
    ("report", 1),
    ("state", 1),
    ("plan", 0),
    ("failure", 0),
    ("exit", 0),
    ("shown", 0),
    ("clock", 0),
    ("log", 0),
    ("failpoint", 0),
    ("latency", 0),
];

fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module `{module}` has no layer in tests/integration/layers.rs"))
}

/// Every source file but the crate root, the binary and files of tests only.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/run/round.rs` → `["run", "round"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without its unit tests (by convention, at its end).
fn code(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The names that follow `prefix` in `text`: `crate::` → `run`, `state`, …
fn names_after<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            out.push(&rest[..end]);
        }
    }
    out
}

/// A loop in `edges`, if there is one.
fn find_loop(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn dependencies_go_one_way_and_make_no_loops() {
    let src = crate::harness::repo().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if matches!(module[0].as_str(), "lib" | "main") {
            continue;
        }
        let text = code(file);
        let from = &module[0];
        for to in names_after(&text, "crate::") {
            if to == from {
                continue;
            }
            top.entry(from.clone()).or_default().insert(to.to_string());
            if layer(to) > layer(from) {
                wrong.push(format!(
                    "{} uses crate::{to}, a layer above it",
                    file.display()
                ));
            }
        }
        // Files of one module: `super::x` (from a file) or `crate::m::x`, where x is a
        // sibling file; a parent using its children is how Rust modules are built.
        if module.len() >= 2 {
            let parent = module[..module.len() - 1].join("::");
            let own = module.join("::");
            let mut uses: Vec<&str> = names_after(&text, "super::");
            let qualified = format!("crate::{parent}::");
            uses.extend(names_after(&text, &qualified));
            for to in uses {
                let sibling = src.join(parent.replace("::", "/")).join(to);
                let exists =
                    sibling.with_extension("rs").exists() || sibling.join("mod.rs").exists();
                if exists && module.last().is_some_and(|m| m != to) {
                    siblings
                        .entry(own.clone())
                        .or_default()
                        .insert(format!("{parent}::{to}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    if let Some(cycle) = find_loop(&top) {
        panic!("modules use each other in a loop: {}", cycle.join(" → "));
    }
    if let Some(cycle) = find_loop(&siblings) {
        panic!(
            "files of one module use each other in a loop: {}",
            cycle.join(" → ")
        );
    }
    // The test reads what it should: the run uses the layers below it.
    assert!(top["run"].contains("staging") && top["command"].contains("run"));
}
