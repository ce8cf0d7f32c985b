//! The floors ARCHITECTURE.md claims, checked against the code's own
//! imports (as rust-analyzer's tidy tests keep its "architecture
//! invariants" true): every `crate::` path in `src/` is read, and an arrow
//! that breaks a rule fails the test with the file and the path.
//!
//! The floors, top to bottom: `main`, `lib` → `cmd/` → `cli` → `output/`
//! → `exit` → `facts/` → `platform/` → `model`, `parse`, `runtime`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a file or an imported path lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Floor {
    Bottom,
    Platform,
    Facts,
    Exit,
    Output,
    Cli,
    /// One command, by name: commands are leaves.
    Command(String),
    Top,
}

impl Floor {
    fn rank(&self) -> u8 {
        match self {
            Floor::Bottom => 0,
            Floor::Platform => 1,
            Floor::Facts => 2,
            Floor::Exit => 3,
            Floor::Output => 4,
            Floor::Cli => 5,
            Floor::Command(_) => 6,
            Floor::Top => 7,
        }
    }
}

/// The floor of a file under `src/`.
fn floor_of_file(relative: &Path) -> Floor {
    let parts: Vec<&str> = relative
        .iter()
        .map(|p| p.to_str().unwrap_or_default())
        .collect();
    match parts.as_slice() {
        ["cmd", "mod.rs"] => Floor::Top,
        ["cmd", name, ..] => Floor::Command(name.trim_end_matches(".rs").to_string()),
        ["facts", ..] => Floor::Facts,
        ["platform", ..] => Floor::Platform,
        ["output", ..] => Floor::Output,
        ["cli.rs"] => Floor::Cli,
        ["exit.rs"] => Floor::Exit,
        ["model.rs" | "parse.rs" | "runtime.rs"] => Floor::Bottom,
        ["lib.rs" | "main.rs"] => Floor::Top,
        other => panic!("a file on no floor: {other:?}; give it one here and in ARCHITECTURE.md"),
    }
}

/// The floor of an imported path (`crate::facts::stop::Plan` → facts).
fn floor_of_path(path: &[String]) -> Option<Floor> {
    Some(match path.first()?.as_str() {
        "cmd" => Floor::Command(path.get(1)?.clone()),
        "facts" => Floor::Facts,
        "platform" => Floor::Platform,
        "output" => Floor::Output,
        "cli" => Floor::Cli,
        "exit" => Floor::Exit,
        "model" | "parse" | "runtime" => Floor::Bottom,
        // `crate::Result` and the like from lib.rs.
        _ => Floor::Top,
    })
}

/// Every `.rs` file under `src/`, relative to it, with its text.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.strip_prefix(root).unwrap().to_path_buf(), text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// The code without comments and string literals, which may mention
/// `crate::` or `cfg(unix)` without importing or naming anything.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        break;
                    }
                }
                out.push('"');
            }
            // A char literal such as '"' or '{' (a lifetime has no closing quote).
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let len = match rest.as_bytes() {
                    [b'\\', _, b'\'', ..] => 3,
                    [_, b'\'', ..] => 2,
                    _ => 0,
                };
                out.push('\'');
                for _ in 0..len {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Every path a file reaches through `crate::`, as segments: `use
/// crate::{a, b::c}` gives `a` and `b::c`; `crate::x::y(...)` in code
/// gives `x::y`.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `portctl_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                paths.push(segments(item));
            }
            continue;
        }
        paths.push(segments(rest));
    }
    paths.retain(|p| !p.is_empty());
    paths
}

fn segments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(next) if !next.starts_with('{') => rest = next,
            _ => break,
        }
    }
    out
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// Every (file, floor, imported path, its floor).
fn arrows() -> Vec<(String, Floor, String, Floor)> {
    let mut out = Vec::new();
    for (file, text) in sources() {
        let from = floor_of_file(&file);
        for path in crate_paths(&code_only(&text)) {
            if let Some(to) = floor_of_path(&path) {
                out.push((
                    file.display().to_string(),
                    from.clone(),
                    path.join("::"),
                    to,
                ));
            }
        }
    }
    out
}

