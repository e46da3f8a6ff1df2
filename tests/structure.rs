//! The layer order of `src/` (README "Architecture"): each layer uses only the ones below it.
//!
//! `format` < `dataset` < `compute` < `store` < `ops` < `cli`, `tui` (`cli` and `tui` do not use
//! each other). Shared infrastructure (`error`, `jobs`, `tuning`, `util`, `sigbus`) may be used by
//! any layer and uses no layer above `format`. Unit-test modules (`#[cfg(test)] mod ...`) may reach
//! anywhere. Also: no function longer than 100 lines, no import circle between files (an item
//! re-exported by a `mod.rs` counts as the file that defines it), and one overview cache.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [(&str, u8); 7] =
    [("format", 0), ("dataset", 1), ("compute", 2), ("store", 3), ("ops", 4), ("cli", 5), ("tui", 5)];
const SHARED: [&str; 5] = ["error", "jobs", "tuning", "util", "sigbus"];
const MAX_FN_LINES: usize = 100;

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
fn no_function_is_longer_than_100_lines() {
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

/// The source with comments, string and char literals blanked (a small scanner, as
/// `../shared/tools/structure.py`) and the unit-test module cut off.
fn stripped(text: &str) -> String {
    let b = text.as_bytes();
    let (mut out, mut i) = (String::with_capacity(text.len()), 0);
    while i < b.len() {
        let c = b[i];
        let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if text[i..].starts_with("//") {
            i = text[i..].find('\n').map_or(b.len(), |j| i + j);
        } else if text[i..].starts_with("/*") {
            i = text[i + 2..].find("*/").map_or(b.len(), |j| i + 2 + j + 2);
        } else if c == b'r' && !prev_ident && raw_hashes(&text[i..]).is_some() {
            let h = raw_hashes(&text[i..]).unwrap();
            let close = format!("\"{}", "#".repeat(h));
            out.push_str("\"\"");
            i = text[i + h + 2..].find(&close).map_or(b.len(), |j| i + h + 2 + j + close.len());
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if c == b'\'' && char_literal_len(&text[i..]).is_some() {
            out.push_str("''");
            i += char_literal_len(&text[i..]).unwrap();
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    let cut = out.find("#[cfg(test)]").and_then(|k| {
        let rest = out[k + 12..].trim_start();
        rest.starts_with("mod ").then_some(k)
    });
    match cut {
        Some(k) => out[..k].to_string(),
        None => out,
    }
}

/// `r"`, `r#"`, ...: the number of hashes of a raw string starting here.
fn raw_hashes(s: &str) -> Option<usize> {
    let h = s[1..].bytes().take_while(|&c| c == b'#').count();
    (s.as_bytes().get(1 + h) == Some(&b'"')).then_some(h)
}

/// Length of a char literal starting here (`'a'`, `'\n'`, `'\u{1F600}'`), None for a lifetime.
fn char_literal_len(s: &str) -> Option<usize> {
    let mut it = s.char_indices().skip(1);
    let (_, c) = it.next()?;
    if c == '\\' {
        let (_, e) = it.next()?;
        if e == 'u' {
            let end = s.find('}')?;
            return (s.as_bytes().get(end + 1) == Some(&b'\'') && end < 14).then_some(end + 2);
        }
        let (k, q) = it.next()?;
        return (q == '\'').then_some(k + 1);
    }
    if c == '\'' || c == '\n' {
        return None;
    }
    let (k, q) = it.next()?;
    (q == '\'').then_some(k + 1)
}

/// Module path of a file under `src/`: `src/tui/app/state.rs` -> [tui, app, state];
/// `mod.rs`, `lib.rs` and `main.rs` name their folder.
fn module_path(root: &Path, p: &Path) -> Vec<String> {
    let rel = p.strip_prefix(root).unwrap().with_extension("");
    let mut v: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
    if matches!(v.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        v.pop();
    }
    v
}

/// The file of the longest prefix of a module path, and the rest of the path.
fn mod_file(root: &Path, segs: &[String]) -> Option<(PathBuf, Vec<String>)> {
    (1..=segs.len()).rev().find_map(|k| {
        let base = segs[..k].iter().fold(root.to_path_buf(), |p, s| p.join(s));
        [base.with_extension("rs"), base.join("mod.rs")]
            .into_iter()
            .find(|c| c.is_file())
            .map(|c| (c, segs[k..].to_vec()))
    })
}

/// Paths inside a use tree: `a::{b, c::{d, e}}` -> [a b], [a c d], [a c e].
fn expand(prefix: &[String], body: &str) -> Vec<Vec<String>> {
    let (mut out, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for ch in body.chars().chain(std::iter::once(',')) {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            let t = cur.trim();
            if let Some(open) = t.find('{').filter(|_| t.ends_with('}')) {
                let head: Vec<String> = t[..open].split("::").filter(|x| !x.is_empty()).map(String::from).collect();
                out.extend(expand(&[prefix, &head[..]].concat(), &t[open + 1..t.len() - 1]));
            } else if !t.is_empty() {
                let name = t.split(" as ").next().unwrap();
                let segs = name.split("::").filter(|x| !x.is_empty()).map(String::from);
                out.push(prefix.iter().cloned().chain(segs).collect());
            }
            cur.clear();
        } else {
            cur.push(ch);
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `crate::`/`super::`/`self::` path a file names: in `use` trees and inline.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let ok = i == 0 || !is_ident(rest[..i].chars().last().unwrap());
        let tail = &rest[i + 4..];
        let end = tail.find(';').unwrap_or(tail.len());
        let tree = tail[..end].trim();
        if ok && ["crate::", "super::", "self::"].iter().any(|p| tree.starts_with(p)) {
            match tree.find('{') {
                Some(open) if tree.ends_with('}') => {
                    let head: Vec<String> =
                        tree[..open].split("::").filter(|x| !x.is_empty()).map(String::from).collect();
                    out.extend(expand(&head, &tree[open + 1..tree.len() - 1]));
                }
                _ => out.push(tree.split(" as ").next().unwrap().split("::").map(String::from).collect()),
            }
        }
        rest = tail;
    }
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start).map(|k| k + from) {
            from = i + start.len();
            if i > 0 && (is_ident(code[..i].chars().last().unwrap()) || code[..i].ends_with("::")) {
                continue;
            }
            let path: String = code[i..].chars().take_while(|&c| is_ident(c) || c == ':').collect();
            if path.ends_with("::") {
                continue; // the head of a use tree (`crate::m::{a, b}`): its paths are read above
            }
            let segs: Vec<String> = path.split("::").filter(|x| !x.is_empty()).map(String::from).collect();
            if segs.len() > 1 {
                out.push(segs);
            }
        }
    }
    out
}

/// Public items a file defines (`pub struct X`, `pub(crate) fn y`, ...).
fn defined_items(code: &str) -> BTreeSet<String> {
    const KINDS: [&str; 9] = ["struct ", "enum ", "fn ", "trait ", "type ", "const ", "static ", "mod ", "unsafe fn "];
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let t = line.trim_start();
        let Some(after) = t.strip_prefix("pub") else { continue };
        let after = match after.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or("", |(_, x)| x),
            None => after,
        };
        if !after.starts_with(char::is_whitespace) {
            continue;
        }
        let after = after.trim_start();
        if let Some(k) = KINDS.iter().find(|k| after.starts_with(*k)) {
            let name: String = after[k.len()..].chars().take_while(|&c| is_ident(c)).collect();
            out.insert(name);
        }
    }
    out
}

/// The files each file imports from (an item re-exported by a `mod.rs` counts as its defining file).
fn file_graph(root: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let code: BTreeMap<&PathBuf, String> =
        files.iter().map(|p| (p, stripped(&std::fs::read_to_string(p).unwrap()))).collect();
    let defs: BTreeMap<&PathBuf, BTreeSet<String>> = code.iter().map(|(p, c)| (*p, defined_items(c))).collect();
    let mut g = BTreeMap::new();
    for p in files {
        let me = module_path(root, p);
        let mut to = BTreeSet::new();
        for segs in named_paths(&code[p]) {
            let abs: Vec<String> = if segs[0] == "crate" {
                segs[1..].to_vec()
            } else {
                let mut base = me.clone();
                let mut s = &segs[..];
                while let Some(first) = s.first().filter(|f| *f == "super" || *f == "self") {
                    if first == "super" {
                        base.pop();
                    }
                    s = &s[1..];
                }
                [base, s.to_vec()].concat()
            };
            let Some((mut f, rest)) = mod_file(root, &abs) else { continue };
            if f.ends_with("mod.rs") && !rest.is_empty() {
                let folder = f.parent().unwrap().to_path_buf();
                if let Some((g, _)) =
                    defs.iter().find(|(g, d)| **g != &f && g.starts_with(&folder) && d.contains(&rest[0]))
                {
                    f = (*g).clone();
                }
            }
            if &f != p {
                to.insert(f);
            }
        }
        g.insert(p.clone(), to);
    }
    g
}

/// Strongly connected groups of more than one file (Tarjan).
fn circles(g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct T<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a PathBuf) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let Some((w, _)) = t.g.get_key_value(w) else { continue };
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[v].min(t.low[w]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.low[v].min(t.index[w]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t =
        T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_import_circle_between_files() {
    let (root, files) = sources();
    let found = circles(&file_graph(&root, &files));
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter().map(|p| p.strip_prefix(&root).unwrap().display().to_string()).collect::<Vec<_>>().join(" -> ")
        })
        .collect();
    assert!(text.is_empty(), "import circles between files:\n{}", text.join("\n"));
}

#[test]
fn the_checker_sees_an_import_circle() {
    // a test that cannot fail is a defect: a two-file circle through a mod.rs re-export is found
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    std::fs::create_dir_all(root.join("m")).unwrap();
    let write = |p: &str, s: &str| std::fs::write(root.join(p), s).unwrap();
    write("m/mod.rs", "mod a;\nmod b;\npub use a::A;\n");
    write("m/a.rs", "use super::b::B;\npub struct A(B);\n");
    write("m/b.rs", "// crate::m::c in a comment\npub struct B;\nfn f() -> super::A { todo!() }\n");
    write("m/c.rs", "use crate::m::{a::A, b::{self, B}};\n");
    let files: Vec<PathBuf> = ["m/mod.rs", "m/a.rs", "m/b.rs", "m/c.rs"].iter().map(|p| root.join(p)).collect();
    let g = file_graph(&root, &files);
    assert_eq!(g[&root.join("m/c.rs")], [root.join("m/a.rs"), root.join("m/b.rs")].into_iter().collect());
    assert_eq!(circles(&g), vec![vec![root.join("m/a.rs"), root.join("m/b.rs")]]);
    write("m/b.rs", "pub struct B;\n");
    assert!(circles(&file_graph(&root, &files)).is_empty(), "no circle once b stops naming a");
}
