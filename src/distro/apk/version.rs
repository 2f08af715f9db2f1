//! apk version strings: validity, ordering and constraint matching exactly as
//! apk-tools 3 (`apk_version_validate`, `apk_version_compare`, fuzzy `~`).
//!
//! Grammar: `digit{.digit}...{letter}{_suffix{#}}...{~hash}{-r#}`.
//! Invalid versions still get a total order: once the token streams diverge on an
//! invalid token the remaining text is compared as a plain string, as apk does.

use std::cmp::Ordering;

/// Token kinds in the order they may appear; the ordinal matters for comparison:
/// "the version that runs out first is smaller", except for pre-release suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

const PRE_SUFFIXES: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

/// Pre-release suffixes are negative so they sort before the bare version.
fn suffix_value(s: &[u8]) -> Option<i32> {
    if let Some(i) = PRE_SUFFIXES.iter().position(|p| p.as_bytes() == s) {
        return Some(i as i32 - PRE_SUFFIXES.len() as i32);
    }
    POST_SUFFIXES
        .iter()
        .position(|p| p.as_bytes() == s)
        .map(|i| i as i32)
}

struct Lexer<'a> {
    rest: &'a [u8],
    token: Token,
    value: &'a [u8],
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        let mut lx = Lexer {
            rest: s.as_bytes(),
            token: Token::InitialDigit,
            value: &[],
        };
        lx.parse_value();
        lx
    }

    fn advance(&mut self) {
        self.next_kind();
        self.parse_value();
    }

    /// Decides the kind of the next token from its leading separator.
    fn next_kind(&mut self) {
        let t = self.token;
        let Some(&c) = self.rest.first() else {
            self.token = Token::End;
            return;
        };
        self.token = match c {
            b'a'..=b'z' if t <= Token::Digit => Token::Letter,
            b'0'..=b'9' if t == Token::Suffix => Token::SuffixNo,
            b'.' if t <= Token::Digit => {
                self.rest = &self.rest[1..];
                Token::Digit
            }
            b'_' if t <= Token::SuffixNo => {
                self.rest = &self.rest[1..];
                Token::Suffix
            }
            b'~' if t < Token::CommitHash => {
                self.rest = &self.rest[1..];
                Token::CommitHash
            }
            b'-' if t < Token::RevisionNo && self.rest.get(1) == Some(&b'r') => {
                self.rest = &self.rest[2..];
                Token::RevisionNo
            }
            _ => Token::Invalid,
        };
    }

    fn parse_value(&mut self) {
        let span = |pred: fn(&u8) -> bool, s: &[u8]| s.iter().take_while(|c| pred(c)).count();
        let n = match self.token {
            Token::InitialDigit | Token::Digit | Token::SuffixNo | Token::RevisionNo => {
                span(u8::is_ascii_digit, self.rest)
            }
            Token::Letter => 1,
            Token::Suffix => {
                let n = span(u8::is_ascii_lowercase, self.rest);
                if suffix_value(&self.rest[..n]).is_none() {
                    0
                } else {
                    n
                }
            }
            Token::CommitHash => span(u8::is_ascii_hexdigit, self.rest),
            Token::End => {
                self.value = &[];
                return;
            }
            Token::Invalid => {
                // The rest of the string is the value: invalid tails sort as strings.
                self.value = self.rest;
                self.rest = &[];
                return;
            }
        };
        if n == 0 {
            self.token = Token::Invalid;
            self.value = self.rest;
            self.rest = &[];
            return;
        }
        self.value = &self.rest[..n];
        self.rest = &self.rest[n..];
    }
}

