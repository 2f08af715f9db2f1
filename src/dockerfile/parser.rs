//! Dockerfile text → syntax tree, with BuildKit's line handling: directives,
//! comments, line continuations (also across comment and empty lines),
//! per-instruction argument forms, and heredoc bodies.

use super::directives::{escape_token, Directive, DirectiveScanner};
use super::error::{ParseError, ParseErrorKind};
use super::heredoc::{heredocs_from_line, Heredoc};
use super::line_parsers::{self as lp, Args};
use super::node::Node;

/// BuildKit reads lines with Go's `bufio.Scanner`, whose default token limit
/// makes longer lines an error; keeping that limit keeps both tools agreeing
/// on which files are valid.
pub const MAX_LINE_LENGTH: usize = 64 * 1024 - 1;

const MAX_ONBUILD_NESTING: usize = 8;

/// A non-fatal finding, e.g. BuildKit's empty-continuation-line warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// One node per instruction, in order.
    pub children: Vec<Node>,
    pub start_line: usize,
    pub end_line: usize,
    /// The escape character in effect (`\` unless `# escape=` said otherwise).
    pub escape: char,
    pub directives: Vec<Directive>,
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The value of a directive (`syntax`, `escape`, `check`) if present.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

/// Physical lines with their 1-based numbers, line endings kept.
struct Lines<'a> {
    iter: std::str::SplitInclusive<'a, char>,
    number: usize,
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Result<Option<&'a str>, ParseError> {
        let Some(line) = self.iter.next() else {
            return Ok(None);
        };
        self.number += 1;
        if trim_newline(line).len() > MAX_LINE_LENGTH {
            return Err(ParseError::at(
                self.number,
                self.number,
                ParseErrorKind::LineTooLong {
                    max: MAX_LINE_LENGTH,
                },
            ));
        }
        Ok(Some(line))
    }
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

struct State {
    directives: DirectiveScanner,
    escape: char,
}

impl State {
    /// Trims the line ending (and leading whitespace for an instruction's
    /// first line), lets the directive scanner see the line, and blanks
    /// comment lines.
    fn process_line<'l>(
        &mut self,
        raw: &'l str,
        line_no: usize,
        strip_left: bool,
    ) -> Result<&'l str, ParseError> {
        let mut token = trim_newline(raw);
        if strip_left {
            token = token.trim_start();
        }
        let found = self
            .directives
            .scan(token, line_no)
            .map_err(|kind| ParseError::at(line_no, line_no, kind))?;
        if let Some(directive) = found {
            if directive.name == "escape" {
                self.escape = escape_token(&directive.value)
                    .map_err(|kind| ParseError::at(line_no, line_no, kind))?;
            }
        }
        Ok(if token.starts_with('#') { "" } else { token })
    }

    /// Removes a trailing continuation escape (optionally followed by spaces
    /// or tabs). An escape preceded by another escape is not a continuation.
    /// Returns the remaining text and whether the logical line ends here.
    fn trim_continuation<'l>(&self, line: &'l str) -> (&'l str, bool) {
        let body = line.trim_end_matches([' ', '\t']);
        let Some(before) = body.strip_suffix(self.escape) else {
            return (line, true);
        };
        if before.ends_with(self.escape) {
            return (line, true);
        }
        (before, false)
    }
}

impl State {
    /// Appends continuation lines to `line` until one does not end in the
    /// escape character. Comment lines in between are skipped; blank ones
    /// too, but reported (BuildKit warns about them). Returns whether a blank
    /// line was skipped.
    fn join_continuations(
        &mut self,
        line: &mut String,
        lines: &mut Lines<'_>,
    ) -> Result<bool, ParseError> {
        let mut empty_continuation = false;
        while let Some(raw) = lines.next_line()? {
            let processed = self.process_line(raw, lines.number, false)?;
            if is_comment(raw) {
                continue;
            }
            if processed.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, ended) = self.trim_continuation(processed);
            line.push_str(part);
            if ended {
                break;
            }
        }
        Ok(empty_continuation)
    }
}

