//! deb822 control-file syntax: the format of Release, Packages, a .deb's
//! `control` file and dpkg's `status` database.
//!
//! Parsing borrows from the input: a field value is a slice of the original
//! text, so a 100 MB Packages file is split without copying it. A value keeps
//! its continuation lines exactly as written (newline plus leading space), so
//! writing a paragraph back reproduces multi-line fields such as
//! `Description` or `Conffiles` byte for byte.

use std::fmt;

/// A syntax error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ControlError {
    pub line: usize,
    pub msg: String,
}

/// One paragraph (stanza): ordered fields, names compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paragraph<'a> {
    /// 1-based line of the paragraph's first field, for error messages.
    pub line: usize,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    /// The raw value of a field: first line trimmed, continuation lines kept.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// Fields in file order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.fields.iter().copied()
    }

    /// The continuation lines of a multi-line field (e.g. `SHA256`,
    /// `Conffiles`), each trimmed, skipping the (usually empty) first line.
    pub fn lines_of(&self, name: &str) -> impl Iterator<Item = &'a str> {
        self.get(name)
            .unwrap_or("")
            .split('\n')
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends a field; used by writers that build paragraphs.
    pub fn push(&mut self, name: &'a str, value: &'a str) {
        self.fields.push((name, value));
    }
}

impl fmt::Display for Paragraph<'_> {
    /// Writes the paragraph in deb822 form, ending with a newline (no blank
    /// separator line: callers add it between paragraphs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.fields {
            if value.starts_with('\n') || value.is_empty() {
                writeln!(f, "{name}:{value}")?;
            } else {
                writeln!(f, "{name}: {value}")?;
            }
        }
        Ok(())
    }
}

/// Iterator over the paragraphs of a deb822 document.
pub struct Paragraphs<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

/// Splits `text` into paragraphs. Comment lines (`#` in column 0) are
/// skipped, as dpkg does for control files; they never occur in archive
/// indexes.
pub fn paragraphs(text: &str) -> Paragraphs<'_> {
    Paragraphs {
        text,
        pos: 0,
        line: 0,
    }
}

/// Parses exactly one paragraph (a .deb `control` file); extra paragraphs
/// are an error.
pub fn single_paragraph(text: &str) -> Result<Paragraph<'_>, ControlError> {
    let mut it = paragraphs(text);
    let first = it.next().transpose()?.ok_or(ControlError {
        line: 1,
        msg: "no fields".into(),
    })?;
    if let Some(next) = it.next() {
        let line = next.map(|p| p.line).unwrap_or_else(|e| e.line);
        return Err(ControlError {
            line,
            msg: "more than one paragraph".into(),
        });
    }
    Ok(first)
}

impl<'a> Paragraphs<'a> {
    /// Next line (without its newline) and the byte offset just past it.
    fn next_line(&mut self) -> Option<(&'a str, usize)> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let (line, advance) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        let start = self.pos;
        self.pos += advance;
        self.line += 1;
        Some((line.strip_suffix('\r').unwrap_or(line), start))
    }

    fn peek_is_continuation(&self) -> bool {
        matches!(self.text.as_bytes().get(self.pos), Some(b' ' | b'\t'))
    }
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, ControlError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Archive stanzas have 15–25 fields; sizing once avoids four
        // reallocations per stanza on a 60k-stanza Packages file.
        let mut para = Paragraph {
            line: 0,
            fields: Vec::with_capacity(24),
        };
        loop {
            let Some((line, start)) = self.next_line() else {
                return (!para.is_empty()).then_some(Ok(para));
            };
            if line.trim().is_empty() {
                if para.is_empty() {
                    continue;
                }
                return Some(Ok(para));
            }
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                return Some(Err(ControlError {
                    line: self.line,
                    msg: "continuation line outside a field".into(),
                }));
            }
            let Some(colon) = line.find(':') else {
                return Some(Err(ControlError {
                    line: self.line,
                    msg: format!("expected 'Field: value', found {line:?}"),
                }));
            };
            let name = &line[..colon];
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Some(Err(ControlError {
                    line: self.line,
                    msg: format!("invalid field name {name:?}"),
                }));
            }
            if para.is_empty() {
                para.line = self.line;
            }
            if para.get(name).is_some() {
                return Some(Err(ControlError {
                    line: self.line,
                    msg: format!("duplicate field {name:?}"),
                }));
            }
            // The value runs from after the colon to the end of the last
            // continuation line; it is one contiguous slice of the input.
            let value_start = start + colon + 1;
            let mut value_end = start + line.len();
            while self.peek_is_continuation() {
                let (cont, cont_start) = self.next_line().expect("peeked");
                value_end = cont_start + cont.len();
            }
            let value = self.text[value_start..value_end]
                .trim_start_matches([' ', '\t'])
                .trim_end();
            para.push(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paragraphs_and_keeps_continuations() {
        let text = "Package: a\nVersion: 1\nDescription: short\n long line\n .\n more\n\n\nPackage: b\nConffiles:\n /etc/x 0123\n";
        let paras: Vec<_> = paragraphs(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(paras.len(), 2);
        assert_eq!(paras[0].get("package"), Some("a"));
        assert_eq!(
            paras[0].get("Description"),
            Some("short\n long line\n .\n more")
        );
        assert_eq!(paras[1].line, 9);
        assert_eq!(
            paras[1].lines_of("Conffiles").collect::<Vec<_>>(),
            ["/etc/x 0123"]
        );
        assert_eq!(
            paras[1].to_string(),
            "Package: b\nConffiles:\n /etc/x 0123\n"
        );
        assert_eq!(
            paras[0].to_string(),
            "Package: a\nVersion: 1\nDescription: short\n long line\n .\n more\n"
        );
    }

    #[test]
    fn rejects_malformed_lines_with_line_numbers() {
        let err = paragraphs("Package: a\nno colon here\n")
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert_eq!(err.line, 2);
        let err = paragraphs(" leading\n")
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert_eq!(err.line, 1);
        let err = paragraphs("A: 1\na: 2\n")
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(err.msg.contains("duplicate"));
    }

    #[test]
    fn single_paragraph_rejects_two() {
        assert!(single_paragraph("A: 1\n\nB: 2\n").is_err());
        assert!(single_paragraph("\n\n").is_err());
        assert_eq!(single_paragraph("A: 1\r\n").unwrap().get("a"), Some("1"));
    }
}
