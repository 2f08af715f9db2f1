//! `.dockerignore`: which build-context paths COPY/ADD must not see, with
//! Docker's pattern rules (moby/patternmatcher): `*` and `?` stay within
//! one path element, `**` spans any number of elements, `!pattern`
//! re-includes, the last matching pattern wins, and a pattern that matches
//! a directory also matches everything below it.

use super::error::{ParseError, ParseErrorKind};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters other than `/`.
    AnyInSegment,
    /// `?`: one character other than `/`.
    OneInSegment,
    /// `**/` (or `**` before more pattern): nothing, or anything ending in `/`.
    AnyDirs,
    /// Trailing `**`: anything.
    AnyAll,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

/// One cleaned pattern line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnorePattern {
    /// The pattern after cleaning, without the leading `!`.
    pub pattern: String,
    /// A `!` line: matching paths are included again.
    pub exclusion: bool,
    tokens: Vec<Token>,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerIgnore {
    pub patterns: Vec<IgnorePattern>,
}

/// Parses `.dockerignore` text. Only lines starting with `#` in the first
/// column are comments; surrounding whitespace is trimmed; patterns are
/// cleaned like Go's `filepath.Clean` and a leading `/` is dropped.
pub fn parse_dockerignore(text: &str) -> Result<DockerIgnore, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let exclusion = pattern.starts_with('!');
        if exclusion {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = if pattern.is_empty() {
            String::new()
        } else {
            clean_path(pattern)
        };
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        let tokens = compile(&cleaned).ok_or_else(|| {
            let line_no = index + 1;
            ParseError::at(
                line_no,
                line_no,
                ParseErrorKind::Invalid(format!(
                    "Illegal exclusion pattern: {:?} in .dockerignore",
                    cleaned
                )),
            )
        })?;
        patterns.push(IgnorePattern {
            pattern: cleaned,
            exclusion,
            tokens,
        });
    }
    Ok(DockerIgnore { patterns })
}

impl DockerIgnore {
    /// Whether `path` (relative to the context root, `/`-separated) is
    /// excluded, either itself or through one of its parent directories.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean_path(path.trim_start_matches('/'));
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => {
                let parent = &path[..i];
                parent
                    .match_indices('/')
                    .map(|(j, _)| &parent[..j])
                    .chain(std::iter::once(parent))
                    .collect()
            }
            None => Vec::new(),
        };
        let mut excluded = false;
        for pattern in &self.patterns {
            // An inclusion only matters once excluded, and vice versa.
            if pattern.exclusion != excluded {
                continue;
            }
            let hit = pattern.matches(&path) || parents.iter().any(|p| pattern.matches(p));
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether any `!` pattern exists; then an excluded directory may still
    /// contain included files and must be walked.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

impl IgnorePattern {
    /// Whole-path match, simulated over a set of pattern positions (no
    /// backtracking, so hostile patterns stay linear in the path length).
    pub fn matches(&self, path: &str) -> bool {
        let n = self.tokens.len();
        let mut at = vec![false; n + 1];
        let mut in_dirs = vec![false; n + 1];
        at[0] = true;
        self.close(&mut at);
        for c in path.chars() {
            let mut next = vec![false; n + 1];
            let mut next_dirs = vec![false; n + 1];
            for (i, token) in self.tokens.iter().enumerate() {
                let active = at[i] || (in_dirs[i] && *token == Token::AnyDirs);
                if !active {
                    continue;
                }
                match token {
                    Token::Literal(l) if *l == c => next[i + 1] = true,
                    Token::Literal(_) => {}
                    Token::AnyInSegment if c != '/' => next[i] = true,
                    Token::AnyInSegment => {}
                    Token::OneInSegment if c != '/' => next[i + 1] = true,
                    Token::OneInSegment => {}
                    Token::AnyAll => next[i] = true,
                    Token::AnyDirs => {
                        next_dirs[i] = true;
                        if c == '/' {
                            next[i + 1] = true;
                        }
                    }
                    Token::Class { negated, items } => {
                        let inside = items.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        if inside != *negated && c != '/' {
                            next[i + 1] = true;
                        }
                    }
                }
            }
            self.close(&mut next);
            if !next.iter().chain(next_dirs.iter()).any(|&s| s) {
                return false;
            }
            at = next;
            in_dirs = next_dirs;
        }
        at[n]
    }

    /// Adds the positions reachable without consuming a character.
    fn close(&self, at: &mut [bool]) {
        for (i, token) in self.tokens.iter().enumerate() {
            if at[i] && matches!(token, Token::AnyInSegment | Token::AnyAll | Token::AnyDirs) {
                at[i + 1] = true;
            }
        }
    }
}

/// Compiles a cleaned pattern; `None` for an unterminated `[` class.
fn compile(pattern: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i >= chars.len() {
                    Token::AnyAll
                } else {
                    Token::AnyDirs
                });
            }
            '*' => tokens.push(Token::AnyInSegment),
            '?' => tokens.push(Token::OneInSegment),
            '\\' => match chars.get(i) {
                Some(&next) => {
                    tokens.push(Token::Literal(next));
                    i += 1;
                }
                None => tokens.push(Token::Literal('\\')),
            },
            '[' => {
                let (token, used) = parse_class(&chars[i..])?;
                tokens.push(token);
                i += used;
            }
            _ => tokens.push(Token::Literal(c)),
        }
    }
    Some(tokens)
}

