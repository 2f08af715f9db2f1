//! Shell-word processing with BuildKit's semantics: quote removal, escapes with
//! the Dockerfile's escape character, `$VAR`/`${VAR}` expansion with the
//! `-`, `+`, `?` operators (with and without `:`), the `#`, `##`, `%`, `%%`,
//! `/` and `//` pattern operators, and word splitting after expansion.
//!
//! It is not a shell: no command substitution, no arithmetic, no globbing of
//! file names. `${VAR:=x}` is refused because a Dockerfile word cannot assign.

use super::go_quote::go_quote;

/// Looks a variable up; `None` means unset, which differs from set-but-empty
/// for `${VAR-x}`, `${VAR+x}` and `${VAR?x}`.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A word that cannot be expanded, e.g. an unterminated quote or `${VAR:?msg}`
/// with VAR empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {message}", go_quote(.word))]
pub struct ExpandError {
    /// The whole word being processed.
    pub word: String,
    pub message: String,
}

/// Substitutions nested deeper than this are refused so hostile input cannot
/// exhaust the stack; real Dockerfiles nest two or three levels.
pub const MAX_NESTING: usize = 64;

/// Word processor. The options other than `escape` exist for the heredoc
/// detector, which must see a line's words with quotes and escapes intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    pub escape: char,
    /// Keep the quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written instead of expanding to "".
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters (for heredoc bodies, where only
    /// variables and escapes are processed).
    pub skip_process_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Expands `word` as one string (BuildKit's `ProcessWord`): whitespace
    /// between words is kept.
    pub fn process_word(&self, word: &str, env: EnvLookup<'_>) -> Result<String, ExpandError> {
        self.run(word, env).map(|(joined, _)| joined)
    }

    /// Expands `word` and splits the result into words (BuildKit's
    /// `ProcessWords`): unquoted whitespace, including whitespace that came
    /// from a variable's value, separates words.
    pub fn process_words(
        &self,
        word: &str,
        env: EnvLookup<'_>,
    ) -> Result<Vec<String>, ExpandError> {
        self.run(word, env).map(|(_, words)| words)
    }

    fn run(&self, word: &str, env: EnvLookup<'_>) -> Result<(String, Vec<String>), ExpandError> {
        let mut state = State {
            lexer: *self,
            src: word,
            pos: 0,
            depth: 0,
            env,
        };
        let raw = self.raw_escapes;
        state
            .process_until(None, raw)
            .map_err(|message| ExpandError {
                word: word.to_string(),
                message,
            })
    }
}

/// Expands one word with the given escape character (no word splitting).
pub fn expand_word(word: &str, env: EnvLookup<'_>, escape: char) -> Result<String, ExpandError> {
    Lexer::new(escape).process_word(word, env)
}

/// Expands and splits into words.
pub fn expand_words(
    word: &str,
    env: EnvLookup<'_>,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(escape).process_words(word, env)
}

const MISSING_BRACE: &str = "syntax error: missing '}'";
const BAD_SUBSTITUTION: &str = "syntax error: bad substitution";

struct State<'s, 'e> {
    lexer: Lexer,
    src: &'s str,
    pos: usize,
    depth: usize,
    env: EnvLookup<'e>,
}

/// Collects split words. Quirk kept from BuildKit: a word made only of empty
/// quotes (`""`) produces no word.
#[derive(Default)]
struct Words {
    current: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.current.is_empty() {
                self.words.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.current.push(ch);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.words.push(self.current);
        }
        self.words
    }
}

