//! The layers, held by a test (docs/architecture.md, "What each folder may import"): the
//! core imports no driver, the two drivers never import each other, and no two top-level
//! modules import each other, directly or around a loop. Test code (`tests.rs` files and
//! what follows `#[cfg(test)]`) is not counted: a test may pin two layers against each
//! other.
#![allow(clippy::disallowed_methods)] // reads the source tree

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure core: everything a driver builds on.
const CORE: &[&str] = &[
    "time", "rng", "diag", "record", "provider", "fault", "traffic", "gateway", "scenario", "analysis", "profiles",
];
/// The drivers and what sits on them.
const DRIVERS: &[&str] = &["sim", "live", "run", "suite", "report", "cli"];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`src/gateway/breaker.rs` → `gateway`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let m = first.trim_end_matches(".rs").to_string();
    (m != "lib" && m != "main").then_some(m)
}

/// The non-test code of a file.
fn code_of(file: &Path) -> String {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Every top-level module named as `crate::NAME` in `code` (doc comments included: a doc
/// link to a driver is an arrow too).
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// module → (module it uses → the files that do).
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in files {
        let Some(m) = module_of(&src, &f) else { continue };
        let entry = g.entry(m.clone()).or_default();
        for u in uses(&code_of(&f)) {
            if u != m {
                entry
                    .entry(u)
                    .or_default()
                    .insert(f.strip_prefix(&src).unwrap().display().to_string());
            }
        }
    }
    g
}

#[test]
fn the_core_imports_no_driver() {
    let g = graph();
    let mut bad = Vec::new();
    for (m, used) in &g {
        if !CORE.contains(&m.as_str()) {
            continue;
        }
        for (u, files) in used {
            if DRIVERS.contains(&u.as_str()) {
                bad.push(format!("{m} → {u} (in {files:?})"));
            }
        }
    }
    assert!(bad.is_empty(), "core modules import drivers:\n  {}", bad.join("\n  "));
    for m in g.keys() {
        assert!(
            CORE.contains(&m.as_str()) || DRIVERS.contains(&m.as_str()),
            "src/{m}: name its layer in tests/layers.rs (and docs/architecture.md)"
        );
    }
}

#[test]
fn sim_and_live_are_peers() {
    let g = graph();
    for (a, b) in [("sim", "live"), ("live", "sim")] {
        let files = g.get(a).and_then(|u| u.get(b));
        assert!(
            files.is_none(),
            "{a} imports {b} in {files:?}: the two drivers are peers"
        );
    }
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let g = graph();
    // depth-first search for a back edge
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let i = path.iter().position(|x| *x == n).unwrap();
                let mut c: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n, 1);
        path.push(n);
        for u in g.get(n).map(|u| u.keys()).into_iter().flatten() {
            if g.contains_key(u) {
                if let Some(c) = visit(u, g, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if let Some(c) = visit(n, &g, &mut state, &mut Vec::new()) {
            let arrows: Vec<String> = c
                .windows(2)
                .map(|w| format!("{} → {} in {:?}", w[0], w[1], g[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle: {}\n  {}", c.join(" → "), arrows.join("\n  "));
        }
    }
}

#[test]
fn the_checker_sees_an_arrow_and_skips_test_code() {
    let u = uses("use crate::live::net;\n/// see [`crate::sim::run`]\nfn f() { crate::time::now_is_not_here(); }");
    assert_eq!(u.into_iter().collect::<Vec<_>>(), ["live", "sim", "time"]);
    let dir = std::env::temp_dir().join(format!("chaosgate-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("x.rs");
    std::fs::write(&f, "use crate::fault;\n#[cfg(test)]\nmod tests { use crate::live; }\n").unwrap();
    assert_eq!(uses(&code_of(&f)).into_iter().collect::<Vec<_>>(), ["fault"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
