//! BuildKit's own parser and shell-lexer test data, run against our
//! implementation (see ../shared/conformance/dockerfile-parser/README.txt).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use rootstrap::dockerfile::{self, Lexer};

fn data_dir() -> Option<PathBuf> {
    crate::common::conformance::path("dockerfile-parser")
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn parser_positive_cases() {
    let Some(root) = data_dir() else { return };
    let cases = case_dirs(&root.join("parser/testfiles"));
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy();
        let expected = read(&case.join("result"));
        match dockerfile::dump_file(&read(&case.join("Dockerfile"))) {
            Ok(got) if got == expected => {}
            Ok(got) => failures.push(format!(
                "{name}: dump differs\n--- got\n{got}--- expected\n{expected}"
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    println!(
        "parser: {}/{} passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert_eq!(cases.len(), 33, "expected 33 BuildKit parser cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parser_negative_cases() {
    let Some(root) = data_dir() else { return };
    let cases = case_dirs(&root.join("parser/testfiles-negative"));
    let mut accepted = Vec::new();
    for case in &cases {
        let text = read(&case.join("Dockerfile"));
        match dockerfile::parse(&text) {
            Err(e) => println!("{}: rejected: {e}", case.display()),
            Ok(_) => accepted.push(case.display().to_string()),
        }
    }
    println!(
        "parser negative: {}/{} rejected",
        cases.len() - accepted.len(),
        cases.len()
    );
    assert_eq!(cases.len(), 4);
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

#[test]
fn parser_line_numbers() {
    let Some(root) = data_dir() else { return };
    let file = dockerfile::parse(&read(&root.join("parser/testfile-line/Dockerfile")))
        .expect("testfile-line parses");
    assert_eq!((file.start_line, file.end_line), (5, 31));
    let spans: Vec<(usize, usize)> = file
        .children
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect();
    assert_eq!(spans, [(5, 5), (11, 12), (17, 31)]);
    println!("testfile-line: passed");
}

fn env_var_test_env(name: &str, case_insensitive: bool) -> Option<String> {
    const ENV: [(&str, &str); 4] = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ];
    ENV.iter()
        .find(|(k, _)| {
            if case_insensitive {
                k.eq_ignore_ascii_case(name)
            } else {
                *k == name
            }
        })
        .map(|(_, v)| v.to_string())
}

/// Platform `A` and `U` lines run with Unix semantics (case-sensitive
/// variable names); `W` lines with Windows' case-insensitive names, which is
/// the only difference BuildKit makes there (the escape stays `\`).
#[test]
fn shell_env_var_test() {
    let Some(root) = data_dir() else { return };
    let text = read(&root.join("shell/envVarTest"));
    let lexer = Lexer::new('\\');
    let mut total = 0;
    let mut failures = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        let [platform, source, expected] = fields.as_slice() else {
            panic!("envVarTest line {}: expected 3 fields", index + 1);
        };
        let windows = match *platform {
            "A" | "U" => false,
            "W" => true,
            other => panic!("envVarTest line {}: bad platform {other}", index + 1),
        };
        total += 1;
        let lookup = |name: &str| env_var_test_env(name, windows);
        let got = lexer.process_word(source, &lookup);
        let ok = match (&got, *expected) {
            (Err(_), "error") => true,
            (Ok(value), expected) => expected != "error" && value == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {platform}|{source} expected {expected:?}, got {got:?}",
                index + 1
            ));
        }
    }
    println!("envVarTest: {}/{} passed", total - failures.len(), total);
    assert_eq!(total, 230);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shell_words_test() {
    let Some(root) = data_dir() else { return };
    let text = read(&root.join("shell/wordsTest"));
    let lexer = Lexer::new('\\');
    let mut env: HashMap<String, String> = HashMap::new();
    let mut total = 0;
    let mut failures = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let assignment = assignment.trim_start_matches(' ');
            let (k, v) = assignment.split_once('=').unwrap_or((assignment, ""));
            // As BuildKit's env list: the first definition of a name wins.
            env.entry(k.to_string()).or_insert_with(|| v.to_string());
            continue;
        }
        let Some((input, expected)) = line.split_once('|') else {
            panic!("wordsTest line {}: expected one |", index + 1);
        };
        total += 1;
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let lookup = |name: &str| env.get(name).cloned();
        let got = lexer
            .process_words(input.trim(), &lookup)
            .unwrap_or_else(|_| vec!["error".to_string()]);
        if got != expected {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?}, got {got:?}",
                index + 1
            ));
        }
    }
    println!("wordsTest: {}/{} passed", total - failures.len(), total);
    assert_eq!(total, 24);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
