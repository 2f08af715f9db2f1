//! Recipe TOML (a recipe may come from anyone's repository).
use crate::recipe::Recipe;
use std::path::Path;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Recipe::parse(text, Path::new("/recipes/fuzz.toml")) {
        let _ = r.package_requests();
        let _ = r.release_name();
    }
}
