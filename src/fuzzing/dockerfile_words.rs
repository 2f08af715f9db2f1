//! The word-level Dockerfile grammars: variable expansion (both escape
//! characters, joined and split), heredoc markers and `RUN --mount` specs.
use crate::dockerfile::{expand_word, expand_words, parse_heredoc, parse_mount};

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = |n: &str| (n.len() % 2 == 0).then(|| format!("v{n} w"));
    for escape in ['\\', '`'] {
        let _ = expand_word(text, &lookup, escape);
        let _ = expand_words(text, &lookup, escape);
    }
    let _ = parse_heredoc(text);
    let _ = parse_mount(text);
}
