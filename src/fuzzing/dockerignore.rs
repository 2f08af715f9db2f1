//! `.dockerignore` patterns, then matching them against paths taken from the
//! same input (first line = patterns end marker is a NUL byte).
use crate::dockerfile::parse_dockerignore;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, paths) = text
        .split_once('\0')
        .unwrap_or((text, "a/b\nx.txt\n.git/config"));
    let Ok(ignore) = parse_dockerignore(patterns) else {
        return;
    };
    let _ = ignore.has_exclusions();
    for path in paths.lines() {
        let _ = ignore.is_excluded(path);
    }
}
