//! The dependency rule, checked on the source: adapters (`http`, `server`, the CLI) → `app`
//! → domain (`messaging`, `identity`, `policy`, `billing`, `delivery`, `data`, `network`, `monitor`) →
//! `store`, with `clock` and `config` below everything. Nothing imports upward, adapters reach
//! the store only through the use cases, and the modules form no cycle. SQLite stays inside
//! `store/`, and encryption contexts are spelled only in the sealing module.
//!
//! Test code counts too: a `#[cfg(test)]` module obeys the rule of the module it sits in.

// A test reports failure by panicking; helpers outside `#[test]` functions do the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of each top-level module; higher layers may import lower ones.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "clock" | "config" | "whole_number" => 0,
        "store" => 1,
        "messaging" | "identity" | "policy" | "billing" | "delivery" | "data" | "network"
        | "monitor" => 2,
        "app" => 3,
        "http" | "server" | "cli" => 4,
        _ => return None,
    })
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("source folder")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to; the binary's files (`main.rs`, `cli_*.rs`) are
/// the CLI adapter. `None` for the crate root.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src_dir()).expect("under src");
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    let name = first.trim_end_matches(".rs");
    match name {
        "lib" => None,
        "main" => Some("cli".into()),
        n if n.starts_with("cli_") => Some("cli".into()),
        n => Some(n.to_owned()),
    }
}

/// Every top-level module a file names through `crate::X` (or `rampart::X` in the binary),
/// in `use` lines and in paths alike. Comments are skipped.
fn imports(text: &str, in_binary: bool) -> BTreeSet<String> {
    let prefix = if in_binary { "rampart::" } else { "crate::" };
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Module → the modules it imports, with one file that does so for each edge.
fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let in_binary = module == "cli";
        let edges = graph.entry(module.clone()).or_default();
        for target in imports(&text, in_binary) {
            if target != module {
                edges.entry(target).or_insert_with(|| file.clone());
            }
        }
    }
    graph
}

#[test]
fn every_module_belongs_to_a_layer() {
    for module in graph().keys() {
        assert!(
            layer(module).is_some(),
            "src/{module} has no layer: add it to `layer` in tests/architecture.rs and to ARCHITECTURE.md"
        );
    }
}

type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

/// The edges of `graph` that break the layer rule.
fn rule_breaks(graph: &Graph) -> Vec<String> {
    let mut broken = Vec::new();
    for (from, edges) in graph {
        let Some(from_layer) = layer(from) else {
            continue;
        };
        for (to, file) in edges {
            let Some(to_layer) = layer(to) else {
                broken.push(format!(
                    "{from} -> {to} (unknown module) in {}",
                    file.display()
                ));
                continue;
            };
            // Within the foundation, the domain and the adapters, modules may use each other (the
            // cycle test keeps that acyclic); the store and the use cases are one module each.
            let same_layer_ok = from_layer == to_layer && from_layer != 1 && from_layer != 3;
            let upward = to_layer > from_layer || (to_layer == from_layer && !same_layer_ok);
            let adapter_to_store = from_layer == 4 && to == "store";
            if upward || adapter_to_store {
                broken.push(format!("{from} -> {to} in {}", file.display()));
            }
        }
    }
    broken
}

/// The cycles of `graph`, each as `a -> b -> a`.
fn cycles(graph: &Graph) -> Vec<String> {
    // Depth-first search; an edge back into the current path closes a cycle.
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            cycles.push(cycle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            visit(next, graph, path, done, cycles);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn no_module_imports_a_layer_above_it_and_adapters_reach_the_store_only_through_use_cases() {
    let broken = rule_breaks(&graph());
    assert!(
        broken.is_empty(),
        "imports that break the dependency rule:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_modules_form_no_cycle() {
    let found = cycles(&graph());
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_rules_catch_upward_imports_adapters_on_the_store_and_cycles() {
    let edge = |from: &str, to: &str| (from.to_owned(), to.to_owned());
    let synthetic = |edges: &[(String, String)]| {
        let mut graph = Graph::new();
        for (from, to) in edges {
            graph
                .entry(from.clone())
                .or_default()
                .insert(to.clone(), PathBuf::from("x.rs"));
        }
        graph
    };
    let bad = synthetic(&[
        edge("store", "messaging"),
        edge("delivery", "app"),
        edge("http", "store"),
        edge("config", "delivery"),
        edge("app", "http"),
    ]);
    assert_eq!(rule_breaks(&bad).len(), 5, "{:?}", rule_breaks(&bad));
    let good = synthetic(&[
        edge("http", "app"),
        edge("app", "store"),
        edge("delivery", "messaging"),
        edge("server", "http"),
    ]);
    assert!(rule_breaks(&good).is_empty());
    assert!(cycles(&good).is_empty());
    let cyclic = synthetic(&[edge("delivery", "identity"), edge("identity", "delivery")]);
    assert_eq!(cycles(&cyclic).len(), 1);
}

#[test]
fn sqlite_is_used_only_inside_the_store() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let store = src_dir().join("store");
    let leaks: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&store))
        .filter(|f| {
            std::fs::read_to_string(f)
                .expect("readable")
                .contains("rusqlite")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(leaks.is_empty(), "rusqlite outside store/: {leaks:?}");
}

#[test]
fn encryption_contexts_are_built_only_in_the_sealing_module() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    // The backup file format seals whole files under keys of its own (no field contexts).
    let allowed = [
        src_dir().join("data").join("sealing.rs"),
        src_dir().join("data").join("keyring.rs"),
        src_dir().join("data").join("keyring_tests.rs"),
        src_dir().join("data").join("backup.rs"),
    ];
    // Raw encryption calls, and the context spellings of every release.
    let patterns = [
        ".encrypt(",
        ".decrypt(",
        "decrypt_string(",
        "\"to:",
        "\"body:",
        "inbound-from:",
        "inbound-body:",
        "connector-password:",
    ];
    let mut leaks = Vec::new();
    for file in files.iter().filter(|f| !allowed.contains(f)) {
        let text = std::fs::read_to_string(file).expect("readable");
        for pattern in patterns {
            if text.contains(pattern) {
                leaks.push(format!("{} contains {pattern}", file.display()));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "encryption outside data/sealing.rs:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn the_checker_sees_imports_in_use_lines_and_paths_but_not_in_comments() {
    let text = "use crate::store::Tx;\nlet x = crate::app::App::open();\n// crate::http is mentioned\nfoo_crate::bar";
    let found = imports(text, false);
    assert_eq!(
        found,
        ["app", "store"].into_iter().map(String::from).collect()
    );
    assert_eq!(
        imports("use rampart::app::App;", true),
        ["app".to_owned()].into()
    );
}
