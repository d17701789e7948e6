//! Documentation that stands on its own: every repository path named in `README.md` and
//! `docs/*.md` exists in the repository.
//!
//! What counts as a path (the rule, no allow-list):
//! - Candidates are inline code spans (`` `config/alerts.toml` ``), link and image targets
//!   (`[x](docs/alerts.md#anchor)`, anchor dropped) and words of running text (split at
//!   whitespace, surrounding brackets, quotes, sentence punctuation and a possessive `'s`
//!   trimmed). Fenced and
//!   indented code blocks are not read: they hold commands, output and examples, not
//!   references.
//! - A candidate is a repository path when it is relative (does not start with `/`, `~`, `$`,
//!   `-` or `#`, holds no `://`), holds no whitespace and none of ``* ? < > { } [ ] | = @ , ; : + ` ``
//!   (globs, placeholders like `<date>`, MQTT filters like `env/json/+`, key = value, ports),
//!   contains a `/` between two non-empty parts, and either its first part is an entry at the
//!   top of the repository (`src/…`, `docs/…`, `.ci/run`) or its last part has a file extension
//!   of the repository's kinds (`.md`, `.rs`, `.toml`, `.html`, `.json`, `.yaml`, `.yml`,
//!   `.png`, `.sh`, `.service`), so `shared/reference/standards.md` counts although `shared`
//!   is not in the repository, while `env/json/WJ-A01` (a topic), `µg/m³` or `online/silent`
//!   do not. A link target that is relative (not a URL, not `#anchor`) is a path whatever it
//!   looks like.
//! - Code spans and words are resolved from the repository root (the docs name paths that
//!   way); link targets from the linking file's directory, as Markdown does.
//!
//! Markdown is parsed with pulldown-cmark (CommonMark), so code spans, fences and links are
//! found as a renderer finds them.

use std::path::{Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const EXTENSIONS: [&str; 10] = [
    "md", "rs", "toml", "html", "json", "yaml", "yml", "png", "sh", "service",
];

/// Top-level entries of the repository (its own files, not build output).
fn top_level() -> Vec<String> {
    std::fs::read_dir(root())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "target" && n != ".git")
        .collect()
}

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Code,
    Link,
    Word,
}

/// The candidate as a repository path, or None when the rule says it is not one.
fn as_path(raw: &str, kind: Kind, top: &[String]) -> Option<String> {
    let mut s = raw;
    if kind == Kind::Link {
        s = s.split('#').next().unwrap_or("");
    }
    if kind == Kind::Word {
        // English possessive: `config/alerts.toml's defaults`.
        s = s
            .strip_suffix("'s")
            .or_else(|| s.strip_suffix("’s"))
            .unwrap_or(s);
        s = s.trim_matches(|c: char| {
            matches!(
                c,
                '(' | ')'
                    | '['
                    | ']'
                    | '"'
                    | '\''
                    | '“'
                    | '”'
                    | '‘'
                    | '’'
                    | '.'
                    | ','
                    | ';'
                    | ':'
                    | '!'
                    | '?'
                    | '*'
                    | '_'
                    | '（'
                    | '）'
                    | '，'
                    | '。'
                    | '；'
                    | '：'
            )
        });
    }
    if s.is_empty()
        || s.contains("://")
        || s.starts_with(['/', '~', '$', '-', '#'])
        || s.chars().any(|c| {
            c.is_whitespace()
                || matches!(
                    c,
                    '*' | '?'
                        | '<'
                        | '>'
                        | '{'
                        | '}'
                        | '['
                        | ']'
                        | '|'
                        | '='
                        | '@'
                        | ','
                        | ';'
                        | ':'
                        | '+'
                        | '`'
                )
        })
    {
        return None;
    }
    if kind == Kind::Link {
        // A relative link target is a path whatever it looks like.
        return Some(s.to_string());
    }
    let trimmed = s.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let first_is_top = top.iter().any(|t| t == parts[0]);
    let last = parts[parts.len() - 1];
    let has_ext = last
        .rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && EXTENSIONS.contains(&ext));
    (first_is_top || has_ext).then(|| s.to_string())
}