impl State<'_, '_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// Processes until `stop` (consumed) or the end of input. Returns the
    /// joined text and the split words.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = self.lexer.raw_escapes;
        self.lexer.raw_escapes = raw_escapes;
        let result = self.process_until_inner(stop);
        self.lexer.raw_escapes = saved;
        result
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '\'' | '"' if !self.lexer.skip_process_quotes => {
                    let text = if ch == '\'' {
                        self.single_quoted()?
                    } else {
                        self.double_quoted()?
                    };
                    result.push_str(&text);
                    words.add_raw_str(&text);
                }
                '$' => {
                    let text = self.dollar()?;
                    result.push_str(&text);
                    words.add_str(&text);
                }
                _ => {
                    self.next();
                    if ch == self.lexer.escape {
                        if self.lexer.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape at the very end of the word is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// Everything up to the next `'` is literal; nothing escapes a `'`.
    fn single_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        self.next();
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// Inside `"…"` only `$` expands, and the escape character escapes only
    /// `"`, `$` and itself; before anything else it stays literal.
    fn double_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        self.next();
        if self.lexer.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(ch) => {
                    self.next();
                    if ch != self.lexer.escape {
                        out.push(ch);
                        continue;
                    }
                    match self.peek() {
                        Some(next) if next == '"' || next == '$' || next == self.lexer.escape => {
                            self.next();
                            if self.lexer.raw_escapes {
                                out.push(ch);
                            }
                            out.push(next);
                        }
                        // Escape right before the end: dropped; the loop then
                        // reports the missing closing quote.
                        None => {}
                        Some(_) => out.push(ch),
                    }
                }
            }
        }
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "variable substitutions nested deeper than {MAX_NESTING} levels"
            ));
        }
        let result = self.dollar_inner();
        self.depth -= 1;
        result
    }

    fn dollar_inner(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err(BAD_SUBSTITUTION.into()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(op) = self.next() else {
            return Err(MISSING_BRACE.into());
        };
        match op {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                let Some(op) = self.next() else {
                    return Err(MISSING_BRACE.into());
                };
                self.default_operator(&name, op, true)
            }
            '+' | '-' | '?' => self.default_operator(&name, op, false),
            '#' | '%' => self.trim_operator(&name, op),
            '/' => self.replace_operator(&name),
            other => Err(format!("unsupported modifier ({other}) in substitution")),
        }
    }

    /// Reads the operand up to `}`; running out of input is a missing brace.
    fn operand(&mut self, stop: char, raw_escapes: bool) -> Result<String, String> {
        match self.process_until(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(MISSING_BRACE.into()),
            Err(e) => Err(e),
        }
    }

    /// `${name-w}`, `${name+w}`, `${name?w}` and their `:` forms, where the
    /// `:` makes an empty value count as unset.
    fn default_operator(&mut self, name: &str, op: char, colon: bool) -> Result<String, String> {
        let word = self.operand('}', false)?;
        let value = self.lookup(name);
        let spelled = if colon {
            format!(":{op}")
        } else {
            op.to_string()
        };
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        let missing = match &value {
            None => true,
            Some(v) => colon && v.is_empty(),
        };
        match op {
            '-' if missing => Ok(word),
            '-' => Ok(value.unwrap_or_default()),
            '+' if missing => Ok(String::new()),
            '+' => Ok(word),
            '?' if missing => {
                let default = if value.is_none() {
                    "is not allowed to be unset"
                } else {
                    "is not allowed to be empty"
                };
                let message = if word.is_empty() { default } else { &word };
                Err(format!("{name}: {message}"))
            }
            '?' => Ok(value.unwrap_or_default()),
            _ => Err(format!("unsupported modifier ({spelled}) in substitution")),
        }
    }

    /// `${name#pat}`, `${name##pat}`, `${name%pat}`, `${name%%pat}`.
    fn trim_operator(&mut self, name: &str, op: char) -> Result<String, String> {
        let word = self.operand('}', true)?;
        let value = self.lookup(name);
        let Some(value) = value else {
            if self.lexer.skip_unset_env {
                return Ok(format!("${{{name}{op}{word}}}"));
            }
            return Ok(String::new());
        };
        let (longest, pattern) = match word.strip_prefix(op) {
            Some(rest) => (true, rest),
            None => (false, word.as_str()),
        };
        let glob = Glob::compile(pattern, self.lexer.escape);
        Ok(if op == '#' {
            match glob.prefix_match(&value, longest) {
                Some(end) => value[end..].to_string(),
                None => value,
            }
        } else {
            match glob.suffix_match(&value, longest) {
                Some(start) => value[..start].to_string(),
                None => value,
            }
        })
    }

    /// `${name/pat/repl}` replaces the first match, `${name//pat/repl}` all.
    fn replace_operator(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = self.operand('/', true)?;
        let replacement = self.operand('}', true)?;
        let Some(value) = self.lookup(name) else {
            if self.lexer.skip_unset_env {
                let slashes = if all { "//" } else { "/" };
                return Ok(format!("${{{name}{slashes}{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let glob = Glob::compile(&pattern, self.lexer.escape);
        glob.replace(&value, &replacement, all)
    }

    /// A variable name: letters, digits and `_`; or a run of digits
    /// (positional); or one special parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobToken {
    Literal(char),
    AnyChar,
    AnyString,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

/// A shell pattern as used by `#`, `%` and `/`, matched without backtracking
/// (a set-of-states simulation), so hostile patterns stay linear per attempt.
struct Glob {
    tokens: Vec<GlobToken>,
    /// Characters stepped through so far; `/` and `//` try every start
    /// position, so their work is capped at [`MAX_PATTERN_WORK`].
    work: std::cell::Cell<usize>,
}

/// Character-steps (times pattern length) a `${VAR/pat/repl}` may take.
const MAX_PATTERN_WORK: usize = 20_000_000;

impl Glob {
    fn compile(pattern: &str, escape: char) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            if c == escape {
                if let Some(&next) = chars.get(i) {
                    tokens.push(GlobToken::Literal(next));
                    i += 1;
                } else {
                    tokens.push(GlobToken::Literal(c));
                }
                continue;
            }
            match c {
                '*' => {
                    if tokens.last() != Some(&GlobToken::AnyString) {
                        tokens.push(GlobToken::AnyString);
                    }
                }
                '?' => tokens.push(GlobToken::AnyChar),
                '[' => match parse_class(&chars[i..]) {
                    Some((token, used)) => {
                        tokens.push(token);
                        i += used;
                    }
                    None => tokens.push(GlobToken::Literal('[')),
                },
                _ => tokens.push(GlobToken::Literal(c)),
            }
        }
        Glob {
            tokens,
            work: std::cell::Cell::new(0),
        }
    }

    fn reversed(&self) -> Glob {
        Glob {
            tokens: self.tokens.iter().rev().cloned().collect(),
            work: std::cell::Cell::new(0),
        }
    }

    /// States reachable without consuming input (a `*` may match nothing).
    fn close(&self, states: &mut [bool]) {
        for i in 0..self.tokens.len() {
            if states[i] && self.tokens[i] == GlobToken::AnyString {
                states[i + 1] = true;
            }
        }
    }

    fn step(&self, states: &[bool], ch: char) -> Vec<bool> {
        let mut next = vec![false; states.len()];
        for (i, token) in self.tokens.iter().enumerate() {
            if !states[i] {
                continue;
            }
            match token {
                GlobToken::AnyString => next[i] = true,
                GlobToken::AnyChar => next[i + 1] = true,
                GlobToken::Literal(l) if *l == ch => next[i + 1] = true,
                GlobToken::Class { negated, items } => {
                    let inside = items.iter().any(|&(lo, hi)| lo <= ch && ch <= hi);
                    if inside != *negated {
                        next[i + 1] = true;
                    }
                }
                GlobToken::Literal(_) => {}
            }
        }
        self.close(&mut next);
        next
    }

    /// Byte lengths of the prefixes of `chars` the whole pattern matches, in
    /// increasing order; stops early once `first_only` found one.
    fn matching_prefix_ends(&self, text: &str, first_only: bool) -> Vec<usize> {
        let accept = self.tokens.len();
        let mut states = vec![false; accept + 1];
        states[0] = true;
        self.close(&mut states);
        let mut ends = Vec::new();
        if states[accept] {
            ends.push(0);
            if first_only {
                return ends;
            }
        }
        for (offset, ch) in text.char_indices() {
            self.work.set(self.work.get() + accept + 1);
            states = self.step(&states, ch);
            if !states.iter().any(|&s| s) {
                break;
            }
            if states[accept] {
                ends.push(offset + ch.len_utf8());
                if first_only {
                    break;
                }
            }
        }
        ends
    }

    fn prefix_match(&self, text: &str, longest: bool) -> Option<usize> {
        let ends = self.matching_prefix_ends(text, !longest);
        if longest {
            ends.last().copied()
        } else {
            ends.first().copied()
        }
    }

    /// Start (byte offset) of the shortest or longest matching suffix.
    fn suffix_match(&self, text: &str, longest: bool) -> Option<usize> {
        let reversed_text: String = text.chars().rev().collect();
        let len = self.reversed().prefix_match(&reversed_text, longest)?;
        Some(text.len() - len)
    }

    fn replace(&self, text: &str, replacement: &str, all: bool) -> Result<String, String> {
        let mut out = String::new();
        let mut rest_start = 0;
        let mut pos = 0;
        while pos <= text.len() {
            if self.work.get() > MAX_PATTERN_WORK {
                return Err(format!(
                    "pattern substitution on a {}-byte value is too expensive",
                    text.len()
                ));
            }
            let found = self.prefix_match(&text[pos..], true);
            match found {
                Some(len) if len > 0 || self.tokens.is_empty() => {
                    if self.tokens.is_empty() {
                        // An empty pattern matches nothing useful.
                        break;
                    }
                    out.push_str(&text[rest_start..pos]);
                    out.push_str(replacement);
                    pos += len;
                    rest_start = pos;
                    if !all {
                        break;
                    }
                }
                _ => match text[pos..].chars().next() {
                    Some(c) => pos += c.len_utf8(),
                    None => break,
                },
            }
        }
        out.push_str(&text[rest_start..]);
        Ok(out)
    }
}

/// Parses the inside of `[...]` (after the `[`); returns the token and how
/// many chars it used including the closing `]`.
fn parse_class(chars: &[char]) -> Option<(GlobToken, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((GlobToken::Class { negated, items }, i + 1));
        }
        first = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PWD" => Some("/home".into()),
            "EMPTY" => Some(String::new()),
            "V" => Some("1.2.3-alpine.tar.gz".into()),
            "SP" => Some("a  b".into()),
            _ => None,
        }
    }

    fn word(s: &str) -> Result<String, ExpandError> {
        expand_word(s, &env, '\\')
    }

    #[test]
    fn basic_forms() {
        assert_eq!(word("$PWD/x").unwrap(), "/home/x");
        assert_eq!(word("${PWD}x").unwrap(), "/homex");
        assert_eq!(word("${NOPE-d}${EMPTY-d}").unwrap(), "d");
        assert_eq!(word("${NOPE:-d}${EMPTY:-e}").unwrap(), "de");
        assert_eq!(word("${PWD+s}${EMPTY+t}${NOPE+u}").unwrap(), "st");
        assert_eq!(word("${PWD:+s}${EMPTY:+t}").unwrap(), "s");
        assert_eq!(word("${EMPTY?}").unwrap(), "");
    }

    #[test]
    fn error_messages_follow_buildkit() {
        assert_eq!(
            word("${NOPE?}").unwrap_err().to_string(),
            "failed to process \"${NOPE?}\": NOPE: is not allowed to be unset"
        );
        assert_eq!(
            word("${EMPTY:?must be set}").unwrap_err().message,
            "EMPTY: must be set"
        );
        assert_eq!(
            word("${PWD:=x}").unwrap_err().message,
            "unsupported modifier (:=) in substitution"
        );
        assert_eq!(word("${").unwrap_err().message, MISSING_BRACE);
        assert_eq!(word("${}").unwrap_err().message, BAD_SUBSTITUTION);
        assert_eq!(
            word("'abc").unwrap_err().message,
            "unexpected end of statement while looking for matching single-quote"
        );
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(expand_word("a`$PWD", &env, '`').unwrap(), "a$PWD");
        assert_eq!(expand_word("C:\\dir", &env, '`').unwrap(), "C:\\dir");
        assert_eq!(expand_word("\"a`\"b\"", &env, '`').unwrap(), "a\"b");
    }

    #[test]
    fn word_splitting() {
        assert_eq!(
            expand_words("x${SP}y \"$SP\"", &env, '\\').unwrap(),
            ["xa", "by", "a  b"]
        );
        assert!(expand_words("\"\"", &env, '\\').unwrap().is_empty());
    }

    #[test]
    fn pattern_operators() {
        assert_eq!(word("${V#*.}").unwrap(), "2.3-alpine.tar.gz");
        assert_eq!(word("${V##*.}").unwrap(), "gz");
        assert_eq!(word("${V%.*}").unwrap(), "1.2.3-alpine.tar");
        assert_eq!(word("${V%%.*}").unwrap(), "1");
        assert_eq!(word("${V%%-[a-z]*}").unwrap(), "1.2.3");
        assert_eq!(word("${V/./_}").unwrap(), "1_2.3-alpine.tar.gz");
        assert_eq!(word("${V//./_}").unwrap(), "1_2_3-alpine_tar_gz");
        assert_eq!(word("${V#\\*}").unwrap(), "1.2.3-alpine.tar.gz");
        assert_eq!(word("${NOPE#x}").unwrap(), "");
    }

    #[test]
    fn hostile_replace_is_capped() {
        let value = "a".repeat(200_000);
        let lookup = |n: &str| (n == "X").then(|| value.clone());
        let err = expand_word("${X//*a*b/c}", &lookup, '\\').unwrap_err();
        assert!(err.message.contains("too expensive"), "{}", err.message);
        let small = "ab".repeat(100);
        let lookup = |n: &str| (n == "X").then(|| small.clone());
        assert_eq!(expand_word("${X//a*b/c}", &lookup, '\\').unwrap(), "c");
    }

    #[test]
    fn heredoc_body_mode_keeps_quotes() {
        let lexer = Lexer {
            skip_process_quotes: true,
            ..Lexer::new('\\')
        };
        assert_eq!(
            lexer
                .process_word("echo \"$PWD\" 'x' \\$PWD\n", &env)
                .unwrap(),
            "echo \"/home\" 'x' $PWD\n"
        );
    }

    #[test]
    fn skip_unset_keeps_references() {
        let lexer = Lexer {
            skip_unset_env: true,
            raw_quotes: true,
            ..Lexer::new('\\')
        };
        assert_eq!(
            lexer.process_word("$NOPE ${NOPE:-x} '$PWD'", &env).unwrap(),
            "$NOPE ${NOPE:-x} '$PWD'"
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let depth = 100_000;
        let text = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
        let err = word(&text).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{}", err.message);
        let ok = format!("{}x{}", "${a:-".repeat(30), "}".repeat(30));
        assert_eq!(word(&ok).unwrap(), "x");
    }

    #[test]
    fn nul_bytes_are_ordinary_characters() {
        assert_eq!(word("a\0b$PWD").unwrap(), "a\0b/home");
    }

    #[test]
    fn hostile_pattern_is_linear() {
        let value = "a".repeat(20_000);
        let lookup = |n: &str| (n == "X").then(|| value.clone());
        let out = expand_word("${X##*a*a*a*a*b}", &lookup, '\\').unwrap();
        assert_eq!(out.len(), 20_000);
    }
}
