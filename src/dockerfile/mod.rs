//! Dockerfiles with BuildKit's semantics: the parser ([`parse`]), BuildKit's
//! AST dump format ([`dump()`]), shell-word expansion ([`expand`]) and typed
//! instructions grouped into build stages ([`instructions`]), `RUN --mount`
//! specs ([`mounts`]) and `.dockerignore` ([`dockerignore`]).
//!
//! Everything here is pure (text in, values out) except [`builder`], which
//! runs parsed stages against a rootfs, the sandbox and the image writer.

pub mod builder;
mod copy;
mod directives;
pub mod dockerignore;
pub mod dump;
mod error;
pub mod expand;
mod go_quote;
mod heredoc;
pub mod instructions;
mod line_parsers;
pub mod mounts;
mod node;
mod parser;
pub mod snapshot;
pub mod step_cache;

pub use directives::Directive;
pub use dockerignore::{parse_dockerignore, DockerIgnore};
pub use dump::{dump, dump_node};
pub use error::{ParseError, ParseErrorKind};
pub use expand::{expand_word, expand_words, EnvLookup, ExpandError, Lexer};
pub use go_quote::go_quote;
pub use heredoc::{parse_heredoc, Heredoc};
pub use instructions::{
    parse_instructions, Command, CopySpec, Healthcheck, InlineSource, Instruction, RunCommand,
    ShellOrExec, Stage, Stages,
};
pub use mounts::{parse_mount, Mount, MountType};
pub use node::Node;
pub use parser::{parse, Dockerfile, Warning, MAX_LINE_LENGTH};

/// Parses `text` and returns BuildKit's dump of it (for `rootstrap dockerfile parse`).
pub fn dump_file(text: &str) -> Result<String, ParseError> {
    parse(text).map(|file| dump(&file))
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;

    /// Small deterministic generator so the test is reproducible without a
    /// fuzzing crate.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as usize
        }
    }

    const PIECES: &[&str] = &[
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "ARG ",
        "LABEL ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "CMD ",
        "SHELL ",
        "EXPOSE ",
        "USER ",
        "WORKDIR ",
        "VOLUME ",
        "--from=",
        "--mount=",
        "type=cache,",
        "--chmod=",
        " AS ",
        "<<",
        "<<-",
        "EOF",
        "\n",
        "\\\n",
        "\\",
        "`",
        "\"",
        "'",
        "$",
        "${",
        "}",
        ":-",
        ":+",
        "?",
        "#",
        "##",
        "%",
        "/",
        "//",
        "*",
        "[",
        "]",
        "=",
        " ",
        "\t",
        "\r\n",
        "a",
        "x y",
        "\0",
        "한",
        "# escape=`\n",
        "# syntax=x\n",
        "NONE",
        "CMD",
        "[\"a\"]",
    ];

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Lcg(0x5eed);
        let lookup = |name: &str| (name.len() % 2 == 0).then(|| "v a l".to_string());
        for _ in 0..5000 {
            let len = rng.next() % 40;
            let text: String = (0..len)
                .map(|_| PIECES[rng.next() % PIECES.len()])
                .collect();
            let Ok(file) = parse(&text) else { continue };
            let _ = dump(&file);
            let Ok(stages) = parse_instructions(&file) else {
                continue;
            };
            for command in stages.stages.iter().flat_map(|s| &s.commands) {
                let _ = command.expand(&lookup, file.escape);
                let _ = command.instruction.run_command();
            }
            for word in text.split('\n') {
                let _ = expand_words(word, &lookup, '\\');
                let _ = parse_dockerignore(word).map(|d| d.is_excluded(word));
                let _ = parse_mount(word);
            }
        }
    }
}
