//! The module graph of the library has no cycle, and the bottom layers import nothing above
//! them (docs/architecture.md, "Layers").
//!
//! How: every `crate::<module>` path in `src/` (outside comments and `#[cfg(test)]` code) is an
//! edge from the top-level module of the file to `<module>`; the graph is then searched for a
//! cycle (depth-first, three colours). This reads the source text rather than rustc's output, so
//! an import written as `super::super::x` across modules would escape it; `src/` writes
//! cross-module paths as `crate::…` only (checked below).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// The code of a file without comment lines and without its `#[cfg(test)]` tail.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Top-level module → the top-level modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = first.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = code(&std::fs::read_to_string(&f).unwrap());
        let deps = g.entry(top.clone()).or_default();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let mut names = Vec::new();
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    names.push(ident_at(part.trim()).to_string());
                }
            } else {
                names.push(ident_at(rest).to_string());
            }
            for n in names {
                if !n.is_empty() && n != top && n != "self" {
                    deps.insert(n);
                }
            }
        }
        assert!(
            !text.contains("super::super::"),
            "{}: cross-module paths are written crate::…",
            rel.display()
        );
    }
    g
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum C {
        White,
        Grey,
        Black,
    }
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, C>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        colour.insert(n.to_string(), C::Grey);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match colour.get(m.as_str()).copied().unwrap_or(C::White) {
                C::Grey => {
                    let start = path.iter().position(|p| p == m).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                C::White => {
                    if let Some(c) = visit(m, g, colour, path) {
                        return Some(c);
                    }
                }
                C::Black => {}
            }
        }
        path.pop();
        colour.insert(n.to_string(), C::Black);
        None
    }
    let mut colour = BTreeMap::new();
    for n in g.keys() {
        if colour.get(n.as_str()).copied().unwrap_or(C::White) == C::White {
            if let Some(c) = visit(n, g, &mut colour, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}

#[test]
fn module_graph_has_no_cycle() {
    let g = graph();
    assert!(g.len() > 10, "read the modules: {g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle: {}\ngraph: {g:#?}", c.join(" → "));
    }
}

#[test]
fn bottom_layers_import_nothing_above_them() {
    let g = graph();
    let allowed: &[(&str, &[&str])] = &[
        ("model", &[]),
        ("num", &[]),
        ("standards", &["model", "num"]),
        ("registry", &["model"]),
        ("config", &["model", "standards"]),
        ("telemetry", &["config"]),
        ("decode", &["config", "model", "registry"]),
        ("normalise", &["model", "num", "registry"]),
    ];
    for (m, ok) in allowed {
        let deps = g.get(*m).unwrap_or_else(|| panic!("module {m} not found"));
        let extra: Vec<_> = deps.iter().filter(|d| !ok.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{m} imports {extra:?}; allowed: {ok:?}");
    }
    for (m, deps) in &g {
        for top in ["cli", "app", "demo"] {
            let ok = match top {
                "app" => ["cli", "demo"].contains(&m.as_str()),
                "demo" => false,
                _ => false,
            };
            assert!(
                !deps.contains(top) || ok,
                "{m} imports {top}: only main.rs (and cli/demo for app) may"
            );
        }
    }
}