/// Tracks the comment lines directly above an instruction; a blank comment
/// (`#` alone) starts over.
fn note_comment(raw: &str, comments: &mut Vec<String>) {
    if !is_comment(raw) {
        return;
    }
    let text = trim_newline(raw).trim_start()[1..].trim();
    if text.is_empty() {
        comments.clear();
    } else {
        comments.push(text.to_string());
    }
}

/// Parses Dockerfile text. No variable expansion happens here.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Lines {
        iter: text.split_inclusive('\n'),
        number: 0,
    };
    let mut state = State {
        directives: DirectiveScanner::default(),
        escape: '\\',
    };
    let mut children: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while let Some(raw) = lines.next_line()? {
        let start_line = lines.number;
        note_comment(raw, &mut comments);
        let first = state.process_line(raw, start_line, true)?;
        let (first, ended) = state.trim_continuation(first);
        if ended && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        if !ended && state.join_continuations(&mut line, &mut lines)? {
            warnings.push(Warning {
                line: lines.number,
                message: format!("Empty continuation line found in: {line}"),
            });
        }

        let mut node = node_from_line(&line, state.escape, 0)
            .map_err(|kind| ParseError::at(start_line, lines.number, kind))?;
        node.prev_comment = std::mem::take(&mut comments);
        if node.can_contain_heredoc() && line.contains("<<") {
            node.heredocs = read_heredocs(&line, &mut lines, start_line)?;
        }
        node.start_line = start_line;
        node.end_line = lines.number;
        children.push(node);
    }

    let (Some(first), Some(last)) = (children.first(), children.last()) else {
        return Err(ParseError::at(
            lines.number,
            lines.number,
            ParseErrorKind::NoInstructions,
        ));
    };
    Ok(Dockerfile {
        start_line: first.start_line,
        end_line: last.end_line,
        escape: state.escape,
        directives: state.directives.found,
        warnings,
        children,
    })
}

/// Reads the bodies of the heredocs named on `line`, in order.
fn read_heredocs(
    line: &str,
    lines: &mut Lines<'_>,
    start_line: usize,
) -> Result<Vec<Heredoc>, ParseError> {
    let mut docs = heredocs_from_line(line)
        .map_err(|e| ParseError::at(start_line, lines.number, ParseErrorKind::Lex(e)))?;
    for doc in &mut docs {
        let mut terminated = false;
        while let Some(raw) = lines.next_line()? {
            let mut candidate = trim_newline(raw);
            if doc.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == doc.name {
                terminated = true;
                break;
            }
            doc.content.push_str(raw);
        }
        if !terminated {
            return Err(ParseError::at(
                start_line,
                lines.number,
                ParseErrorKind::UnterminatedHeredoc(doc.name.clone()),
            ));
        }
    }
    Ok(docs)
}

/// Splits one logical line into instruction, flags and arguments.
fn node_from_line(line: &str, escape: char, depth: usize) -> Result<Node, ParseErrorKind> {
    let (cmd, flags, rest) = lp::split_command(line);
    let lower = cmd.to_ascii_lowercase();
    let args: Args = match lower.as_str() {
        "add" | "copy" | "volume" => lp::parse_maybe_json_to_list(&rest)?,
        "arg" => lp::parse_name_or_name_val(&rest, escape)?,
        "cmd" | "entrypoint" | "run" | "shell" => lp::parse_maybe_json(&rest)?,
        "env" | "label" => lp::parse_name_val(&rest, &lower, escape)?,
        "expose" | "from" => lp::parse_strings_whitespace_delimited(&rest)?,
        "healthcheck" => lp::parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => lp::parse_string(&rest)?,
        "onbuild" => parse_sub_command(&rest, escape, depth)?,
        _ => lp::parse_ignore(&rest)?,
    };
    Ok(Node {
        value: cmd,
        next: args.next,
        json: args.json,
        original: line.to_string(),
        flags,
        ..Node::default()
    })
}