/// Every (candidate path, kind, line) of one Markdown text.
fn candidates(text: &str, top: &[String]) -> Vec<(String, Kind, usize)> {
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut in_block = 0usize;
    for (ev, range) in Parser::new(text).into_offset_iter() {
        match ev {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_) | CodeBlockKind::Indented)) => {
                in_block += 1
            }
            Event::End(TagEnd::CodeBlock) => in_block = in_block.saturating_sub(1),
            _ if in_block > 0 => {}
            Event::Code(code) => {
                if let Some(p) = as_path(&code, Kind::Code, top) {
                    out.push((p, Kind::Code, line_of(range.start)));
                }
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                if let Some(p) = as_path(&dest_url, Kind::Link, top) {
                    out.push((p, Kind::Link, line_of(range.start)));
                }
            }
            Event::Text(t) => {
                for w in t.split_whitespace() {
                    if let Some(p) = as_path(w, Kind::Word, top) {
                        out.push((p, Kind::Word, line_of(range.start)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn docs() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut d: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    d.sort();
    files.extend(d);
    files
}

fn exists(file: &Path, path: &str, kind: Kind) -> bool {
    let base = match kind {
        Kind::Link => file.parent().unwrap_or(Path::new(".")).to_path_buf(),
        Kind::Code | Kind::Word => root(),
    };
    base.join(path).exists()
}

#[test]
fn every_repository_path_named_in_the_docs_exists() {
    let top = top_level();
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in docs() {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        for (path, kind, line) in candidates(&text, &top) {
            checked += 1;
            if !exists(&file, &path, kind) {
                missing.push(format!("{rel}:{line}: {path} ({kind:?})"));
            }
        }
    }
    // The docs do name paths: a rule that matched nothing would prove nothing.
    assert!(checked > 50, "only {checked} paths found");
    assert!(
        missing.is_empty(),
        "paths named in the docs that are not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_rule_on_examples() {
    let top: Vec<String> = ["src", "docs", "config", ".ci", "README.md"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let yes = |s: &str, k: Kind| as_path(s, k, &top).is_some();
    // Paths.
    assert!(yes("config/alerts.toml", Kind::Code));
    assert!(yes("src/api/status.html", Kind::Code));
    assert!(yes("docs/x.md", Kind::Word));
    assert!(yes("(docs/x.md).", Kind::Word));
    assert_eq!(
        as_path("config/alerts.toml's", Kind::Word, &top).as_deref(),
        Some("config/alerts.toml")
    );
    assert!(yes(".ci/run", Kind::Code));
    assert!(yes("tests/common/", Kind::Code) == top.contains(&"tests".to_string()));
    assert!(yes("shared/reference/standards.md", Kind::Code));
    assert!(yes("docs/alerts.md#notifiers", Kind::Link));
    // Not paths.
    for s in [
        "env/json/+",
        "env/json/WJ-A01",
        "data/envmon-<date>.lp",
        "/etc/envmon/envmon.toml",
        "https://example.org/a.md",
        "µg/m³",
        "online/silent",
        "http.listen",
        "README.md",
        "mqtt.port = 1884",
        "src/x.rs:12",
        "~/x/y.md",
        "$HOME/y.md",
    ] {
        assert!(!yes(s, Kind::Code), "{s}");
    }
    assert!(!yes("#anchor", Kind::Link));
    // Fenced blocks are not read; spans, links and words are.
    let md = "See `config/a.toml` and [b](b.md), docs/c.md.\n\n```sh\ncat src/nothing.rs\n```\n";
    let c = candidates(md, &top);
    let names: Vec<&str> = c.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(names, ["config/a.toml", "b.md", "docs/c.md"], "{c:?}");
}