/// Numeric comparison of digit strings of any length (no overflow).
fn cmp_numeric(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_token(kind: Token, a: &[u8], b: &[u8]) -> Ordering {
    match kind {
        // Gentoo rule: a leading zero in a later component means string order.
        Token::Digit if a.first() == Some(&b'0') || b.first() == Some(&b'0') => a.cmp(b),
        Token::InitialDigit | Token::Digit | Token::SuffixNo | Token::RevisionNo => {
            cmp_numeric(a, b)
        }
        Token::Suffix => suffix_value(a).cmp(&suffix_value(b)),
        _ => a.cmp(b),
    }
}

/// `true` if `v` is a well-formed apk version.
pub fn is_valid(v: &str) -> bool {
    let mut lx = Lexer::new(v);
    loop {
        match lx.token {
            Token::End => return true,
            Token::Invalid => return false,
            _ => lx.advance(),
        }
    }
}

fn compare_impl(a: &str, b: &str, fuzzy: bool) -> Ordering {
    let (mut ta, mut tb) = (Lexer::new(a), Lexer::new(b));
    while ta.token == tb.token {
        let r = cmp_token(ta.token, ta.value, tb.value);
        if r != Ordering::Equal || matches!(ta.token, Token::End | Token::Invalid) {
            return r;
        }
        ta.advance();
        tb.advance();
    }
    // Fuzzy matching only compares as far as the pattern (b) goes.
    if fuzzy && tb.token == Token::End {
        return Ordering::Equal;
    }
    let pre_release =
        |lx: &Lexer| lx.token == Token::Suffix && suffix_value(lx.value).is_some_and(|v| v < 0);
    if pre_release(&ta) {
        return Ordering::Less;
    }
    if pre_release(&tb) {
        return Ordering::Greater;
    }
    // The version that ends (higher token ordinal) first is the smaller one.
    tb.token.cmp(&ta.token)
}

/// Total order of apk versions (`apk_version_compare`).
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_impl(a, b, false)
}

/// A version constraint operator as written in dependencies (`<`, `<=`, `=`,
/// `>=`, `>`, `~`, `<~`, `>~`) or the empty "any version".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VersionOp {
    pub less: bool,
    pub equal: bool,
    pub greater: bool,
    pub fuzzy: bool,
}

impl VersionOp {
    pub const ANY: VersionOp = VersionOp {
        less: true,
        equal: true,
        greater: true,
        fuzzy: false,
    };

    /// Parses an operator made of `<`, `>`, `=`, `~`; `None` for anything else.
    pub fn parse(s: &str) -> Option<VersionOp> {
        if s.is_empty() {
            return None;
        }
        let mut op = VersionOp::default();
        for c in s.chars() {
            match c {
                '<' => op.less = true,
                '>' => op.greater = true,
                '=' => op.equal = true,
                // A fuzzy match is an equality up to the length of the pattern.
                '~' => {
                    op.fuzzy = true;
                    op.equal = true
                }
                _ => return None,
            }
        }
        Some(op)
    }

    pub fn is_any(&self) -> bool {
        self.less && self.equal && self.greater
    }

    fn accepts(&self, ord: Ordering) -> bool {
        match ord {
            Ordering::Less => self.less,
            Ordering::Equal => self.equal,
            Ordering::Greater => self.greater,
        }
    }
}

impl std::fmt::Display for VersionOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match (self.less, self.equal, self.greater, self.fuzzy) {
            (true, true, true, _) => "",
            (true, _, false, true) => "<~",
            (false, _, true, true) => ">~",
            (_, _, _, true) => "~",
            (true, false, false, _) => "<",
            (true, true, false, _) => "<=",
            (false, true, false, _) => "=",
            (false, true, true, _) => ">=",
            (false, false, true, _) => ">",
            _ => "?",
        };
        f.write_str(s)
    }
}

/// `apk_version_match`: does version `a` stand in relation `op` to `b`?
pub fn matches(a: &str, op: VersionOp, b: &str) -> bool {
    op.accepts(compare_impl(a, b, op.fuzzy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_suffixes_and_revisions() {
        assert_eq!(compare("1.0_alpha", "1.0"), Ordering::Less);
        assert_eq!(compare("1.0_p1", "1.0"), Ordering::Greater);
        assert_eq!(compare("1.0-r1", "1.0"), Ordering::Greater);
        assert_eq!(compare("1.0b", "1.0a"), Ordering::Greater);
        assert_eq!(compare("99999999999999999999999", "1"), Ordering::Greater);
    }

    #[test]
    fn validity() {
        assert!(is_valid("1.2.3_rc1-r4"));
        assert!(is_valid("0.1_pre2~1234abcd"));
        assert!(!is_valid(""));
        assert!(!is_valid("1.0-r"));
    }

    #[test]
    fn fuzzy_matches_prefix() {
        let op = VersionOp::parse("~").unwrap();
        assert!(matches("3.6.9", op, "3.6"));
        assert!(!matches("3.8", op, "3.8.1"));
        assert_eq!(VersionOp::parse(">=").unwrap().to_string(), ">=");
    }
}