#[test]
fn no_command_imports_another_command() {
    let wrong: BTreeSet<String> = arrows()
        .into_iter()
        .filter_map(|(file, from, path, to)| match (&from, &to) {
            (Floor::Command(a), Floor::Command(b)) if a != b => {
                Some(format!("{file} → crate::{path}"))
            }
            _ => None,
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "a command imports another: move the shared piece below both\n{wrong:#?}"
    );
}

#[test]
fn facts_know_nothing_of_commands_clap_exit_codes_or_how_they_are_shown() {
    let wrong: BTreeSet<String> = arrows()
        .into_iter()
        .filter(|(_, from, _, to)| {
            *from == Floor::Facts
                && matches!(
                    to,
                    Floor::Command(_) | Floor::Cli | Floor::Output | Floor::Exit | Floor::Top
                )
        })
        .map(|(file, _, path, _)| format!("{file} → crate::{path}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "a fact reaches above its floor: return data, let output word it\n{wrong:#?}"
    );
}

#[test]
fn the_os_door_imports_only_its_own_types_and_the_plain_ones() {
    let wrong: BTreeSet<String> = arrows()
        .into_iter()
        .filter(|(_, from, _, to)| {
            *from == Floor::Platform && !matches!(to, Floor::Platform | Floor::Bottom)
        })
        .map(|(file, _, path, _)| format!("{file} → crate::{path}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "platform/ imports a floor above it: move the type into platform/types.rs\n{wrong:#?}"
    );
}

/// The arrows that run up a floor, each named and justified in
/// ARCHITECTURE.md ("Arrows that run back up"); at most two.
#[test]
fn arrows_run_down_but_for_the_named_exceptions() {
    let up: BTreeSet<String> = arrows()
        .into_iter()
        .filter(|(_, from, _, to)| to.rank() > from.rank())
        .map(|(file, _, path, _)| {
            let target = path.split("::").take(2).collect::<Vec<_>>().join("::");
            format!("{file} → crate::{target}")
        })
        .collect();
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let named: BTreeSet<String> = map
        .lines()
        .filter_map(|l| {
            l.strip_prefix("- up: `")?
                .split_once('`')
                .map(|(a, _)| a.to_string())
        })
        .collect();
    assert!(
        named.len() <= 2,
        "at most two arrows may run back up: {named:#?}"
    );
    assert_eq!(
        up, named,
        "the arrows that run back up differ from those ARCHITECTURE.md names (`- up: `FILE → crate::PATH``)"
    );
}

#[test]
fn nothing_outside_platform_names_an_os() {
    let os = [
        "target_os",
        "target_family",
        "target_env",
        "target_vendor",
        "cfg(unix",
        "cfg(windows",
        "cfg!(unix",
        "cfg!(windows",
        "unix)",
        "windows)",
    ];
    let wrong: Vec<String> = sources()
        .into_iter()
        .filter(|(file, _)| !file.starts_with("platform"))
        .flat_map(|(file, text)| {
            let code = code_only(&text);
            os.iter()
                .filter(|word| code.lines().any(|l| l.contains("cfg") && l.contains(*word)))
                .map(|word| format!("{}: {word}", file.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "an OS is named outside platform/: put it behind the door\n{wrong:#?}"
    );
}

#[test]
fn architecture_md_names_every_source_file() {
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let missing: Vec<String> = sources()
        .into_iter()
        .map(|(file, _)| file.display().to_string())
        .filter(|file| {
            let path = Path::new(file);
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let named = |text: String| map.contains(&text);
            if stem == "mod" {
                // A folder's mod.rs is named by the folder.
                let folder = path
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap();
                !named(format!("`{folder}/`")) && !named(format!("{folder}/mod.rs`"))
            } else {
                !named(format!("`{stem}`"))
                    && !named(format!("{stem}.rs`"))
                    && !named(format!("`{stem}.rs"))
            }
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these files:\n{missing:#?}"
    );
}

#[test]
fn the_reader_of_imports_reads_groups_paths_and_skips_text() {
    let code = code_only(
        "use crate::{a::b, c::{d, e}};\n// crate::commented\nlet s = \"crate::quoted\"; crate::f::g(1); other_crate::h;\nlet q = '\"'; crate::i;",
    );
    let paths: Vec<String> = crate_paths(&code).iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["a::b", "c", "f::g", "i"]);
    assert_eq!(
        floor_of_file(Path::new("cmd/serve/http.rs")),
        Floor::Command("serve".into())
    );
}
