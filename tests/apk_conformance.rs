//! apk-tools conformance: version.data and the solver test-suite.

use rootstrap::distro::apk::version::{self, VersionOp};
use std::path::PathBuf;

fn conformance_dir(sub: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/"
    ))
    .join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} not found", dir.display());
        None
    }
}

/// One line of version.data, as test/unit/version_test.c reads it.
fn check_version_line(line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [v] => {
            let (want_valid, v) = match v.strip_prefix('!') {
                Some(rest) => (false, rest),
                None => (true, *v),
            };
            if version::is_valid(v) == want_valid {
                Ok(())
            } else {
                Err(format!("validity of {v:?} should be {want_valid}"))
            }
        }
        [a, op, b] => {
            let (negate, op_str) = match op.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, *op),
            };
            let op = VersionOp::parse(op_str).ok_or_else(|| format!("bad operator {op_str}"))?;
            if version::matches(a, op, b) != negate {
                Ok(())
            } else {
                Err(format!("{a} {} {b} should be {}", op_str, !negate))
            }
        }
        _ => Err("unparseable line".to_string()),
    }
}

#[test]
fn version_data() {
    let Some(dir) = conformance_dir("apk-version") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("version.data")).expect("read version.data");
    let (mut total, mut failures) = (0, Vec::new());
    for (no, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        total += 1;
        if let Err(e) = check_version_line(line) {
            failures.push(format!("line {}: {e}", no + 1));
        }
    }
    println!("version.data: {}/{} passed", total - failures.len(), total);
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert!(total > 700, "version.data looks truncated: {total} lines");
}
