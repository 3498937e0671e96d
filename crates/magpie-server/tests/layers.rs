//! The structure the design promises, checked on the source: no module of any crate imports,
//! directly or through others, a module that imports it back (a folder's `mod.rs` and its own
//! direct children excepted), and magpie-server's layers depend only downwards:
//! core <- services <- model <- commands <- exec <- front <- app.
//!
//! Test code (`#[cfg(test)] mod ...`) is left out: a unit test may reach across layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// magpie-server's layers, bottom first.
const LAYERS: &[&str] = &["core", "services", "model", "commands", "exec", "front", "app"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every source file of a crate's `src`, by module path (`services::persist::load`).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let last = parts.pop().expect("a file name");
            match last.as_str() {
                "lib.rs" | "main.rs" if parts.is_empty() => {}
                "mod.rs" => {}
                name => parts.push(name.trim_end_matches(".rs").to_owned()),
            }
            if last == "main.rs" && parts.is_empty() {
                parts.push("<main>".to_owned());
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The text without `#[cfg(test)]` items (a module or function that follows the attribute,
/// up to its matching brace), comments and string literals.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("#[cfg(test)]") {
            // Skip to the item's opening brace (or semicolon), then to its end.
            let mut j = i;
            while j < bytes.len() && bytes[j] != b'{' && bytes[j] != b';' {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'{' {
                let mut depth = 0;
                while j < bytes.len() {
                    match bytes[j] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            i = j + 1;
            continue;
        }
        if text[i..].starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

/// The modules a file refers to through `crate::...` and `super::...` paths, `use` trees
/// (`use crate::a::{b, c::d}`) included.
fn references(
    module: &[String],
    is_mod_file: bool,
    code: &str,
    known: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let boundary =
        |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        if boundary(i) && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut base = if rest.starts_with("crate::") {
                i += "crate::".len();
                Vec::new()
            } else {
                // `super` in a mod.rs (or lib.rs) names the folder's parent; in a file, the folder.
                let mut m = module.to_vec();
                m.pop();
                let _ = is_mod_file;
                i += "super::".len();
                m
            };
            i = parse_tree(code, i, &mut base, &mut paths);
            continue;
        }
        i += 1;
    }
    let mut out = BTreeSet::new();
    for mut path in paths {
        while !path.is_empty() {
            if known.contains(&path) {
                out.insert(path);
                break;
            }
            path.pop();
        }
    }
    out.remove(module);
    out
}

/// Parses a path (or use tree) at `i` relative to `base`, adding every full path to `out`.
fn parse_tree(code: &str, mut i: usize, base: &mut Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let bytes = code.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            loop {
                i = skip_ws(i);
                if i >= bytes.len() || bytes[i] == b'}' {
                    i += 1;
                    break;
                }
                let mut inner = base.clone();
                i = parse_tree(code, i, &mut inner, out);
                i = skip_ws(i);
                if i < bytes.len() && bytes[i] == b',' {
                    i += 1;
                }
            }
            return i;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let seg = &code[start..i];
        match seg {
            "" => break,
            "super" => {
                base.pop();
            }
            "self" => {}
            s => base.push(s.to_owned()),
        }
        if code[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    out.push(base.clone());
    i
}

struct Graph {
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn graph(krate: &str) -> Graph {
    let src = crates_dir().join(krate).join("src");
    let files = modules(&src);
    let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).expect("read source");
        let is_mod = path.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        let refs = references(module, is_mod, &production_code(&text), &known);
        edges.insert(module.clone(), refs);
    }
    Graph { edges }
}

/// Cycles, after dropping the edges between a folder's mod.rs and its own direct children.
fn cycles(g: &Graph) -> Vec<Vec<Vec<String>>> {
    let allowed = |a: &Vec<String>, b: &Vec<String>| {
        (a.len() + 1 == b.len() && b.starts_with(a)) || (b.len() + 1 == a.len() && a.starts_with(b))
    };
    // Tarjan's strongly connected components.
    struct St<'a> {
        g: &'a BTreeMap<Vec<String>, Vec<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        on: BTreeSet<Vec<String>>,
        n: usize,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit(s: &mut St<'_>, v: &Vec<String>) {
        s.index.insert(v.clone(), s.n);
        s.low.insert(v.clone(), s.n);
        s.n += 1;
        s.stack.push(v.clone());
        s.on.insert(v.clone());
        for w in s.g.get(v).cloned().unwrap_or_default() {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let lw = s.low[&w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(&w) {
                let iw = s.index[&w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let filtered: BTreeMap<Vec<String>, Vec<Vec<String>>> =
        g.edges.iter().map(|(a, bs)| (a.clone(), bs.iter().filter(|b| !allowed(a, b)).cloned().collect())).collect();
    let mut st = St {
        g: &filtered,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        n: 0,
        out: Vec::new(),
    };
    for v in filtered.keys() {
        if !st.index.contains_key(v) {
            visit(&mut st, v);
        }
    }
    st.out
}

fn name(m: &[String]) -> String {
    if m.is_empty() { "crate".to_owned() } else { m.join("::") }
}

#[test]
fn no_crate_has_an_import_cycle() {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(crates_dir()).expect("crates dir").flatten() {
        let krate = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().join("src").is_dir() {
            continue;
        }
        for comp in cycles(&graph(&krate)) {
            found.push(format!("{krate}: {}", comp.iter().map(|m| name(m)).collect::<Vec<_>>().join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n  {}", found.join("\n  "));
}

#[test]
fn the_servers_layers_depend_only_downwards() {
    let g = graph("magpie-server");
    let layer = |m: &[String]| m.first().and_then(|top| LAYERS.iter().position(|l| l == top));
    let mut wrong = Vec::new();
    for (from, tos) in &g.edges {
        let Some(lf) = layer(from) else { continue };
        for to in tos {
            if let Some(lt) = layer(to)
                && lt > lf
            {
                wrong.push(format!("{} uses {} ({} is above {})", name(from), name(to), LAYERS[lt], LAYERS[lf]));
            }
        }
    }
    // Every layer is there, so a renamed folder cannot make this test pass by matching nothing.
    for l in LAYERS {
        assert!(g.edges.keys().any(|m| m.first().is_some_and(|t| t == l)), "no module in layer {l}");
    }
    assert!(wrong.is_empty(), "upward dependencies:\n  {}", wrong.join("\n  "));
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    // A guard for the guard: a synthetic graph with a cycle and one with only mod.rs edges.
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    let mut edges = BTreeMap::new();
    edges.insert(m("a::x"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("a::x")]));
    assert_eq!(cycles(&Graph { edges }).len(), 1);
    let mut edges = BTreeMap::new();
    edges.insert(m("a"), BTreeSet::from([m("a::x")]));
    edges.insert(m("a::x"), BTreeSet::from([m("a")]));
    assert!(cycles(&Graph { edges }).is_empty());
    let known = BTreeSet::from([m("core::error"), m("core"), m("services::journal")]);
    let refs = references(
        &m("services::config"),
        false,
        "use crate::core::error::{self, Error};\nuse super::journal::Fsync;",
        &known,
    );
    assert_eq!(refs, BTreeSet::from([m("core::error"), m("services::journal")]));
}
