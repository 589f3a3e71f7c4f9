//! The layering rule of docs/design.md, checked against the sources.
//!
//! Reads the layer table from docs/design.md (section "Layers": one row per layer, lowest first,
//! with its top-level modules in backticks) and every `crate::` / `super::` / `self::` path in
//! `src/` (comments and literals removed, inline `mod` blocks followed), and fails when
//! - a top-level module of `src/` is missing from the table, or the table names one that does
//!   not exist;
//! - a module uses a module of a higher layer;
//! - a module uses an item of the crate root other than a module (re-exports hide the edge);
//! - two or more top-level modules form an import cycle (even within one layer).
//!
//! The crate root (`lib.rs`) is exempt: it declares and re-exports everything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer table: module -> (layer index, layer name).
fn layer_table(design: &str) -> BTreeMap<String, (usize, String)> {
    let start = design
        .find("\n## Layers")
        .expect("docs/design.md has a \"## Layers\" section");
    let section = &design[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let mut table = BTreeMap::new();
    let mut index = 0;
    for line in section[..end].lines() {
        let line = line.trim();
        if !line.starts_with('|') || line.starts_with("|-") || line.starts_with("| -") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 || cells[0].eq_ignore_ascii_case("layer") {
            continue;
        }
        let name = cells[1].to_string();
        let modules = backticked(cells[2]);
        assert!(
            !modules.is_empty(),
            "layer row without modules in docs/design.md: {line}"
        );
        for m in modules {
            let previous = table.insert(m.clone(), (index, name.clone()));
            assert!(
                previous.is_none(),
                "`{m}` is in two layers of docs/design.md"
            );
        }
        index += 1;
    }
    assert!(index > 1, "the layer table of docs/design.md has no rows");
    table
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`; `lib.rs` is
/// `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The source with comments, string, byte-string and char literals blanked out (newlines kept,
/// so that line numbers stay right).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let c = b[i];
        let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            let end = text[i..].find('\n').map_or(b.len(), |e| i + e);
            blank(&mut out, &b[i..end]);
            i = end;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            let mut j = i;
            while j < b.len() {
                if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &b[i..j.min(b.len())]);
            i = j;
        } else if !prev_ident
            && (c == b'r' || ((c == b'b' || c == b'c') && b.get(i + 1) == Some(&b'r')))
            && {
                let k = if c == b'r' { i + 1 } else { i + 2 };
                let hashes = b[k..].iter().take_while(|&&h| h == b'#').count();
                b.get(k + hashes) == Some(&b'"')
            }
        {
            // raw string: r"..", r#".."#, br"..", cr".."
            let k = if c == b'r' { i + 1 } else { i + 2 };
            let hashes = b[k..].iter().take_while(|&&h| h == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = k + hashes + 1;
            let end = text[body..]
                .find(&close)
                .map_or(b.len(), |e| body + e + close.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if c == b'\'' {
            // a char literal ('x', '\n', '\u{..}', '\'') or a lifetime ('a)
            let end = if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                Some(j + 1)
            } else {
                let ch = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch) == Some(&b'\'')).then_some(i + 2 + ch)
            };
            match end {
                Some(end) => {
                    blank(&mut out, &b[i..end.min(b.len())]);
                    i = end;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
    /// `::`
    Path,
}

/// Identifiers, `::` and single punctuation characters, with their line numbers.
fn tokens(code: &str) -> Vec<(Token, usize)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = code.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c.is_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push((Token::Ident(code[i..end].to_string()), line));
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            out.push((Token::Path, line));
        } else if !c.is_whitespace() {
            out.push((Token::Punct(c), line));
        }
    }
    out
}

/// One use of another module: the target path (from the crate root) and where it is.
struct Edge {
    target: Vec<String>,
    line: usize,
}

/// The paths a file names through `crate::`, `super::` and `self::`, resolved from the crate
/// root. `use a::{b, c::d}` groups give one edge per leading name. Inline `mod x { .. }` blocks
/// extend the module path inside them.
fn edges(file_module: &[String], code: &str) -> Vec<Edge> {
    let toks = tokens(code);
    let mut out = Vec::new();
    // (module path, brace depth at which it closes)
    let mut scopes: Vec<(Vec<String>, usize)> = vec![(file_module.to_vec(), 0)];
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Token::Punct('{') => {
                depth += 1;
                i += 1;
                continue;
            }
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if scopes.len() > 1 && scopes.last().is_some_and(|s| s.1 == depth) {
                    scopes.pop();
                }
                i += 1;
                continue;
            }
            Token::Ident(kw) if kw == "mod" => {
                if let (Some((Token::Ident(name), _)), Some((Token::Punct('{'), _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    let mut path = scopes.last().expect("a scope").0.clone();
                    path.push(name.clone());
                    scopes.push((path, depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            _ => {}
        }
        let preceded_by_path = i > 0 && toks[i - 1].0 == Token::Path;
        let Token::Ident(first) = &toks[i].0 else {
            i += 1;
            continue;
        };
        if preceded_by_path || !matches!(first.as_str(), "crate" | "super" | "self") {
            i += 1;
            continue;
        }
        if first == "self" && toks.get(i + 1).map(|t| &t.0) != Some(&Token::Path) {
            i += 1; // a method receiver, not a path
            continue;
        }
        let line = toks[i].1;
        let mut base = scopes.last().expect("a scope").0.clone();
        let mut j = i;
        // leading crate / super / self segments
        loop {
            match &toks[j].0 {
                Token::Ident(s) if s == "crate" => base.clear(),
                Token::Ident(s) if s == "super" => {
                    base.pop();
                }
                Token::Ident(s) if s == "self" => {}
                _ => break,
            }
            if toks.get(j + 1).map(|t| &t.0) == Some(&Token::Path) {
                j += 2;
            } else {
                j += 1;
                break;
            }
        }
        match toks.get(j).map(|t| &t.0) {
            Some(Token::Ident(name)) if !matches!(name.as_str(), "crate" | "super" | "self") => {
                let mut target = base.clone();
                target.push(name.clone());
                out.push(Edge { target, line });
                i = j + 1;
            }
            Some(Token::Punct('*')) => {
                let mut target = base.clone();
                target.push("*".into());
                out.push(Edge { target, line });
                i = j + 1;
            }
            Some(Token::Punct('{')) => {
                // a group: the first name of each top-level item
                let mut k = j + 1;
                let mut nested = 0;
                let mut expect_item = true;
                while k < toks.len() {
                    match &toks[k].0 {
                        Token::Punct('{') => nested += 1,
                        Token::Punct('}') if nested == 0 => break,
                        Token::Punct('}') => nested -= 1,
                        Token::Punct(',') if nested == 0 => expect_item = true,
                        Token::Ident(name) if nested == 0 && expect_item => {
                            expect_item = false;
                            if name != "self" {
                                let mut target = base.clone();
                                target.push(name.clone());
                                out.push(Edge {
                                    target,
                                    line: toks[k].1,
                                });
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
                i = j; // the braces are counted by the main loop
            }
            _ => i = j.max(i + 1),
        }
    }
    out
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn imports_follow_the_layer_table_of_docs_design_md_and_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("docs/design.md")).expect("docs/design.md");
    let table = layer_table(&design);
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();

    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(&src, f).first().cloned())
        .collect();
    let mut problems = Vec::new();
    for m in &modules {
        if !table.contains_key(m) {
            problems.push(format!(
                "src/{m} is in no layer: add `{m}` to the layer table of docs/design.md"
            ));
        }
    }
    for m in table.keys() {
        if !modules.contains(m) {
            problems.push(format!(
                "docs/design.md's layer table names `{m}`, which is not a module of src/"
            ));
        }
    }

    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut edge_count = 0;
    for file in &files {
        let module = module_path(&src, file);
        let Some(from) = module.first() else {
            continue; // the crate root
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        let shown = file.strip_prefix(root).unwrap_or(file).display();
        for edge in edges(&module, &strip(&text)) {
            let Some(to) = edge.target.first() else {
                continue;
            };
            if to == from {
                continue;
            }
            edge_count += 1;
            if !modules.contains(to) {
                problems.push(format!(
                    "{shown}:{}: `crate::{}` is an item of the crate root; use it from the \
                     module that defines it, so the layer check sees the edge",
                    edge.line,
                    edge.target.join("::")
                ));
                continue;
            }
            graph.entry(from.clone()).or_default().insert(to.clone());
            if let (Some((lf, nf)), Some((lt, nt))) = (table.get(from), table.get(to))
                && lt > lf
            {
                problems.push(format!(
                    "{shown}:{}: `{from}` (layer {lf}, {nf}) uses `{}` (layer {lt}, {nt}): \
                     a module may use only its own layer and those below (docs/design.md, \
                     \"Layers\")",
                    edge.line,
                    edge.target.join("::")
                ));
            }
        }
    }
    assert!(
        edge_count > 20,
        "only {edge_count} cross-module edges found: the scanner is broken"
    );
    for cycle in cycles(&graph) {
        problems.push(format!(
            "import cycle across top-level modules: {}",
            cycle.join(", ")
        ));
    }
    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_scanner_finds_paths_groups_and_inline_modules() {
    let code = strip(
        "use crate::a::X; // crate::commented\nuse super::{b, c::{D, E}, self};\n\
         fn f() { let s = \"crate::in_string\"; crate::g::h(); }\n\
         mod tests { use super::*; use super::super::k; }\nimpl<'a> T<'a> { fn m(&self) {} }",
    );
    let found: Vec<String> = edges(&["m".into(), "n".into()], &code)
        .iter()
        .map(|e| e.target.join("::"))
        .collect();
    assert_eq!(found, ["a", "m::b", "m::c", "g", "m::n::*", "m::k"]);
}