/// ONBUILD wraps one instruction: `(onbuild (run "x"))`.
/// The nesting depth is bounded because a joined logical line has no length
/// limit and `ONBUILD ONBUILD …` would otherwise recurse without bound.
fn parse_sub_command(rest: &str, escape: char, depth: usize) -> Result<Args, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    if depth >= MAX_ONBUILD_NESTING {
        return Err(ParseErrorKind::Invalid(format!(
            "ONBUILD nested more than {MAX_ONBUILD_NESTING} levels deep"
        )));
    }
    let child = node_from_line(rest, escape, depth + 1)?;
    Ok(Args {
        next: vec![Node {
            children: vec![child],
            ..Node::default()
        }],
        json: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::dump;

    fn heredoc(name: &str, content: &str, expand: bool, chomp: bool, fd: u32) -> Heredoc {
        Heredoc {
            name: name.into(),
            file_descriptor: fd,
            expand,
            chomp,
            content: content.into(),
        }
    }

    #[test]
    fn heredoc_bodies_are_attached() {
        let text = "FROM alpine\n\
            RUN <<EMPTY\nEMPTY\n\
            RUN 3<<EMPTY2\nEMPTY2\n\
            RUN \"<<NOHEREDOC\"\n\
            RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\
            RUN <<-UNINDENT\n\tbaz\n\tquux\n\tUNINDENT\n\
            RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\
            RUN <<COMMENT\n# internal comment\necho x # trailing\nCOMMENT\n\
            RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\
            COPY <<X <<Y /dest\nY\nX\nX\nY\n\
            RUN [\"<<EOF\"]\n";
        let file = parse(text).unwrap();
        let docs: Vec<Vec<Heredoc>> = file.children[1..]
            .iter()
            .map(|n| n.heredocs.clone())
            .collect();
        assert_eq!(
            docs,
            vec![
                vec![heredoc("EMPTY", "", true, false, 0)],
                vec![heredoc("EMPTY2", "", true, false, 3)],
                vec![],
                vec![heredoc("INDENT", "\tfoo\n\tbar\n", true, false, 0)],
                vec![heredoc("UNINDENT", "\tbaz\n\tquux\n", true, true, 0)],
                vec![heredoc(
                    "NOEXPAND",
                    "\tdon't expand $NAME\n",
                    false,
                    true,
                    0
                )],
                vec![heredoc(
                    "COMMENT",
                    "# internal comment\necho x # trailing\n",
                    true,
                    false,
                    0
                )],
                vec![heredoc("MOUNT", "echo hello\n", true, false, 0)],
                vec![
                    heredoc("X", "Y\n", true, false, 0),
                    heredoc("Y", "X\n", true, false, 0)
                ],
                vec![],
            ]
        );
        // Heredoc bodies count towards the instruction's line span.
        assert_eq!(
            (file.children[4].start_line, file.children[4].end_line),
            (7, 10)
        );
        assert_eq!(dump::dump_node(&file.children[4]), "run \"<<INDENT\"");
    }

    #[test]
    fn onbuild_heredoc_is_attached_to_the_onbuild_node() {
        let file = parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nCMD x\n").unwrap();
        assert_eq!(file.children[1].heredocs.len(), 1);
        assert_eq!(file.children[1].heredocs[0].content, "echo hi\n");
        assert_eq!(
            dump::dump(&file),
            "(from \"a\")\n(onbuild (run \"<<EOF\"))\n(cmd \"x\")\n"
        );
    }

    #[test]
    fn unterminated_heredoc_names_the_instruction_line() {
        let err = parse("FROM a\n\nRUN <<EOF\necho hi\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.end_line, 4);
        assert_eq!(err.to_string(), "Dockerfile:3: unterminated heredoc EOF");
    }

    #[test]
    fn invalid_heredoc_word_is_an_error() {
        let err = parse("FROM a\nRUN <<EOF\\\"x\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn backtick_escape_directive() {
        let text = "# escape=`\nFROM mcr/windows\nCOPY C:\\src\\ C:\\dst\\\nRUN dir `\n  c:\\\n";
        let file = parse(text).unwrap();
        assert_eq!(file.escape, '`');
        assert_eq!(file.directive("escape"), Some("`"));
        assert_eq!(
            dump::dump(&file),
            "(from \"mcr/windows\")\n(copy \"C:\\\\src\\\\\" \"C:\\\\dst\\\\\")\n(run \"dir   c:\\\\\")\n"
        );
    }

    #[test]
    fn directives_after_an_instruction_are_comments() {
        let file = parse(
            "# syntax=docker/dockerfile:1\n# check=skip=all\nFROM a\n# escape=`\nRUN x \\\n y\n",
        )
        .unwrap();
        assert_eq!(file.escape, '\\');
        assert_eq!(file.directive("syntax"), Some("docker/dockerfile:1"));
        assert_eq!(file.directive("check"), Some("skip=all"));
        assert_eq!(dump::dump_node(&file.children[1]), "run \"x  y\"");
    }

    #[test]
    fn bad_escape_directive_is_an_error() {
        let err = parse("# escape=x\nFROM a\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(matches!(err.kind, ParseErrorKind::InvalidEscapeToken(_)));
    }

    #[test]
    fn lower_case_instructions() {
        let file =
            parse("from node:16 as builder\nrun npm ci\ncopy --from=builder /a /b\n").unwrap();
        assert_eq!(file.children[0].value, "from");
        assert_eq!(file.children[0].args(), ["node:16", "as", "builder"]);
        assert_eq!(
            dump::dump(&file),
            "(from \"node:16\" \"as\" \"builder\")\n(run \"npm ci\")\n(copy [\"--from=builder\"] \"/a\" \"/b\")\n"
        );
    }

    #[test]
    fn crlf_and_bom() {
        let file = parse("\u{feff}FROM a\r\nRUN b \\\r\n  c\r\n").unwrap();
        assert_eq!(dump::dump(&file), "(from \"a\")\n(run \"b   c\")\n");
    }

    #[test]
    fn empty_continuation_lines_warn() {
        let file = parse("FROM a\nRUN x \\\n\n y\n").unwrap();
        assert_eq!(file.warnings.len(), 1);
        assert_eq!(file.warnings[0].line, 4);
        assert!(file.warnings[0].message.contains("Empty continuation line"));
    }

    #[test]
    fn comments_are_collected() {
        let file = parse("FROM a\n# build it\n# fast\nRUN make\n").unwrap();
        assert_eq!(file.children[1].prev_comment, ["build it", "fast"]);
    }

    #[test]
    fn error_lines_span_continuations() {
        let err = parse("FROM a\nENV \\\n  PATH\n").unwrap_err();
        assert_eq!((err.line, err.end_line), (2, 3));
        assert_eq!(err.to_string(), "Dockerfile:2: ENV must have two arguments");
    }

    #[test]
    fn nul_bytes_are_kept_and_quoted() {
        let file = parse("FROM a\0b\nRUN \0 x\n").unwrap();
        assert_eq!(dump::dump(&file), "(from \"a\\x00b\")\n(run \"\\x00 x\")\n");
    }

    #[test]
    fn ten_megabyte_line_is_rejected_with_its_line() {
        let text = format!("FROM a\nRUN {}\n", "x".repeat(10 * 1024 * 1024));
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(matches!(err.kind, ParseErrorKind::LineTooLong { .. }));
    }

    #[test]
    fn ten_megabytes_of_continuations_parse_linearly() {
        let piece = format!("{} \\\n", "a=b".repeat(10_000));
        let text = format!("FROM a\nENV {}x=y\n", piece.repeat(350));
        let start = std::time::Instant::now();
        let file = parse(&text).unwrap();
        assert!(text.len() > 10 * 1024 * 1024);
        assert_eq!(file.children[1].end_line, 352);
        assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    }

    #[test]
    fn nested_onbuild_is_bounded() {
        let text = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(100_000));
        assert!(parse(&text).is_err());
        let text = format!("FROM a\n{}\n", "ONBUILD \\\n".repeat(100_000));
        assert!(parse(&text).is_err());
    }

    #[test]
    fn hostile_json_nesting_is_rejected_cleanly() {
        let text = format!("CMD {}\"a\"{}\n", "[".repeat(30_000), "]".repeat(30_000));
        let file = parse(&text).unwrap();
        // Too deep for a JSON array of strings: kept as shell form.
        assert!(!file.children[0].json);
    }
}
