//! The architecture rule (#32): infrastructure modules never refer to a feature module.
//! Features depend on infrastructure; the composition root (`src/app.rs`, `src/roles.rs`,
//! `src/main.rs`) is the one place that knows every feature. Read from the source, comments
//! left out.

use std::path::{Path, PathBuf};

/// Infrastructure: tools every feature may use, which know no feature.
const INFRASTRUCTURE: &[&str] = &[
    "config",
    "db",
    "ephemeral",
    "error",
    "http",
    "kafka",
    "mail",
    "redis",
    "shutdown",
    "state",
    "telemetry",
];

/// The top-level modules of `src/lib.rs`.
fn top_level_modules(src: &Path) -> Vec<String> {
    std::fs::read_to_string(src.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect()
}

/// A module's files: `src/<m>.rs` and everything under `src/<m>/`.
fn files_of(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.exists() {
        files.push(single);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The code of a file without its comments (line comments, doc comments included).
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal (a URL) cuts the line short: harmless here, it
            // only hides text after it.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules of `candidates` that `code` names through `crate::`, single or in a group
/// (`crate::{a, b::c}`).
fn named(code: &str, candidates: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|p| p.trim().split("::").next().unwrap_or(""))
                .collect()
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            vec![&rest[..end]]
        };
        for n in names {
            if candidates.iter().any(|c| c == n) && !found.iter().any(|f: &String| f == n) {
                found.push(n.to_owned());
            }
        }
    }
    found
}

#[test]
fn infrastructure_refers_to_no_feature() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = top_level_modules(&src);
    for m in INFRASTRUCTURE {
        assert!(
            modules.iter().any(|x| x == m),
            "no module {m} in src/lib.rs"
        );
    }
    let features: Vec<String> = modules
        .iter()
        .filter(|m| !INFRASTRUCTURE.contains(&m.as_str()))
        .cloned()
        .collect();
    assert!(features.iter().any(|f| f == "bookings"), "{features:?}");
    let mut offences = Vec::new();
    for m in INFRASTRUCTURE {
        let files = files_of(&src, m);
        assert!(!files.is_empty(), "no source for {m}");
        for file in files {
            for f in named(&code_of(&file), &features) {
                offences.push(format!(
                    "{} names the feature `{f}`",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "infrastructure must not depend on features:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_rule_sees_single_and_grouped_paths() {
    let candidates = vec!["users".to_owned(), "bookings".to_owned()];
    assert_eq!(
        named("use crate::users::domain::Role;", &candidates),
        ["users"]
    );
    assert_eq!(
        named("use crate::{error, bookings::Writer};", &candidates),
        ["bookings"]
    );
    assert!(named("let x = crate::error::ApiError::x;", &candidates).is_empty());
    assert!(named("let u = crate::usersx::y;", &candidates).is_empty());
}
