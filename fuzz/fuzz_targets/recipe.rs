//! Recipe TOML (a recipe may come from anyone's repository).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rootstrap::recipe::Recipe;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Recipe::parse(text, Path::new("/recipes/fuzz.toml")) {
        let _ = r.package_requests();
        let _ = r.release_name();
    }
});