fn parse_class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('^' | '!'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let start = i;
    while i < chars.len() {
        let mut c = chars[i];
        if c == ']' && i > start {
            return Some((Token::Class { negated, items }, i + 1));
        }
        if c == '\\' {
            i += 1;
            c = *chars.get(i)?;
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']') {
            items.push((c, chars[i + 2]));
            i += 3;
        } else {
            items.push((c, c));
            i += 1;
        }
    }
    None
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        parse_dockerignore(text).unwrap()
    }

    #[test]
    fn cleaning_and_comments() {
        let d = ignore("# comment\n  /foo/./bar/  \n!  baz//qux\n\n #not a comment\n");
        let pats: Vec<(&str, bool)> = d
            .patterns
            .iter()
            .map(|p| (p.pattern.as_str(), p.exclusion))
            .collect();
        assert_eq!(
            pats,
            [
                ("foo/bar", false),
                ("baz/qux", true),
                ("#not a comment", false)
            ]
        );
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(clean_path("/../a/"), "/a");
        assert_eq!(clean_path("./"), ".");
    }

    #[test]
    fn matching_rules() {
        let d = ignore("*.md\n!README.md\nnode_modules\n**/*.pyc\nbuild/**\ntmp?\n");
        assert!(d.is_excluded("CHANGES.md"));
        assert!(!d.is_excluded("README.md"));
        assert!(!d.is_excluded("docs/guide.md"), "* does not cross /");
        assert!(d.is_excluded("node_modules"));
        assert!(d.is_excluded("node_modules/x/y.js"), "parent dir match");
        assert!(d.is_excluded("a.pyc"));
        assert!(d.is_excluded("src/pkg/a.pyc"));
        assert!(d.is_excluded("build/out/bin"));
        assert!(d.is_excluded("tmp1"));
        assert!(!d.is_excluded("tmp12"));
        assert!(!d.is_excluded("src/main.rs"));
    }

    #[test]
    fn last_match_wins_and_reexclusion() {
        let d = ignore("docs\n!docs/keep.txt\ndocs/keep.txt\n");
        assert!(d.is_excluded("docs/keep.txt"));
        let d = ignore("*\n!src\n");
        assert!(!d.is_excluded("src/lib.rs"));
        assert!(d.is_excluded("target"));
        assert!(d.has_exclusions());
    }

    #[test]
    fn classes_and_escapes() {
        let d = ignore("file[0-9].txt\nliteral\\*\n");
        assert!(d.is_excluded("file3.txt"));
        assert!(!d.is_excluded("filex.txt"));
        assert!(d.is_excluded("literal*"));
        assert!(!d.is_excluded("literalx"));
        let err = parse_dockerignore("ok\nbad[\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn hostile_pattern_stays_linear() {
        let d = ignore(&format!("{}b\n", "*a".repeat(200)));
        let path = "a".repeat(50_000);
        assert!(!d.is_excluded(&path));
    }
}
