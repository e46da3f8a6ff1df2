//! The layer order of `src/` (README "Architecture"): each layer uses only the ones below it.
//!
//! `format` < `dataset` < `compute` < `store` < `ops` < `cli`, `tui` (`cli` and `tui` do not use
//! each other). Shared infrastructure (`error`, `jobs`, `tuning`, `util`, `sigbus`) may be used by
//! any layer and uses no layer above `format`. Unit-test modules (`#[cfg(test)] mod ...`) may reach
//! anywhere. Also: no function longer than 150 lines, and one overview cache.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LAYERS: [(&str, u8); 7] =
    [("format", 0), ("dataset", 1), ("compute", 2), ("store", 3), ("ops", 4), ("cli", 5), ("tui", 5)];
const SHARED: [&str; 5] = ["error", "jobs", "tuning", "util", "sigbus"];
const MAX_FN_LINES: usize = 150;

fn rank(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments, string contents and the unit-test module.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        // blank out string literals (simple: no escaped quotes across lines)
        let mut in_str = false;
        let mut prev = ' ';
        for ch in line.chars() {
            if ch == '"' && prev != '\\' {
                in_str = !in_str;
                out.push('"');
            } else if !in_str {
                out.push(ch);
            }
            prev = ch;
        }
        out.push('\n');
    }
    match out.find("#[cfg(test)]\nmod ") {
        Some(i) => out[..i].to_string(),
        None => out,
    }
}

/// Top-level modules named through `crate::X` or `use crate::{X, ...}`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + 7..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.insert(name);
        }
        rest = after;
    }
    found
}

/// Module of a file: `src/format/emd.rs` -> "format", `src/util.rs` -> "util".
fn module_of(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

fn sources() -> (PathBuf, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    (root, files)
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let (root, files) = sources();
    let mut bad = Vec::new();
    for p in &files {
        let me = module_of(&root, p);
        let code = code_of(&std::fs::read_to_string(p).unwrap());
        for u in uses(&code) {
            let upward = match (rank(&me), rank(&u)) {
                (Some(a), Some(b)) => b > a || (a == b && u != me),
                // shared infrastructure stays below every layer
                (None, Some(_)) if SHARED.contains(&me.as_str()) => true,
                _ => false,
            };
            if upward {
                bad.push(format!("{} uses crate::{u} ({me} may not depend on {u})", p.display()));
            }
        }
    }
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    // a test that cannot fail is a defect: the checker must flag these
    let code = code_of("use crate::{error::Error, ops};\nfn f() { crate::tui::run(); }\n// crate::cli in a comment\n");
    let u = uses(&code);
    assert!(u.contains("ops") && u.contains("tui") && u.contains("error"), "{u:?}");
    assert!(!u.contains("cli"), "comments are ignored: {u:?}");
    let t = code_of("fn a() {}\n#[cfg(test)]\nmod tests {\n use crate::tui;\n}\n");
    assert!(uses(&t).is_empty(), "unit-test modules may reach anywhere");
}

/// Lengths of `fn` items (from the signature line to the closing brace at the same depth).
fn fn_lengths(code: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let t = t.trim_start_matches("pub(crate) ").trim_start_matches("pub(super) ").trim_start_matches("pub ");
        let t = t.trim_start_matches("const ").trim_start_matches("unsafe ").trim_start_matches("extern \"\" ");
        let Some(rest) = t.strip_prefix("fn ") else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let (mut depth, mut started) = (0i64, false);
        for (j, lj) in lines.iter().enumerate().skip(i) {
            for ch in lj.chars() {
                match ch {
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if started && depth == 0 {
                out.push((j - i + 1, i + 1, name.clone()));
                break;
            }
            if !started && lj.trim_end().ends_with(';') {
                break;
            }
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_150_lines() {
    let (_, files) = sources();
    let mut long = Vec::new();
    for p in &files {
        let text = std::fs::read_to_string(p).unwrap();
        // character literals like '{' would upset the brace count
        let code = code_of(&text).replace("'{'", "' '").replace("'}'", "' '");
        for (n, line, name) in fn_lengths(&code) {
            if n > MAX_FN_LINES {
                long.push(format!("{}:{line} {name} is {n} lines", p.display()));
            }
        }
    }
    assert!(long.is_empty(), "functions over {MAX_FN_LINES} lines:\n{}", long.join("\n"));
    let demo = fn_lengths(&format!("fn big() {{\n{}}}\n", "x;\n".repeat(200)));
    assert_eq!(demo[0].0, 202, "the counter measures functions");
}

#[test]
fn one_overview_cache() {
    let (root, _) = sources();
    assert!(!root.join("tui/ovcache.rs").exists(), "the TUI must use store::ovcache");
    assert!(root.join("store/ovcache.rs").is_file());
}
