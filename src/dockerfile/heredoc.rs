//! Heredocs (`RUN <<EOF`, `COPY <<-"EOT" /dst`): finding the `<<WORD`
//! markers on an instruction line. The parser then reads the bodies.

use super::expand::{ExpandError, Lexer};

/// One heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word with quotes removed.
    pub name: String,
    /// `3<<EOF` gives 3; 0 when not given.
    pub file_descriptor: u32,
    /// False when any part of the terminator word was quoted, which turns off
    /// variable expansion in the body (as in POSIX shells).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines and the terminator.
    pub chomp: bool,
    /// The body exactly as written, every line with its line ending.
    pub content: String,
}

impl Heredoc {
    /// The body with leading tabs removed when `chomp` is set.
    pub fn chomped_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Finds heredoc markers among the words of `line` (the whole instruction
/// line, instruction name included).
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ExpandError> {
    let lexer = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    // A line that does not lex has no heredocs (BuildKit ignores the error).
    let words = lexer.process_words(line, &no_env).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Parses one word of the form `[digits]<<[-]WORD`.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ExpandError> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let file_descriptor = word[..digits].parse().unwrap_or(0);

    let plain = Lexer {
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    let words = plain.process_words(rest, &no_env)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw_words = Lexer {
        raw_quotes: true,
        ..plain
    }
    .process_words(rest, &no_env)?;
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = raw_words.len() == 1 && quotes(name) == quotes(&raw_words[0]);
    Ok(Some(Heredoc {
        name: name.clone(),
        file_descriptor,
        expand,
        chomp,
        content: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_forms() {
        let h = parse_heredoc("<<EOF").unwrap().unwrap();
        assert_eq!(
            (h.name.as_str(), h.expand, h.chomp, h.file_descriptor),
            ("EOF", true, false, 0)
        );
        let h = parse_heredoc("<<-'EOT'").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.chomp), ("EOT", false, true));
        let h = parse_heredoc("3<<\"E\"OF").unwrap().unwrap();
        assert_eq!(
            (h.name.as_str(), h.expand, h.file_descriptor),
            ("EOF", false, 3)
        );
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("a<<EOF").unwrap().is_none());
        assert!(parse_heredoc("<<<EOF").unwrap().is_none());
    }

    #[test]
    fn several_markers_on_one_line() {
        let docs = heredocs_from_line("COPY <<A <<'B' /dst/").unwrap();
        let names: Vec<_> = docs.iter().map(|d| (d.name.as_str(), d.expand)).collect();
        assert_eq!(names, [("A", true), ("B", false)]);
    }

    #[test]
    fn chomp_strips_leading_tabs() {
        let h = Heredoc {
            name: "EOF".into(),
            file_descriptor: 0,
            expand: true,
            chomp: true,
            content: "\t\techo hi\n\tx\n".into(),
        };
        assert_eq!(h.chomped_content(), "echo hi\nx\n");
    }
}
