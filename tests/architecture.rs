//! The module-dependency listing in docs/architecture.md matches the code,
//! the modules import each other in one direction only (no circle), and no
//! function is over 120 lines nor any file over 1,000 (outside tests).
//!
//! The listing is rebuilt from every `crate::…` path in `src/` outside test
//! code: `src/openai/` and `src/server/` count as one module each; a file of
//! another directory (`src/gemini/fetch.rs`) stands alone when code outside
//! that directory names it, else it belongs to its directory's module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The file's code without test modules, test-only items and comments; and
/// the files it declares as test-only (`#[cfg(test)] mod x;`).
fn code_of(text: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut code = String::new();
    let mut test_files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == "#[cfg(test)]" && i + 1 < lines.len() {
            let next = lines[i + 1];
            let trimmed = next.trim();
            if trimmed.ends_with(';') {
                if let Some(name) = trimmed
                    .trim_end_matches(';')
                    .rsplit(' ')
                    .next()
                    .filter(|_| trimmed.contains("mod "))
                {
                    test_files.push(name.to_string());
                }
                i += 2;
                continue;
            }
            // Skip the item up to its closing brace at the same indentation.
            let indent = &next[..next.len() - next.trim_start().len()];
            let close = format!("{indent}}}");
            i += 1;
            while i < lines.len() && lines[i].trim_end() != close {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !line.trim_start().starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
        i += 1;
    }
    (code, test_files)
}

/// Every module named after `crate::` in `code` (macros like `crate::info!`
/// are the log's; `crate::{a, b}` names several).
fn named_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name = item.trim().split([':', ' ']).next().unwrap_or("");
                if !name.is_empty() {
                    out.push(name.to_string());
                }
            }
            continue;
        }
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let first = ident(rest);
        let after = &rest[first.len()..];
        if first.is_empty() || after.starts_with('!') || first == "VERSION" {
            continue;
        }
        let second = after.strip_prefix("::").map(ident).unwrap_or_default();
        out.push(if second.is_empty() {
            first
        } else {
            format!("{first}::{second}")
        });
    }
    out
}

fn code_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut code: Vec<(Vec<String>, String)> = Vec::new();
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    for f in &files {
        let (c, tests) = code_of(&fs::read_to_string(f).expect("read"));
        let dir = f.parent().expect("dir");
        for t in tests {
            test_only.insert(dir.join(format!("{t}.rs")));
            test_only.insert(dir.join(&t).join("mod.rs"));
        }
        let rel: Vec<String> = f
            .strip_prefix(&src)
            .expect("under src")
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        code.push((rel, c));
    }
    // A directory's file stands alone when code outside the directory names it.
    let standalone = |rel: &[String]| -> Option<String> {
        if rel.len() != 2 || rel[1] == "mod" || ["openai", "server"].contains(&rel[0].as_str()) {
            return None;
        }
        let name = format!("{}::{}", rel[0], rel[1]);
        code.iter()
            .any(|(other, c)| other[0] != rel[0] && named_modules(c).contains(&name))
            .then_some(name)
    };
    let mut graph = Graph::new();
    for (f, (rel, c)) in files.iter().zip(&code) {
        if test_only.contains(f) || ["lib", "main"].contains(&rel[0].as_str()) {
            continue;
        }
        let node = standalone(rel).unwrap_or_else(|| rel[0].clone());
        let deps = graph.entry(node.clone()).or_default();
        for m in named_modules(c) {
            let (top, _) = m.split_once("::").unwrap_or((&m, ""));
            // `gemini::fetch` where it stands alone, else the top module.
            let target = if m.contains("::")
                && code.iter().any(|(r, _)| {
                    r.len() == 2 && format!("{}::{}", r[0], r[1]) == m && standalone(r).is_some()
                }) {
                m.clone()
            } else {
                top.to_string()
            };
            if target != node && target != node.split("::").next().unwrap_or("") {
                deps.insert(target);
            }
        }
    }
    graph
}

fn listing(g: &Graph) -> String {
    g.iter()
        .map(|(m, deps)| {
            let d: Vec<&str> = deps.iter().map(String::as_str).collect();
            format!("{m} -> {}", d.join(", ")).trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn doc_listing() -> String {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    let block = doc
        .split("<!-- deps:begin -->")
        .nth(1)
        .and_then(|s| s.split("<!-- deps:end -->").next())
        .expect("the deps markers");
    block
        .lines()
        .map(str::trim_end)
        .filter(|l| l.contains("->"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_documented_listing_matches_the_code() {
    let code = listing(&code_graph());
    assert_eq!(
        doc_listing(),
        code,
        "docs/architecture.md's module listing differs from the code; the code says:\n{code}"
    );
}

#[test]
fn no_module_imports_in_a_circle() {
    let g = code_graph();
    // Depth-first search for a back edge.
    fn visit(g: &Graph, m: &str, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import circle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            visit(g, d, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(&g, m, &mut Vec::new(), &mut done);
    }
    // Nothing below imports the layers above it.
    for low in [
        "app",
        "error",
        "request",
        "answer",
        "auth",
        "scheduler",
        "keys",
        "upstream",
    ] {
        for high in ["router", "handlers", "gemini", "admin", "server"] {
            assert!(
                !g.get(low).is_some_and(|d| d.contains(high)),
                "{low} imports {high}"
            );
        }
    }
}

/// Lines of `text` before its first `#[cfg(test)]` (the code, not its tests).
fn non_test_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .collect()
}

/// Every function of the gateway and the fake outside tests is at most 120
/// lines long, and every file at most 1,000 lines before its tests (the
/// habits docs/architecture.md names; a long unit is split where it is
/// already marked).
#[test]
fn no_function_over_120_lines_and_no_file_over_1000() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("crates/fake-gemini/src"), &mut files);
    let mut long = Vec::new();
    let mut functions = 0;
    for f in files {
        let name = f.strip_prefix(root).unwrap().display().to_string();
        if name.ends_with("/tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        let lines = non_test_lines(&text);
        if lines.len() > 1000 {
            long.push(format!("{name}: {} lines", lines.len()));
        }
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let t = l.trim_start();
            let is_fn = t.starts_with("fn ")
                || t.starts_with("pub fn ")
                || t.starts_with("async fn ")
                || t.starts_with("pub async fn ")
                || t.starts_with("pub(crate) fn ")
                || t.starts_with("pub(crate) async fn ")
                || t.starts_with("pub(super) fn ")
                || t.starts_with("const fn ")
                || t.starts_with("pub const fn ");
            if is_fn && !l.trim_end().ends_with(';') {
                let indent = &l[..l.len() - t.len()];
                let close = format!("{indent}}}");
                let end = (i..lines.len())
                    .find(|&j| lines[j].trim_end() == close)
                    .unwrap_or(lines.len() - 1);
                functions += 1;
                if end - i + 1 > 120 {
                    long.push(format!("{name}:{}: {} lines: {}", i + 1, end - i + 1, t));
                }
                i = end;
            }
            i += 1;
        }
    }
    assert!(functions > 500, "the scan found only {functions} functions");
    assert!(long.is_empty(), "too long:\n{}", long.join("\n"));
}
