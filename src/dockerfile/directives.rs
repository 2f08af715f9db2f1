//! Parser directives (`# syntax=…`, `# escape=…`, `# check=…`) at the top of a Dockerfile.
//!
//! BuildKit only honours directives in the leading run of lines that look like
//! `#name=value`; the first line that is anything else (an instruction, a blank
//! line, an ordinary comment, an unknown directive name) ends the run for good.

use super::error::ParseErrorKind;

/// One recognised directive, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased directive name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value with surrounding whitespace removed.
    pub value: String,
    pub line: usize,
}

const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// Tracks the directive run while the parser feeds it physical lines.
#[derive(Debug, Default)]
pub(crate) struct DirectiveScanner {
    done: bool,
    pub(crate) found: Vec<Directive>,
}

impl DirectiveScanner {
    /// Looks at one physical line (newline and leading whitespace already
    /// trimmed). Returns the directive if the line is one.
    pub(crate) fn scan(
        &mut self,
        line: &str,
        line_no: usize,
    ) -> Result<Option<&Directive>, ParseErrorKind> {
        if self.done {
            return Ok(None);
        }
        let Some((name, value)) = split_directive(line) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(ParseErrorKind::DuplicateDirective(name));
        }
        self.found.push(Directive {
            name,
            value: value.to_string(),
            line: line_no,
        });
        Ok(self.found.last())
    }
}

/// Go's `\s` in BuildKit's directive regexp is ASCII whitespace without `\v`.
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// Matches `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| {
            if i == 0 {
                !c.is_ascii_alphabetic()
            } else {
                !c.is_ascii_alphanumeric()
            }
        })
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// Checks an `escape` directive value: BuildKit allows only `\` and `` ` ``.
pub(crate) fn escape_token(value: &str) -> Result<char, ParseErrorKind> {
    match value {
        "\\" => Ok('\\'),
        "`" => Ok('`'),
        other => Err(ParseErrorKind::InvalidEscapeToken(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_directive_forms() {
        assert_eq!(split_directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(split_directive("#escape = `"), Some(("escape", "`")));
        assert_eq!(
            split_directive("# syntax = docker/dockerfile:1  "),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(split_directive("# Comment here."), None);
        assert_eq!(split_directive("# 1x=y"), None);
        assert_eq!(split_directive("# x="), None);
        assert_eq!(split_directive("FROM x"), None);
    }

    #[test]
    fn run_ends_at_first_non_directive() {
        let mut d = DirectiveScanner::default();
        assert!(d.scan("# syntax=a", 1).unwrap().is_some());
        assert!(d.scan("# foo=bar", 2).unwrap().is_none());
        assert!(d.scan("# escape=`", 3).unwrap().is_none());
        assert_eq!(d.found.len(), 1);
    }

    #[test]
    fn duplicate_directive_is_an_error() {
        let mut d = DirectiveScanner::default();
        d.scan("# escape=`", 1).unwrap();
        assert_eq!(
            d.scan("# ESCAPE=\\", 2).unwrap_err(),
            ParseErrorKind::DuplicateDirective("escape".into())
        );
    }

    #[test]
    fn escape_token_must_be_backslash_or_backtick() {
        assert_eq!(escape_token("`"), Ok('`'));
        assert!(escape_token("x").is_err());
    }
}
