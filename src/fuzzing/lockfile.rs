//! `rootstrap.lock` TOML, and its index paths.
use crate::lock::{self, LockPath};
use std::path::Path;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = lock::parse(text, Path::new("fuzz.lock")) {
        // What parses must serialise and parse back to the same lock.
        let written = lock::to_toml(&parsed).expect("a parsed lock serialises");
        let again = lock::parse(&written, Path::new("fuzz.lock")).expect("written lock parses");
        assert_eq!(again, parsed, "round trip changed the lock:\n{written}");
    }
    if let Ok(p) = LockPath::parse(text) {
        let under = p.under(Path::new("/cache"));
        assert!(
            under.starts_with("/cache"),
            "{p:?} escapes: {}",
            under.display()
        );
    }
}
