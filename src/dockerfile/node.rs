//! The Dockerfile syntax tree's node, shared by the parser and the
//! per-instruction argument parsers (`line_parsers.rs`).

use super::heredoc::Heredoc;

/// A syntax-tree node, shaped like BuildKit's `parser.Node`.
///
/// A top-level instruction has `value` (the instruction name as written),
/// `flags`, and its arguments in `next` (BuildKit's `Next` chain, flattened).
/// ONBUILD's single argument node holds the wrapped instruction in `children`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub value: String,
    pub next: Vec<Node>,
    pub children: Vec<Node>,
    /// The arguments came from a JSON array (exec form).
    pub json: bool,
    /// The logical line as read (continuations joined, comments removed).
    pub original: String,
    pub flags: Vec<String>,
    pub heredocs: Vec<Heredoc>,
    /// 1-based first and last physical line (heredoc bodies included).
    pub start_line: usize,
    pub end_line: usize,
    /// Comment lines directly above the instruction.
    pub prev_comment: Vec<String>,
}

impl Node {
    pub(crate) fn word(value: String) -> Node {
        Node {
            value,
            ..Node::default()
        }
    }

    /// The argument values (`next`) as strings.
    pub fn args(&self) -> Vec<&str> {
        self.next.iter().map(|n| n.value.as_str()).collect()
    }

    /// Whether heredoc markers on this instruction's line are honoured:
    /// RUN/COPY/ADD in shell form, also wrapped in ONBUILD.
    pub(super) fn can_contain_heredoc(&self) -> bool {
        let mut node = self;
        if node.value.eq_ignore_ascii_case("onbuild") {
            if let Some(inner) = node.next.first().and_then(|n| n.children.first()) {
                node = inner;
            }
        }
        let name = node.value.to_ascii_lowercase();
        matches!(name.as_str(), "run" | "copy" | "add") && !node.json
    }
}
