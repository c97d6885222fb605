//! The code's layout, as rules a change cannot quietly break: inside every crate of the
//! workspace, no module imports a module that imports it back, directly or around a circle.
//! (Between crates, Cargo already forbids cycles.)
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A crate's top-level modules and the source of each (a directory module with all its files),
/// its unit tests left out.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let (name, text) = if path.is_dir() {
            let mut text = String::new();
            let mut files: Vec<_> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "rs") && !f.ends_with("tests.rs")) {
                text.push_str(&std::fs::read_to_string(f).unwrap());
            }
            (path.file_name().unwrap().to_string_lossy().into_owned(), text)
        } else if path.extension().is_some_and(|e| e == "rs") {
            (path.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
        } else {
            continue;
        };
        if name == "lib" || name == "main" {
            continue;
        }
        let text = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
        out.insert(name, text);
    }
    out
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

/// Which module each name the crate root re-exports comes from (`pub use keys::{Keyring, ..}`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else { continue };
        let Some((module, items)) = rest.split_once("::") else { continue };
        for item in words(items) {
            out.insert(item.to_owned(), module.to_owned());
        }
    }
    out
}

/// Each module's imports of its siblings, by `crate::x` paths and `use crate::{…}` groups.
fn imports(mods: &BTreeMap<String, String>, reexported: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut deps = BTreeMap::new();
    for (name, text) in mods {
        let mut found = BTreeSet::new();
        let mut note = |word: &str| {
            let target = if mods.contains_key(word) { Some(word.to_owned()) } else { reexported.get(word).cloned() };
            if let Some(t) = target.filter(|t| t != name) {
                found.insert(t);
            }
        };
        for (i, _) in text.match_indices("crate::") {
            let after = &text[i + 7..];
            if let Some(group) = after.strip_prefix('{') {
                words(&group[..group.find('}').unwrap_or(0)]).for_each(&mut note);
            } else if let Some(word) = words(after).next() {
                note(word);
            }
        }
        deps.insert(name.clone(), found);
    }
    deps
}

/// The circles: each set of modules that reach one another, of more than one module.
fn circles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for d in deps.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = deps.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = vec![];
    for (m, r) in &reaches {
        if r.contains(*m) {
            let circle: Vec<String> = r.iter().filter(|o| reaches.get(o).is_some_and(|b| b.contains(*m))).cloned().collect();
            if !out.contains(&circle) {
                out.push(circle);
            }
        }
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    let mut found = vec![];
    let mut crates: Vec<_> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src/lib.rs").exists() || p.join("src/main.rs").exists())
        .collect();
    crates.sort();
    assert!(crates.len() >= 7, "the workspace's crates: {crates:?}");
    for src in crates.iter().map(|c| c.join("src")) {
        let krate = src.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mods = modules(&src);
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
        let deps = imports(&mods, &reexports(&lib));
        checked += mods.len();
        for circle in circles(&deps) {
            let edges: Vec<String> =
                circle.iter().map(|m| format!("{m} -> {:?}", deps[m].iter().filter(|d| circle.contains(d)).collect::<Vec<_>>())).collect();
            found.push(format!("{krate}: {}", edges.join("; ")));
        }
    }
    assert!(checked > 40, "the workspace's modules: {checked}");
    assert!(found.is_empty(), "modules that import each other:\n{}", found.join("\n"));
}

#[test]
fn a_circle_is_found() {
    let deps: BTreeMap<String, BTreeSet<String>> = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(m, d)| (m.to_owned(), d.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(circles(&deps), vec![vec!["a".to_owned(), "b".into(), "c".into()]]);
    let mods: BTreeMap<String, String> =
        [("x", "use crate::{y::Thing, Z};"), ("y", "fn f() { crate::x::g() }"), ("w", "use crate::Keyring;")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
    let re = reexports("pub use y::{Z};\npub use x::Keyring;");
    let deps = imports(&mods, &re);
    assert_eq!(deps["x"], ["y".to_owned()].into());
    assert_eq!(deps["w"], ["x".to_owned()].into());
    assert_eq!(circles(&deps), vec![vec!["x".to_owned(), "y".into()]]);
}
