//! Dockerfiles with BuildKit's semantics: the parser ([`parse`]), BuildKit's
//! AST dump format ([`dump()`]), shell-word expansion ([`expand`]) and typed
//! instructions grouped into build stages ([`instructions`]), `RUN --mount`
//! specs ([`mounts`]) and `.dockerignore` ([`dockerignore`]).
//!
//! Everything here is pure: text in, values out.

mod directives;
pub mod dockerignore;
pub mod dump;
mod error;
pub mod expand;
mod heredoc;
pub mod instructions;
mod line_parsers;
pub mod mounts;
mod parser;

pub use directives::Directive;
pub use dockerignore::{parse_dockerignore, DockerIgnore};
pub use dump::{dump, dump_node, go_quote};
pub use error::{ParseError, ParseErrorKind};
pub use expand::{expand_word, expand_words, EnvLookup, ExpandError, Lexer};
pub use heredoc::{parse_heredoc, Heredoc};
pub use instructions::{
    parse_instructions, Command, CopySpec, Healthcheck, InlineSource, Instruction, RunCommand,
    ShellOrExec, Stage, Stages,
};
pub use mounts::{parse_mount, Mount, MountType};
pub use parser::{parse, Dockerfile, Node, Warning, MAX_LINE_LENGTH};

/// Parses `text` and returns BuildKit's dump of it (for `rootstrap dockerfile parse`).
pub fn dump_file(text: &str) -> Result<String, ParseError> {
    parse(text).map(|file| dump(&file))
}
